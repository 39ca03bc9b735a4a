"""Logging set-up shared by every process, with a last line of defence against personal data.

Code must not log personal data in the first place (log internal ids, never
phones, emails, codes or card numbers). ``RedactingFilter`` masks anything in a
final log line that still looks like one, so a slip does not reach the disk.
"""

from __future__ import annotations

import logging
import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,4})?\b"), "[iban]"),
    (re.compile(r"\b(?:\d[ -]?){12,19}\b"), "[number]"),
    (re.compile(r"\+?\d[\d ()-]{6,}\d"), "[phone]"),
    (re.compile(r"\b\d{6}\b"), "[code]"),
)


def redact(text: str) -> str:
    """Mask emails, IBANs, card-like and phone-like numbers and 6-digit codes in ``text``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message through ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure(level: str = "INFO") -> None:
    """Log to stderr, one line per record, redacted; third-party chatter at WARNING."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "aiohttp.access", "telegram.ext", "sqlalchemy.engine", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
