"""Masked forms of personal data, for chats, the console and transcripts.

A masked value shows enough for its owner to recognise it and nothing a
stranger could use: the country code and last two digits of a phone, the first
letter and domain of an email, BIN and last 4 of a card (PCI DSS), the country
code and last 4 of an IBAN.
"""

from __future__ import annotations

import re

DOT = "•"


def mask_phone(e164: str) -> str:
    """``+37120000001`` → ``+371 2••••••01`` (country code kept when recognisable)."""
    digits = re.sub(r"\D", "", e164)
    if len(digits) < 6:
        return DOT * len(digits)
    try:
        import phonenumbers

        parsed = phonenumbers.parse("+" + digits)
        country = str(parsed.country_code)
    except Exception:
        country = digits[:3]
    national = digits[len(country) :]
    return f"+{country} {national[:1]}{DOT * max(len(national) - 3, 1)}{national[-2:]}"


def mask_email(address: str) -> str:
    """``anna@example.lv`` → ``a•••@example.lv``."""
    local, _, domain = address.partition("@")
    if not domain:
        return DOT * 3
    return f"{local[:1]}{DOT * 3}@{domain}"


def mask_pan(pan: str) -> str:
    """A card number → BIN (first 6) + last 4: ``411111••••••1111``."""
    digits = re.sub(r"\D", "", pan)
    return f"{digits[:6]}{DOT * max(len(digits) - 10, 0)}{digits[-4:]}"


def mask_iban(iban: str) -> str:
    """``LV80BANK0000435195001`` → ``LV80 •••• 5001``."""
    compact = re.sub(r"\s", "", iban).upper()
    return f"{compact[:4]} {DOT * 4} {compact[-4:]}"


def mask_text(value: str, keep: int = 1) -> str:
    """Keep the first ``keep`` characters of each word: ``Brīvības iela 1`` → ``B••••••• i••• •``."""

    def word(match: re.Match[str]) -> str:
        w = match.group(0)
        return w[:keep] + DOT * (len(w) - keep) if len(w) > keep else DOT * len(w)

    return re.sub(r"\w+", word, value)
