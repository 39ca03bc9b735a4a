"""Validators: what a customer may type, and the reason they are told when it won't do."""

from __future__ import annotations

import pytest

from bot.engine.validators import Invalid, Valid, code, email, phone, postal_address, yes_no


@pytest.mark.parametrize(
    ("typed", "locale", "expected"),
    [
        ("+371 2000 0001", "en", "+37120000001"),
        ("20000001", "lv", "+37120000001"),
        ("20 000 001", "ru", "+37120000001"),
        ("0037120000001", "en", "+37120000001"),
        ("138 0013 8000", "zh_Hans", "+8613800138000"),
        ("+44 20 7946 0958", "zh_Hant", "+442079460958"),
    ],
)
def test_a_phone_number_comes_back_in_e164(typed: str, locale: str, expected: str) -> None:
    assert phone(typed, locale) == Valid(expected)


@pytest.mark.parametrize("typed", ["hello", "123", "+371 1", "2000000000000000000"])
def test_a_wrong_phone_number_says_why(typed: str) -> None:
    assert phone(typed, "en") == Invalid("invalid.phone")


def test_an_email_is_normalised_without_asking_dns() -> None:
    assert email(" Anna@Example.LV ", "lv") == Valid("Anna@example.lv")
    assert email("anna@", "lv") == Invalid("invalid.email")
    assert email("anna at example.lv", "lv") == Invalid("invalid.email")


@pytest.mark.parametrize(
    ("typed", "expected"), [("123456", "123456"), ("123 456", "123456"), (" 12-34-56 ", "123456")]
)
def test_a_code_forgives_spaces_and_dashes(typed: str, expected: str) -> None:
    assert code(typed, "en") == Valid(expected)


@pytest.mark.parametrize("typed", ["12345", "1234567", "abcdef", "12 34 5x"])
def test_a_code_that_is_not_six_digits_says_so(typed: str) -> None:
    assert code(typed, "en") == Invalid("invalid.code")


@pytest.mark.parametrize(
    "typed",
    ["yes", "Yes!", "jā", "Ja", "protams", "да", "Да.", "хорошо", "ок", "是", "是的", "對", "好吧",
     "没问题", "ok"],
)  # fmt: skip
def test_yes_is_understood_in_every_shipped_language(typed: str) -> None:
    assert yes_no(typed, "en") == Valid("yes")


@pytest.mark.parametrize(
    "typed",
    ["no", "No.", "nē", "nevajag", "нет", "не надо", "неа", "不", "否", "不要", "不用了", "算了"],
)
def test_no_is_understood_in_every_shipped_language(typed: str) -> None:
    assert yes_no(typed, "en") == Valid("no")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("yes please", "yes"),
        ("Yes, please!", "yes"),
        ("jā, lūdzu", "yes"),
        ("да, пожалуйста", "yes"),
        ("no thank you", "no"),
        ("нет, спасибо", "no"),
        ("nē, paldies", "no"),
        ("不用了，谢谢", "no"),
        ("不用了谢谢", "no"),
        ("好的，谢谢", "yes"),
        ("請確認", "yes"),
        ("好的謝謝你", "yes"),
    ],
)
def test_a_courtesy_around_yes_or_no_does_not_hide_the_answer(typed: str, expected: str) -> None:
    assert yes_no(typed, "en") == Valid(expected)


@pytest.mark.parametrize(
    "typed", ["perhaps", "please", "thank you", "yes no", "谢谢", "不好", "不确定"]
)
def test_anything_else_is_neither_yes_nor_no(typed: str) -> None:
    assert yes_no(typed, "en") == Invalid("invalid.yes_no")


def test_a_latvian_address_without_a_country_is_read_as_latvian() -> None:
    assert postal_address("Brīvības iela 1, Rīga, 1010", "lv") == Valid(
        {"line1": "Brīvības iela 1", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    )


def test_an_address_keeps_its_second_line_and_reads_country_names_in_any_language() -> None:
    assert postal_address("Brīvības iela 1\ndz. 5\nRīga\nLV-1010\nЛатвия", "ru") == Valid(
        {
            "line1": "Brīvības iela 1",
            "line2": "dz. 5",
            "city": "Rīga",
            "postcode": "LV-1010",
            "country": "LV",
        }
    )
    assert postal_address("长安街1号，北京，100000，中国", "zh_Hans") == Valid(
        {"line1": "长安街1号", "city": "北京", "postcode": "100000", "country": "CN"}
    )


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("Brīvības iela 1", "invalid.address_format"),
        ("Brīvības iela 1, Rīga", "invalid.address_format"),
        ("Brīvības iela 1, Rīga, 99, Latvia", "invalid.address_postcode"),
        ("Main St 1, Springfield, 12345, Narnia", "invalid.address_country"),
    ],
)
def test_a_wrong_address_says_which_part_is_wrong(typed: str, reason: str) -> None:
    assert postal_address(typed, "lv") == Invalid(reason)
