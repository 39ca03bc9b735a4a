"""What an agent reads in a transcript: personal data masked, everything else as written."""

from __future__ import annotations

import pytest

from backend.transcripts import mask_personal_data


@pytest.mark.parametrize(
    ("said", "stored"),
    [
        ("call me on +371 20000001", "call me on +371 2•••••01"),
        ("my new email is anna@example.lv", "my new email is a•••@example.lv"),
        ("card 4111 1111 1111 1111", "card 411111••••••1111"),
        ("pay to LV80BANK0000435195001", "pay to LV80 •••• 5001"),
        ("phone 37120000001 please", "phone +371 2•••••01 please"),
        # An amount next to a phone number does not hide the phone number.
        ("EUR 50 +37120000001", "EUR 50 +371 2•••••01"),
        ("+371 20000001 1 250.00 EUR", "+371 2•••••01 1 250.00 EUR"),
    ],
)
def test_personal_data_a_customer_types_is_masked(said: str, stored: str) -> None:
    assert mask_personal_data(said) == stored


@pytest.mark.parametrize(
    "said",
    [
        "12345",
        "it was 1 250 000.00 EUR last month",
        "I paid € 12 000 000 for the flat",
        "1250000 EUR, or 12 000.50€",
        "about 2 300,50 lats",
        "my request DD-7K2Q9M, customer C-1001",
        "until 2027-01-05 or 05.01.2027",
    ],
)
def test_dates_amounts_and_references_stay_readable(said: str) -> None:
    assert mask_personal_data(said) == said


def test_the_bots_own_example_stays_readable_but_a_card_in_its_line_does_not() -> None:
    example = (
        "That doesn't look like a phone number. Please type it with the country code, "
        "for example +371 20000000. Or an email, for example name@example.com."
    )
    assert mask_personal_data(example, direction="out") == example
    assert mask_personal_data("card 4111111111111111", direction="out") == "card 411111••••••1111"


def test_an_agents_line_is_masked_like_a_customers() -> None:
    assert mask_personal_data("write to anna@example.lv", direction="agent") == (
        "write to a•••@example.lv"
    )
