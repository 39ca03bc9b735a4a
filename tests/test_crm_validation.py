"""Phone, email and postal address checks: canonical forms in, stable codes out."""

from __future__ import annotations

import pytest

from backend.crm.connector import Address
from backend.validation import check_address, looks_like_full_pan, normalize_email, normalize_phone


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("+371 2000 0001", "+37120000001"),
        ("0037120000001", "+37120000001"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("20000001", None),  # no country code: ambiguous
        ("+371 123", None),
        ("", None),
        (None, None),
        (37120000001, None),
        ("+" + "1" * 50, None),
    ],
)
def test_phones_are_read_in_international_form(typed: object, e164: str | None):
    assert normalize_phone(typed) == e164


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("anna@example.lv", "anna@example.lv"),
        ("  Anna@Example.LV ", "Anna@example.lv"),
        ("王伟@example.cn", "王伟@example.cn"),
        ("anna@", None),
        ("anna example.lv", None),
        ("", None),
        (42, None),
    ],
)
def test_emails_are_checked_for_syntax(typed: object, normal: str | None):
    assert normalize_email(typed) == normal


def test_an_address_is_normalised_and_bad_fields_are_named():
    address, errors = check_address(
        {"line1": " Brīvības iela 1 ", "city": "Rīga", "postcode": "1010", "country": "lv"}
    )
    assert errors == {}
    assert address == Address("Brīvības iela 1", "Rīga", "LV-1010", "LV")
    address, errors = check_address({"line1": "", "city": "Rīga", "postcode": "!", "country": "XX"})
    assert address is None
    assert errors == {
        "line1": "invalid_address",
        "country": "invalid_address",
        "postcode": "invalid_address",
    }
    assert check_address("Brīvības iela 1") == (None, {"address": "invalid_address"})
    assert check_address({"line1": "a\x00b", "city": "c", "postcode": "12345", "country": "DE"})[
        1
    ] == {"line1": "invalid_address"}


def test_full_card_numbers_are_recognised_by_luhn():
    assert looks_like_full_pan("4111 1111 1111 1111")
    assert looks_like_full_pan("5500-0000-0000-0004")
    assert not looks_like_full_pan("4111 1111 1111 1112")
    assert not looks_like_full_pan("411111******1111")
    assert not looks_like_full_pan("LV80BANK0000435195001")
