"""The locale a customer gets from the language their Telegram app reports."""

from __future__ import annotations

import babel.localedata
import hypothesis
import pytest
from hypothesis import strategies as st

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


_CLDR_IDENTIFIERS = sorted(babel.localedata.locale_identifiers())


@pytest.mark.parametrize("language_code", ["no", "no-NO", "no_NO", "no_NO.UTF-8", "nb-NO", "nn"])
def test_a_norwegian_language_tag_falls_back_to_english_instead_of_crashing(
    language_code: str,
) -> None:
    assert negotiate(language_code) == "en"


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(
    identifier=st.sampled_from(_CLDR_IDENTIFIERS), hyphen=st.booleans(), upper=st.booleans()
)
def test_every_cldr_locale_identifier_negotiates_to_a_shipped_locale(
    identifier: str, hyphen: bool, upper: bool
) -> None:
    tag = identifier.replace("_", "-") if hyphen else identifier
    assert negotiate(tag.upper() if upper else tag) in SHIPPED_LOCALES


def test_every_cldr_locale_identifier_in_both_spellings_negotiates_without_raising() -> None:
    # The sampled property above draws a few hundred; this sweeps all of them once (a second).
    for identifier in _CLDR_IDENTIFIERS:
        for tag in (identifier, identifier.replace("_", "-")):
            assert negotiate(tag) in SHIPPED_LOCALES, tag


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(
    language_code=st.one_of(
        st.text(),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.@0123456789"),
        st.builds(
            lambda a, b: f"{a}-{b}",
            st.sampled_from(_CLDR_IDENTIFIERS),
            st.sampled_from(_CLDR_IDENTIFIERS),
        ),
    )
)
def test_any_string_negotiates_to_a_shipped_locale(language_code: str) -> None:
    assert negotiate(language_code) in SHIPPED_LOCALES
