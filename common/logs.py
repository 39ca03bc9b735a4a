"""Logging set-up shared by every process, and what keeps personal data out of it.

Code must not log personal data in the first place: it logs internal ids,
never names, addresses, phones, emails, codes or card numbers. Two defences
catch what slips through, in ``RedactingFormatter``:

- Tracebacks keep their frames and exception types, but show an exception's
  message only when the exception says it is safe (its class sets
  ``loggable_message = True``, as ``common.errors.DatadeskError`` does) or it
  is a built-in error about the program itself (``AttributeError``,
  ``TypeError``, …). Other messages carry the data a library choked on:
  smtplib's ``SMTPRecipientsRefused`` holds the refused addresses, asyncpg's
  ``DataError`` the query argument, a ``ValueError`` the value. Names and
  addresses have no shape a pattern could find, so those messages are
  withheld, not masked. Chained exceptions (``__cause__``, ``__context__``)
  and exception groups get the same treatment.
- The record's message, traceback and stack then go through ``redact``,
  which masks what still looks like an email, IBAN, card or phone number or
  a 6-digit code.

``configure`` installs it on stderr and routes uncaught exceptions (main
thread and other threads) through logging, so they are rendered the same way
instead of by Python's raw traceback printer. With ``LOG_FORMAT=json`` the
same record becomes one JSON object a line (``RedactingJsonFormatter``, on
python-json-logger), with the same defences applied to every string in it.

The HTTP access log is ``common.access_log``'s.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from types import TracebackType
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter
from sqlalchemy.exc import StatementError

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,4})?\b"), "[iban]"),
    (re.compile(r"\b(?:\d[ -]?){12,19}\b"), "[number]"),
    (re.compile(r"\+?\d[\d ()-]{6,}\d"), "[phone]"),
    (re.compile(r"\b\d{6}\b"), "[code]"),
)

# Built-in errors whose messages describe the program (a missing attribute, a
# wrong type, a refused connection to a service), not the data it handled.
# KeyError and ValueError are not among them: they quote the key or value.
_PROGRAM_ERRORS: tuple[type[BaseException], ...] = (
    AttributeError,
    NameError,
    ImportError,
    NotImplementedError,
    RecursionError,
    TypeError,
    ConnectionError,
    TimeoutError,
    # A group's own message is chosen by code ("unhandled errors in a TaskGroup");
    # its members are judged one by one.
    BaseExceptionGroup,
)
WITHHELD = "(message withheld: it may hold personal data)"
# Deeper exception groups than this are summarised, not rendered.
_MAX_GROUP_DEPTH = 4
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# ``LOG_FORMAT``: what an operator may choose.
LOG_FORMATS = ("text", "json")


def redact(text: str) -> str:
    """Mask emails, IBANs, card-like and phone-like numbers and 6-digit codes in ``text``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def loggable_message(exc: BaseException) -> bool:
    """Whether ``exc``'s message may appear in a log (see the module docstring)."""
    return bool(getattr(exc, "loggable_message", False)) or isinstance(exc, _PROGRAM_ERRORS)


def _headline(exc: BaseException) -> str:
    """``module.Type: message`` with the message withheld unless it is safe."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    if loggable_message(exc):
        try:
            message = str(exc)
        except Exception:
            message = "(message could not be rendered)"
        return f"{name}: {message}" if message else name
    line = f"{name}: {WITHHELD}"
    # A database's own error code names the cause and holds no data:
    # sqlite3's (SQLITE_BUSY_SNAPSHOT, ...), asyncpg's SQLSTATE.
    code = getattr(exc, "sqlite_errorname", None) or getattr(exc, "sqlstate", None)
    if isinstance(code, str) and code.replace("_", "").isalnum():
        line += f" [code: {code}]"
    if isinstance(exc, StatementError) and exc.statement:
        # The statement has placeholders, never values (engines hide parameters).
        line += f"\n[SQL: {exc.statement}]"
    return line


def _chain(exc: BaseException) -> list[tuple[BaseException, str | None]]:
    """The exception and those it was raised from, oldest first, each with how it led on."""
    links: list[tuple[BaseException, str | None]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    how: str | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        links.append((current, how))
        if current.__cause__ is not None:
            current, how = current.__cause__, "direct cause"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, how = current.__context__, "during handling"
        else:
            current = None
    links.reverse()
    return links


_LEADS = {
    "direct cause": "\nThe above exception was the direct cause of the following exception:\n\n",
    "during handling": "\nDuring handling of the above exception, another exception occurred:\n\n",
}


def render_exception(exc: BaseException, depth: int = 0) -> str:
    """A traceback like Python's, with messages withheld as the module docstring says."""
    parts: list[str] = []
    links = _chain(exc)
    for index, (link, _) in enumerate(links):
        if index:
            # The link to the previous one is recorded on the newer exception.
            parts.append(_LEADS[links[index - 1][1] or "during handling"])
        if link.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(link.__traceback__))
        parts.append(_headline(link) + "\n")
        if isinstance(link, BaseExceptionGroup):
            parts.append(_render_group(link, depth))
    return "".join(parts).rstrip("\n")


