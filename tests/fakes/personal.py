"""A customer whose every personal value is known, and a capture of everything logged.

``OLGA`` is a CRM record (the ``crm import`` shape); ``PERSONAL`` lists the
pieces of it that must never reach a log, in the forms code could print them
(a name's parts, the phone's national digits, the local part of the email).
``logged`` (a fixture; import it into the test module) captures every record
at DEBUG as the product's own handler writes it, and each raw message, so a
test can search both with ``leaks``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from common.logs import redacting_handler

OLGA_REF = "C-2001"
OLGA_PHONE = "+37126123456"
OLGA_EMAIL = "olga.petrova@example.lv"
OLGA: dict[str, Any] = {
    "ref": OLGA_REF,
    "name": "Olga Petrova",
    "language": "lv",
    "phones": [{"number": OLGA_PHONE, "primary": True}],
    "emails": [{"address": OLGA_EMAIL, "primary": True}],
    "address": {
        "line1": "Dzirnavu iela 37-12",
        "city": "Rīga",
        "postcode": "LV-1011",
        "country": "LV",
    },
    "marketing": {"email": True, "sms": True, "phone": False, "post": True},
    "products": [],
    "transactions": [],
    "documents": [],
}
# An address she moves to during a test.
NEW_ADDRESS = {
    "line1": "Tērbatas iela 14-3",
    "city": "Rīga",
    "postcode": "LV-1011",
    "country": "LV",
}

PERSONAL: tuple[str, ...] = (
    "Olga",
    "Petrova",
    "olga.petrova",
    "26123456",  # the national number, inside E.164 too
    "26 123 456",  # as phonenumbers formats it
    "Dzirnavu",
    "Tērbatas",
)

# Loggers of the test's own stand-ins for the outside world (the SMTP server
# logs the addresses it is given: it is the mailbox), not of the product.
OUTSIDE = ("mail.log",)


class Logged:
    """What was logged: ``written`` as the product's handler renders it, ``raw`` messages."""

    def __init__(self, stream: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
        self._stream = stream
        self._caplog = caplog

    def _ours(self) -> list[logging.LogRecord]:
        return [r for r in self._caplog.records if not r.name.startswith(OUTSIDE)]

    @property
    def written(self) -> str:
        """Every record as the product writes it to stderr, tracebacks included."""
        return self._stream.getvalue()

    @property
    def raw(self) -> str:
        """Every record's message as the code passed it, before any masking."""
        return "\n".join(r.getMessage() for r in self._ours())

    def leaks(self, values: Iterable[str]) -> list[str]:
        """The values found in what was written or in a raw message (case-insensitive)."""
        haystack = (self.written + "\n" + self.raw).casefold()
        return [v for v in values if v.casefold() in haystack]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[Logged]:
    """Capture every record at DEBUG through the product's handler for the test's duration."""
    stream = io.StringIO()
    handler = redacting_handler(stream)
    handler.addFilter(lambda record: not record.name.startswith(OUTSIDE))
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield Logged(stream, caplog)
    finally:
        root.removeHandler(handler)
