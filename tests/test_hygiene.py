"""What the bot spots in a customer's message, and the masked form it keeps instead."""

from __future__ import annotations

import logging

import pytest

from bot.hygiene import mask_for_transcript, scan


@pytest.mark.parametrize(
    "typed",
    [
        "4111111111111111",
        "my card is 4111 1111 1111 1111, thanks",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",
        "378282246310005",  # 15-digit American Express
    ],
)
def test_a_luhn_valid_card_number_is_found_and_masked_to_bin_and_last_four(typed: str) -> None:
    found = scan(typed)
    assert found.kinds == ("card",)
    digits = "".join(ch for ch in typed if ch.isdigit())
    assert f"{digits[:6]}" in found.masked
    assert found.masked.count("•") == len(digits) - 10
    assert digits not in found.masked.replace(" ", "").replace("-", "")


@pytest.mark.parametrize(
    "typed",
    [
        "4111 1111 1111 1112",  # fails the Luhn check
        "+371 2000 0001",  # a phone number
        "+37120000001",
        "my order 12345",
        "call me at 2026-11-22",
    ],
)
def test_numbers_that_are_not_card_numbers_are_left_alone(typed: str) -> None:
    assert scan(typed).kinds == ()
    assert scan(typed).masked == typed


def test_a_card_number_next_to_other_digits_is_still_found() -> None:
    found = scan("card 4111 1111 1111 1111 12 exp")
    assert found.kinds == ("card",)
    assert "411111••••••1111" in found.masked


@pytest.mark.parametrize(
    "typed",
    ["LV80BANK0000435195001", "lv80 bank 0000 4351 9500 1", "IBAN: DE89 3704 0044 0532 0130 00 ok"],
)
def test_an_iban_is_found_and_masked_to_country_and_last_four(typed: str) -> None:
    found = scan(typed)
    assert found.kinds == ("iban",)
    assert "•••• " in found.masked
    assert "0000 4351" not in found.masked


def test_an_invalid_iban_is_not_treated_as_one() -> None:
    assert scan("LV81BANK0000435195001").kinds == ()


@pytest.mark.parametrize("typed", ["161175-19997", "my id is 161175-19997", "321111-12345"])
def test_a_latvian_personal_code_is_found_and_hidden(typed: str) -> None:
    found = scan(typed)
    assert found.kinds == ("national_id",)
    assert "••••" in found.masked
    assert "19997" not in found.masked


def test_a_latvian_company_number_is_not_a_personal_code() -> None:
    assert scan("400030-32949").kinds == ()


@pytest.mark.parametrize(
    "typed", ["15061234567", "16117519997", "8613912345678", "86 139 1234 5678"]
)
def test_a_phone_number_typed_without_plus_is_not_mistaken_for_a_card_or_an_id(typed: str) -> None:
    # Deleting a phone number the customer was asked for would leave them stuck.
    assert scan(typed).kinds == ()


def test_a_chinese_resident_id_is_found_and_hidden() -> None:
    found = scan("身份证 360426199101010071")
    assert found.kinds == ("national_id",)
    assert found.masked == "身份证 ••••"


def test_a_one_time_code_counts_only_on_a_step_that_asks_for_one() -> None:
    assert scan("123456").kinds == ()
    assert scan("123456", sensitive=True).kinds == ("code",)
    assert scan("123 456", sensitive=True).masked == "••••"


def test_several_kinds_in_one_message_are_all_masked() -> None:
    found = scan("card 4111111111111111 and LV80BANK0000435195001 id 161175-19997")
    assert found.kinds == ("card", "iban", "national_id")
    assert found.masked == "card 411111••••••1111 and LV80 •••• 5001 id ••••"


def test_a_bare_code_never_reaches_a_transcript_even_off_a_code_step() -> None:
    assert mask_for_transcript("654321") == "••••"
    assert mask_for_transcript("654 321") == "••••"
    # Off a code step only the shape of the codes the bank sends (six digits) is masked.
    assert mask_for_transcript("12345") == "12345"
    assert mask_for_transcript("12345", sensitive=True) == "••••"
    assert mask_for_transcript("my new street is Brīvības 12") == "my new street is Brīvības 12"


def test_scanning_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    scan("4111 1111 1111 1111 LV80BANK0000435195001 161175-19997 123456", sensitive=True)
    assert caplog.records == []
