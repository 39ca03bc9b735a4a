"""Catalogs read straight from ``.po`` files, and what a customer sees through a translator."""

from __future__ import annotations

import datetime
import decimal
import logging
from pathlib import Path

import pytest

from bot.i18n import SHIPPED_LOCALES, Catalogs
from common.errors import ConfigError
from common.settings import REPO_ROOT

FIXTURES = Path(__file__).parent / "fixtures"
DUE = "Your request {reference} is due on {due_date}."
ONE, OTHER = "You have {count} open request.", "You have {count} open requests."
MENU = "What would you like to do?"


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    return Catalogs.load(FIXTURES / "locales_clean" / "locales")


def test_every_shipped_locale_is_loaded_in_the_shipped_order(catalogs: Catalogs) -> None:
    assert catalogs.locales == SHIPPED_LOCALES


def test_a_message_is_shown_in_the_customers_language(catalogs: Catalogs) -> None:
    assert catalogs.translator("lv").gettext(MENU) == "Ko Jūs vēlētos darīt?"
    assert catalogs.translator("ru").gettext(MENU) == "Что вы хотите сделать?"
    assert catalogs.translator("zh_Hans").gettext(MENU) == "您想做什么？"
    assert catalogs.translator("zh_Hant").gettext(MENU) == "您想做什麼？"


def test_a_context_picks_its_own_translation(catalogs: Catalogs) -> None:
    lv = catalogs.translator("lv")
    assert lv.gettext("Back", context="button") == "Atpakaļ"
    # Without the context it is another message, one nobody translated: the source shows.
    assert lv.gettext("Back") == "Back"
    assert catalogs.has("lv", "Back", context="button")
    assert not catalogs.has("lv", "Back")


# The grammatically right sentence for each count, written out by hand: 0, 1, 2, 5, 11, 21,
# 22 and 111 between them reach every form of every shipped locale, the teens included.
TRIES_ONE = "That code isn't right. You have {attempts_left} try left."
TRIES_OTHER = "That code isn't right. You have {attempts_left} tries left."
TRIES_LEFT: dict[str, dict[int, str]] = {
    "en": {
        0: "That code isn't right. You have 0 tries left.",
        1: "That code isn't right. You have 1 try left.",
        2: "That code isn't right. You have 2 tries left.",
        5: "That code isn't right. You have 5 tries left.",
        11: "That code isn't right. You have 11 tries left.",
        21: "That code isn't right. You have 21 tries left.",
        22: "That code isn't right. You have 22 tries left.",
        111: "That code isn't right. You have 111 tries left.",
    },
    "lv": {
        0: "Kods nav pareizs. Jums vēl ir 0 mēģinājumu.",
        1: "Kods nav pareizs. Jums vēl ir 1 mēģinājums.",
        2: "Kods nav pareizs. Jums vēl ir 2 mēģinājumi.",
        5: "Kods nav pareizs. Jums vēl ir 5 mēģinājumi.",
        11: "Kods nav pareizs. Jums vēl ir 11 mēģinājumu.",
        21: "Kods nav pareizs. Jums vēl ir 21 mēģinājums.",
        22: "Kods nav pareizs. Jums vēl ir 22 mēģinājumi.",
        111: "Kods nav pareizs. Jums vēl ir 111 mēģinājumu.",
    },
    "ru": {
        0: "Неверный код. У вас осталось 0 попыток.",
        1: "Неверный код. У вас осталась 1 попытка.",
        2: "Неверный код. У вас осталось 2 попытки.",
        5: "Неверный код. У вас осталось 5 попыток.",
        11: "Неверный код. У вас осталось 11 попыток.",
        21: "Неверный код. У вас осталась 21 попытка.",
        22: "Неверный код. У вас осталось 22 попытки.",
        111: "Неверный код. У вас осталось 111 попыток.",
    },
    "zh_Hans": {n: f"验证码不正确，您还有 {n} 次机会。" for n in (0, 1, 2, 5, 11, 21, 22, 111)},
    "zh_Hant": {n: f"驗證碼不正確，您還有 {n} 次機會。" for n in (0, 1, 2, 5, 11, 21, 22, 111)},
}


