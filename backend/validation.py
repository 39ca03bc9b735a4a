"""Checks for contact data a customer types or a CRM file carries, with stable codes.

Each ``normalize_*`` returns the canonical form (E.164 phone, normalised
email) or None. ``check_address`` returns an ``Address`` and per-field codes.
``is_text`` and ``valid_chat`` check what channels send beside it. Codes
(``invalid_phone``, ``invalid_email``, ``invalid_address``, ``invalid_text``,
``invalid_chat``, ``same_as_current``) are part of the HTTP contract
(``docs/backend-api.md``).
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

import phonenumbers
from babel import Locale
from email_validator import EmailNotValidError, validate_email

from backend.crm.connector import Address

INVALID_PHONE = "invalid_phone"
INVALID_EMAIL = "invalid_email"
INVALID_ADDRESS = "invalid_address"
INVALID_TEXT = "invalid_text"
INVALID_CHAT = "invalid_chat"
SAME_AS_CURRENT = "same_as_current"

_COUNTRIES = frozenset(
    str(code) for code in Locale("en").territories if re.fullmatch(r"[A-Z]{2}", str(code))
)
_POSTCODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]{1,10}")
# Postcode forms we can check strictly; others only get the generic shape above.
_POSTCODE_BY_COUNTRY = {
    "LV": re.compile(r"LV-\d{4}"),
    "LT": re.compile(r"(LT-)?\d{5}"),
    "EE": re.compile(r"\d{5}"),
    "DE": re.compile(r"\d{5}"),
    "CN": re.compile(r"\d{6}"),
}
_MAX_LINE = 200
MAX_CHAT = 128


def is_text(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a string both databases can store.

    A lone surrogate (``\\ud800`` escaped in JSON, or a stray byte in a header)
    cannot be encoded as UTF-8, and PostgreSQL refuses NUL in text.
    """
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_chat(value: object) -> str | None:
    """A channel's opaque chat id (``tg:42``) when usable: 1–128 printable characters, else None.

    Printable excludes control characters (NUL, ESC) and lone surrogates.
    """
    if isinstance(value, str) and 0 < len(value) <= MAX_CHAT and value.isprintable():
        return value if value.strip() else None
    return None


def normalize_phone(raw: object) -> str | None:
    """``raw`` as E.164 when it is a valid international number, else None."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 40:
        return None
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        return None
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: object) -> str | None:
    """``raw`` in its normalised form when it is a syntactically valid address, else None."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 254:
        return None
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return str(result.normalized)


def email_key(address: str) -> str:
    """The form of an email that look-ups compare (case does not matter to people)."""
    return address.strip().lower()


def _line(value: object, *, required: bool) -> str | bool | None:
    """A trimmed text line; False when it is unusable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return False if required else None
    if not is_text(value) or len(value) > _MAX_LINE or any(ord(c) < 32 for c in value):
        return False
    return value.strip()


def check_address(raw: object) -> tuple[Address | None, dict[str, str]]:
    """An ``Address`` from a JSON object, or per-field ``invalid_address`` codes."""
    if not isinstance(raw, dict):
        return None, {"address": INVALID_ADDRESS}
    data: dict[str, Any] = raw
    errors: dict[str, str] = {}
    values: dict[str, str | None] = {}
    for name, required in (("line1", True), ("line2", False), ("city", True)):
        value = _line(data.get(name), required=required)
        if value is False:
            errors[name] = INVALID_ADDRESS
        else:
            values[name] = value if isinstance(value, str) else None
    country = data.get("country")
    if not isinstance(country, str) or country.strip().upper() not in _COUNTRIES:
        errors["country"] = INVALID_ADDRESS
        country_code = ""
    else:
        country_code = country.strip().upper()
    postcode = _postcode(data.get("postcode"), country_code)
    if postcode is None:
        errors["postcode"] = INVALID_ADDRESS
    if errors or postcode is None:
        return None, errors
    return (
        Address(
            line1=values["line1"] or "",
            line2=values.get("line2"),
            city=values["city"] or "",
            postcode=postcode,
            country=country_code,
        ),
        {},
    )


def _postcode(raw: object, country: str) -> str | None:
    """The postcode in its written form (``1010`` in Latvia is ``LV-1010``), or None."""
    if not isinstance(raw, str):
        return None
    text = raw.strip().upper()
    if country == "LV" and re.fullmatch(r"(LV[- ]?)?\d{4}", text):
        text = "LV-" + text[-4:]
    pattern = _POSTCODE_BY_COUNTRY.get(country, _POSTCODE)
    return text if pattern.fullmatch(text) else None


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check used by card numbers."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def looks_like_full_pan(value: str) -> bool:
    """Whether ``value`` holds a whole card number (13–19 digits passing Luhn)."""
    digits = re.sub(r"[\s-]", "", value)
    return digits.isdigit() and 13 <= len(digits) <= 19 and luhn_valid(digits)