def _render_group(group: BaseExceptionGroup[BaseException], depth: int) -> str:
    if depth >= _MAX_GROUP_DEPTH:
        return f"  ({len(group.exceptions)} sub-exceptions not shown)\n"
    rendered = []
    for number, sub in enumerate(group.exceptions, start=1):
        body = render_exception(sub, depth + 1)
        rendered.append(
            f"  +---- {number} ----\n" + "".join(f"  | {line}\n" for line in body.split("\n"))
        )
    return "".join(rendered)


class RedactingFormatter(logging.Formatter):
    """Formats a whole record, traceback and stack included, then masks it (module docstring)."""

    def formatException(self, ei: object) -> str:
        exc = ei[1] if isinstance(ei, tuple) and len(ei) == 3 else None
        if not isinstance(exc, BaseException):
            return ""
        return render_exception(exc)

    def format(self, record: logging.LogRecord) -> str:
        # The message and what follows it are masked; the prefix is not, or
        # the timestamp would read as a phone number.
        record.message = redact(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        # Never reuse ``record.exc_text``: another handler may have cached
        # Python's own rendering there, messages and all.
        if record.exc_info:
            rendered = self.formatException(record.exc_info)
            if rendered:
                text += "\n" + redact(rendered)
        elif record.exc_text:
            text += "\n" + WITHHELD
        if record.stack_info:
            text += "\n" + redact(self.formatStack(record.stack_info))
        return text


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object a line, with ``RedactingFormatter``'s defences on every string in it.

    Fields: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, any
    ``extra`` the call passed (the access log's ``method``, ``route``, …),
    ``exc_info`` and ``stack_info`` when present.
    """

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def formatException(self, ei: Any) -> str:
        exc = ei[1] if isinstance(ei, tuple) and len(ei) == 3 else None
        return render_exception(exc) if isinstance(exc, BaseException) else ""

    def format(self, record: logging.LogRecord) -> str:
        # Never Python's own rendering another handler may have cached in exc_text.
        cached, record.exc_text = record.exc_text, None
        try:
            text = super().format(record)
        finally:
            record.exc_text = cached
        if cached and not record.exc_info:
            data = json.loads(text)
            data["exc_info"] = WITHHELD
            text = self.serialize_log_record(data)
        return text

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: _redact_value(value) for key, value in log_data.items()}


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("datadesk").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("datadesk").critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def redacting_handler(stream: TextIO | None = None, fmt: str = "text") -> logging.Handler:
    """The handler every process logs through: ``stream`` (stderr), text or JSON lines, redacted."""
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter = (
        RedactingJsonFormatter() if fmt == "json" else RedactingFormatter(FORMAT)
    )
    handler.setFormatter(formatter)
    return handler


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr through ``redacting_handler`` (``fmt``: ``LOG_FORMAT``); third-party chatter at WARNING.

    The access log (``aiohttp.access``) follows ``level``: it is written by
    ``common.access_log.AccessLogger`` and holds no personal data.
    """
    root = logging.getLogger()
    root.handlers[:] = [redacting_handler(fmt=fmt)]
    root.setLevel(level)
    # The database drivers' DEBUG lines quote every statement's parameters.
    quiet = ("httpx", "telegram.ext", "sqlalchemy.engine", "aiosqlite", "alembic")
    for noisy in quiet:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
