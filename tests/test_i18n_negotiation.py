"""The locale a customer gets from the language their Telegram app reports."""

from __future__ import annotations

import pytest

from bot.i18n import DEFAULT_LOCALE, SHIPPED_LOCALES, negotiate


@pytest.mark.parametrize(
    ("language_code", "locale"),
    [
        ("zh-hans", "zh_Hans"),
        ("zh-CN", "zh_Hans"),
        ("zh-SG", "zh_Hans"),
        ("zh", "zh_Hans"),
        ("zh-TW", "zh_Hant"),
        ("zh-HK", "zh_Hant"),
        ("zh-hant", "zh_Hant"),
        ("zh-MO", "zh_Hant"),
        ("zh-Hant-TW", "zh_Hant"),
        ("ZH-tw", "zh_Hant"),
        ("lv", "lv"),
        ("lv-LV", "lv"),
        ("ru-RU", "ru"),
        ("ru", "ru"),
        ("ru-UA", "ru"),
        ("en", "en"),
        ("en-GB", "en"),
        ("en_US", "en"),
    ],
)
def test_a_customer_gets_the_shipped_locale_their_language_tag_names(
    language_code: str, locale: str
) -> None:
    assert negotiate(language_code) == locale


@pytest.mark.parametrize(
    "language_code", ["pt-BR", "de", "uk", "xx", "xx-YY", "", "   ", None, "!!", "a" * 200]
)
def test_an_unshipped_unknown_or_missing_language_falls_back_to_english(
    language_code: str | None,
) -> None:
    assert negotiate(language_code) == DEFAULT_LOCALE == "en"


def test_the_shipped_locales_are_the_five_the_product_promises() -> None:
    assert SHIPPED_LOCALES == ("en", "lv", "ru", "zh_Hans", "zh_Hant")


def test_negotiation_only_offers_locales_that_are_available() -> None:
    assert negotiate("zh-TW", ("en", "zh_Hant")) == "zh_Hant"
    assert negotiate("lv", ("en", "ru")) == "en"