@pytest.fixture(scope="module")
def shipped() -> Catalogs:
    return Catalogs.load(REPO_ROOT / "locales")


@pytest.mark.parametrize(
    ("locale", "n", "text"),
    [(locale, n, text) for locale, texts in TRIES_LEFT.items() for n, text in texts.items()],
)
def test_a_count_reads_as_a_native_speaker_writes_it_in_every_shipped_locale(
    shipped: Catalogs, locale: str, n: int, text: str
) -> None:
    translator = shipped.translator(locale)
    template = translator.ngettext(TRIES_ONE, TRIES_OTHER, n)
    assert translator.format(template, attempts_left=n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "Jums ir 0 atvērtu pieprasījumu."),
        (1, "Jums ir 1 atvērts pieprasījums."),
        (2, "Jums ir 2 atvērti pieprasījumi."),
        (5, "Jums ir 5 atvērti pieprasījumi."),
        (11, "Jums ir 11 atvērtu pieprasījumu."),
        (21, "Jums ir 21 atvērts pieprasījums."),
        (22, "Jums ir 22 atvērti pieprasījumi."),
        (111, "Jums ir 111 atvērtu pieprasījumu."),
    ],
)
def test_latvian_plurals_use_three_forms(catalogs: Catalogs, n: int, text: str) -> None:
    lv = catalogs.translator("lv")
    assert lv.format(lv.ngettext(ONE, OTHER, n), count=n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (1, "У вас 1 открытый запрос."),
        (21, "У вас 21 открытый запрос."),
        (3, "У вас 3 открытых запроса."),
        (22, "У вас 22 открытых запроса."),
        (5, "У вас 5 открытых запросов."),
        (11, "У вас 11 открытых запросов."),
        (111, "У вас 111 открытых запросов."),
        (0, "У вас 0 открытых запросов."),
    ],
)
def test_russian_plurals_use_three_forms(catalogs: Catalogs, n: int, text: str) -> None:
    ru = catalogs.translator("ru")
    assert ru.format(ru.ngettext(ONE, OTHER, n), count=n) == text


def test_chinese_has_one_form_for_every_number(catalogs: Catalogs) -> None:
    zh = catalogs.translator("zh_Hant")
    assert {zh.ngettext(ONE, OTHER, n) for n in (0, 1, 2, 5, 21)} == {
        "您有 {count} 個未完成的申請。"
    }


def test_english_plurals_follow_the_source(catalogs: Catalogs) -> None:
    en = catalogs.translator("en")
    assert en.ngettext(ONE, OTHER, 1) == ONE
    assert en.ngettext(ONE, OTHER, 2) == OTHER


def test_a_due_date_is_written_out_the_way_each_locale_writes_dates(catalogs: Catalogs) -> None:
    due = datetime.date(2026, 3, 1)
    rendered = {
        locale: catalogs.translator(locale).format(
            catalogs.translator(locale).gettext(DUE), reference="DD-7K2Q9M", due_date=due
        )
        for locale in SHIPPED_LOCALES
    }
    assert rendered == {
        "en": "Your request DD-7K2Q9M is due on March 1, 2026.",
        "lv": "Jūsu pieprasījuma DD-7K2Q9M izpildes termiņš ir 2026. gada 1. marts.",
        "ru": "1 марта 2026\u202fг. — срок исполнения вашего запроса DD-7K2Q9M.",
        "zh_Hans": "您的申请 DD-7K2Q9M 将于 2026年3月1日 前处理完毕。",
        "zh_Hant": "您的申請 DD-7K2Q9M 將於 2026年3月1日 前處理完畢。",
    }


