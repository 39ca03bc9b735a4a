"""Lists inside a sentence: lv and ru write their items with a lower-case initial.

A category name starts with a capital where it heads a line ("Kontaktinformācija:
tiks dzēsti") but not in the middle of a sentence ("Dzēstie dati:
kontaktinformācija un darījumi"). The translator asks for that with
``{categories:lower}`` (locales/README.md, "Placeholders").
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.engine_adapter import DialogEngine
from bot.i18n import Catalogs
from bot.notices import render
from common.i18n.catalogs import lower_initial
from common.settings import REPO_ROOT

PARTLY_DONE = {
    "type": "request_outcome",
    "reference": "DD-7K2Q9M",
    "outcome": "partly_done",
    "details": {"erased": ["contact", "marketing", "chat_history"], "holds": []},
}


@pytest.fixture(scope="module")
def say_in() -> Callable[[str], str]:
    catalogs = Catalogs.load(REPO_ROOT / "locales")
    engine = DialogEngine()
    dialogs = engine.load(REPO_ROOT / "dialogs", catalogs)

    def outcome(locale: str) -> str:
        def say(message_id: str, **params: object) -> str:
            return engine.say(dialogs, catalogs, locale, message_id, **params)

        return "\n".join(render(PARTLY_DONE, say, catalogs.translator(locale)))

    return outcome


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("lv", "Dzēstie dati: kontaktinformācija, mārketinga iestatījumi un sarunu vēsture."),
        ("ru", "Удалено: контактные данные, "),
        ("zh_Hans", "已删除：联系方式、"),
    ],
)
def test_deleted_categories_are_listed_in_lower_case_mid_sentence(
    say_in: Callable[[str], str], locale: str, expected: str
) -> None:
    text = say_in(locale)
    assert expected in text, text


def test_the_list_of_chosen_categories_is_lower_case_in_latvian_and_russian() -> None:
    catalogs = Catalogs.load(REPO_ROOT / "locales")
    for locale, head, items in (
        ("lv", "Jūsu izvēle: mārketinga iestatījumi un darījumi.", ["Mārketinga iestatījumi", "Darījumi"]),
        ("ru", "Выбрано: история переписки и операции.", ["История переписки", "Операции"]),
    ):  # fmt: skip
        speak = catalogs.translator(locale)
        template = speak.gettext("Chosen so far: {chosen}. Choose more, or press Done choosing.")
        assert speak.format(template, chosen=items).startswith(head), locale


def test_an_acronym_keeps_its_capitals() -> None:
    assert lower_initial("SMS") == "SMS"
    assert lower_initial("PDF kopija") == "PDF kopija"
    assert lower_initial("E-pasts") == "e-pasts"
    assert lower_initial("Контактные данные") == "контактные данные"
    assert lower_initial("") == ""