def test_numbers_use_the_locales_separators(catalogs: Catalogs) -> None:
    amount = decimal.Decimal("1234567.5")
    assert catalogs.translator("en").format_number(amount) == "1,234,567.5"
    assert catalogs.translator("lv").format_number(amount) == "1\xa0234\xa0567,5"
    assert catalogs.translator("ru").format_number(amount) == "1\xa0234\xa0567,5"
    assert catalogs.translator("zh_Hans").format(
        "{n} / {d:short}", n=1234, d=datetime.date(2031, 12, 31)
    ) == ("1,234 / 2031/12/31")


def test_format_date_takes_the_babel_width(catalogs: Catalogs) -> None:
    day = datetime.date(2031, 12, 31)
    assert catalogs.translator("lv").format_date(day) == "2031. gada 31. decembris"
    assert catalogs.translator("ru").format_date(day, "short") == "31.12.2031"


def test_a_placeholder_without_a_value_is_left_as_written_not_a_crash(
    catalogs: Catalogs, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="common.i18n.catalogs"):
        text = catalogs.translator("en").format("Request {reference} of {who}", reference="DD-1")
    assert text == "Request DD-1 of {who}"
    assert "'who'" in caplog.text


def test_a_template_cannot_reach_into_a_values_attributes(catalogs: Catalogs) -> None:
    en = catalogs.translator("en")
    assert en.format("{reference.__class__}", reference="DD-1") == "{reference.__class__}"
    assert en.format("{0}", reference="DD-1") == "{0}"


def test_a_template_with_a_stray_brace_is_shown_as_written(catalogs: Catalogs) -> None:
    assert catalogs.translator("ru").format("Код {code", code="1") == "Код {code"


def test_an_unknown_locale_gets_its_nearest_shipped_one_or_english(catalogs: Catalogs) -> None:
    assert catalogs.translator("zh-TW").locale == "zh_Hant"
    assert catalogs.translator("pt_BR").locale == "en"
    assert catalogs.translator("pt_BR").gettext(MENU) == MENU


def test_a_missing_translation_shows_the_english_source() -> None:
    lv = Catalogs.load(FIXTURES / "locales_missing" / "locales").translator("lv")
    assert lv.gettext(MENU) == MENU
    assert not lv.has(MENU)
    assert lv.gettext("Back", context="button") == "Atpakaļ"


def test_a_fuzzy_translation_is_not_shown_to_customers() -> None:
    catalogs = Catalogs.load(FIXTURES / "locales_fuzzy" / "locales")
    zh = catalogs.translator("zh_Hant")
    assert zh.gettext(DUE) == DUE
    assert not catalogs.has("zh_Hant", DUE)
    assert catalogs.has("zh_Hant", MENU)


def test_the_catalogs_own_header_picks_the_form_whatever_order_babel_lists(
    tmp_path: Path,
) -> None:
    # The same Latvian catalog written in CLDR's zero, one, other order (Babel 2.19's) and
    # in gettext's one, other, zero (Babel 2.18's): each reads the same to a customer.
    source = FIXTURES / "locales_clean" / "locales" / "lv" / "LC_MESSAGES" / "messages.po"
    target = tmp_path / "lv" / "LC_MESSAGES" / "messages.po"
    target.parent.mkdir(parents=True)
    text = source.read_text(encoding="utf-8")
    start, end = text.index('"Plural-Forms:'), text.index('"MIME-Version')
    header = (
        '"Plural-Forms: nplurals=3; plural=(n%10==0 || (n%100>=11 && n%100<=19) ? 0 : '
        'n%10==1 ? 1 : 2);\\n"\n'
    )
    reordered = text[:start] + header + text[end:]
    reordered = reordered.replace("msgstr[0]", "msgstr[x]").replace("msgstr[2]", "msgstr[0]")
    reordered = reordered.replace("msgstr[1]", "msgstr[2]").replace("msgstr[x]", "msgstr[1]")
    target.write_text(reordered, encoding="utf-8")
    lv = Catalogs.load(tmp_path).translator("lv")
    assert [lv.format(lv.ngettext(ONE, OTHER, n), count=n) for n in (0, 1, 4, 11, 21)] == [
        "Jums ir 0 atvērtu pieprasījumu.",
        "Jums ir 1 atvērts pieprasījums.",
        "Jums ir 4 atvērti pieprasījumi.",
        "Jums ir 11 atvērtu pieprasījumu.",
        "Jums ir 21 atvērts pieprasījums.",
    ]


def test_a_plural_formula_that_is_not_c_is_refused_with_its_file(tmp_path: Path) -> None:
    source = FIXTURES / "locales_clean" / "locales" / "ru" / "LC_MESSAGES" / "messages.po"
    target = tmp_path / "ru" / "LC_MESSAGES" / "messages.po"
    target.parent.mkdir(parents=True)
    text = source.read_text(encoding="utf-8")
    start, end = text.index('"Plural-Forms:'), text.index('"MIME-Version')
    target.write_text(
        text[:start] + '"Plural-Forms: nplurals=3; plural=n.__class__;\\n"\n' + text[end:],
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        Catalogs.load(tmp_path)
    assert "ru/LC_MESSAGES/messages.po: Plural-Forms: " in str(caught.value)


def test_a_broken_catalog_is_refused_with_its_file_and_line() -> None:
    with pytest.raises(ConfigError) as caught:
        Catalogs.load(FIXTURES / "locales_broken" / "locales")
    assert str(caught.value).endswith(
        "locales_broken/locales/lv/LC_MESSAGES/messages.po:39: 'this' is not a PO keyword; a line "
        'starts with msgid, msgstr, msgctxt, a quoted continuation "…" or # for a comment'
    )
    assert caught.value.line == 39


def test_a_missing_locales_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such locales folder"):
        Catalogs.load(tmp_path / "nowhere")


def test_the_shipped_catalogs_load_and_cover_every_shipped_locale() -> None:
    catalogs = Catalogs.load(REPO_ROOT / "locales")
    assert catalogs.locales == SHIPPED_LOCALES


def test_a_list_is_joined_the_way_each_locale_joins_lists(catalogs: Catalogs) -> None:
    items = ["A", "B", "C"]
    joined = {loc: catalogs.translator(loc).format_list(items) for loc in SHIPPED_LOCALES}
    assert joined == {
        "en": "A, B, and C",
        "lv": "A, B un C",
        "ru": "A, B и C",
        "zh_Hans": "A、B和C",
        "zh_Hant": "A、B和C",
    }
    lv = catalogs.translator("lv")
    assert lv.format("Dzēstie dati: {items}.", items=("Darījumi", "Sarunu vēsture")) == (
        "Dzēstie dati: Darījumi un Sarunu vēsture."
    )


def test_a_catalog_that_is_not_utf8_is_refused_with_its_file(tmp_path: Path) -> None:
    po = tmp_path / "lv" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_bytes(b'msgid "Back"\nmsgstr "Atpaka\xff"\n')
    with pytest.raises(ConfigError, match=r"lv/LC_MESSAGES/messages\.po: not valid UTF-8"):
        Catalogs.load(tmp_path)


def test_a_folder_named_after_no_known_locale_is_refused(tmp_path: Path) -> None:
    po = tmp_path / "xx" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid "Back"\nmsgstr "Back"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown locale 'xx'"):
        Catalogs.load(tmp_path)


def test_a_format_spec_that_does_not_fit_its_value_still_shows_the_value(
    catalogs: Catalogs,
) -> None:
    en = catalogs.translator("en")
    assert en.format("{name:%Q} / {items:nonsense}", name="Anna", items=["a", "b"]) == (
        "Anna / a, b"
    )
