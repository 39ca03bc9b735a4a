"""Free text: the matcher on the shipped phrasings, scored on the evaluation set kept apart from them.

The evaluation set (``bench/understanding_eval.yaml``) holds messages as
customers type them; ``make bench`` reports the same accuracy with timings.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bot.engine import Dialogs, load_dialogs
from bot.engine.phrasings import main_menu, uncovered
from bot.i18n import SHIPPED_LOCALES
from bot.understanding import Matcher
from common.settings import REPO_ROOT

EVALUATION = REPO_ROOT / "bench" / "understanding_eval.yaml"
TARGET = 0.9


@pytest.fixture(scope="module")
def dialogs() -> Dialogs:
    return load_dialogs(REPO_ROOT / "dialogs")


@pytest.fixture(scope="module")
def matcher(dialogs: Dialogs) -> Matcher:
    return dialogs.matcher


def _evaluation() -> dict[str, dict[str, list[str]]]:
    data: Any = yaml.safe_load(EVALUATION.read_text(encoding="utf-8"))
    return {str(k): {str(j): [str(t) for t in ts] for j, ts in v.items()} for k, v in data.items()}


def _same(text: str) -> str:
    return " ".join(text.casefold().split())


def test_the_evaluation_set_has_30_messages_per_locale_none_of_them_an_example(
    dialogs: Dialogs,
) -> None:
    evaluation = _evaluation()
    assert set(evaluation) == set(SHIPPED_LOCALES)
    examples = {_same(p.text) for p in dialogs.phrasings}
    for locale, by_journey in evaluation.items():
        named = [t for journey, texts in by_journey.items() if journey != "none" for t in texts]
        assert len(named) >= 30, locale
        assert not [t for t in named if _same(t) in examples], locale


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
def test_top1_accuracy_on_the_evaluation_set_is_at_least_90_percent(
    locale: str, matcher: Matcher
) -> None:
    by_journey = _evaluation()[locale]
    cases = [(t, j) for j, texts in by_journey.items() if j != "none" for t in texts]
    misses = [(t, j, matcher.guess(t).journey) for t, j in cases if matcher.guess(t).journey != j]
    accuracy = 1 - len(misses) / len(cases)
    assert accuracy >= TARGET, f"{locale}: {accuracy:.0%}, missed {misses}"


def test_every_menu_journey_has_phrasings_in_every_shipped_locale(dialogs: Dialogs) -> None:
    menu = main_menu(dialogs)
    assert menu is not None
    assert uncovered(dialogs) == []
    assert {p.journey for p in dialogs.phrasings} == {o.id for o in menu.options}


@pytest.mark.parametrize("mash", ["asdfghjkl", "qwertzuiop", "фывапролдж", "zxcvbnm 12345"])
def test_keyboard_mash_names_no_journey(mash: str, matcher: Matcher) -> None:
    assert matcher.guess(mash).offers == ()


@pytest.mark.parametrize(
    "text",
    [
        "I have a question",
        "hi there",
        "can you help me",
        "Labdien, man ir jautājums",
        "Здравствуйте, у меня вопрос",
        "你好，我有个问题",
    ],
)
def test_a_greeting_or_a_question_off_the_menu_names_no_journey(
    text: str, matcher: Matcher
) -> None:
    # Filler words ("I have", "у меня", "我有") must not make it look like a journey's phrasing.
    assert matcher.guess(text).offers == ()


@pytest.mark.parametrize(
    ("written", "typed"),
    [
        ("izdzēsiet manus personas datus", "izdzesiet manus personas datus"),
        ("Vēlos runāt ar cilvēku", "velos runat ar cilveku"),
        ("отпишите меня от рассылки, пожалуйста", "отпишите меня от рассылки, пожалуиста"),
        ("поменять всё", "поменять все"),
    ],
)
def test_missing_diacritics_read_as_if_written(written: str, typed: str, matcher: Matcher) -> None:
    assert matcher.rank(typed) == matcher.rank(written)


@pytest.mark.parametrize(
    ("typed", "journey"),
    [
        ("plese delte my persnal data", "erasure"),
        ("unsubscrbe from marketting", "marketing_opt_out"),
        ("удолите мои данные", "erasure"),
    ],
)
def test_typos_are_forgiven(typed: str, journey: str, matcher: Matcher) -> None:
    assert matcher.guess(typed).journey == journey


@pytest.mark.parametrize(
    ("typed", "journey"),
    [
        ("dzēšot manus datus", "erasure"),
        ("nomainītu tālruņa numuru", "update_contact"),
        ("по поводу удаления моих персональных данных", "erasure"),
        ("смена номера телефона", "update_contact"),
        ("рекламных рассылок больше не надо", "marketing_opt_out"),
    ],
)
def test_inflected_forms_are_understood(typed: str, journey: str, matcher: Matcher) -> None:
    assert matcher.guess(typed).journey == journey


@pytest.mark.parametrize(
    ("typed", "journey"),
    [
        ("我想删除我在你们银行的所有个人数据", "erasure"),
        ("麻煩幫我轉真人客服", "agent"),
        ("以后别再给我打推销电话了", "marketing_opt_out"),
    ],
)
def test_chinese_without_spaces_is_understood(typed: str, journey: str, matcher: Matcher) -> None:
    assert matcher.guess(typed).journey == journey


def test_a_pronoun_that_one_journeys_examples_happen_to_use_does_not_decide() -> None:
    # Erasure's examples all say "manus datus" (as "dzēst" takes it), access's "manu" or
    # "savus": "manus" is still "my", and "atsūtiet" is what the customer asks for.
    matcher = Matcher(
        {
            "erasure": {
                "lv": ["dzēst manus datus", "iznīciniet manus datus", "izņemiet manus datus"]
            },
            "access": {
                "lv": ["atsūtiet manu datu kopiju", "atsūtiet man kopiju", "parādiet savus datus"]
            },
        }
    )
    assert matcher.guess("atsūtiet manus datus").journey == "access"


def test_an_ambiguous_word_offers_at_most_three_journeys_best_first(matcher: Matcher) -> None:
    guess = matcher.guess("email")
    assert guess.offers == ("update_contact", "marketing_opt_out")
    for text in ("my data", "мои данные", "資料", "i want", "please"):
        assert len(matcher.guess(text).offers) <= 3


def test_a_matcher_built_from_no_phrasings_understands_nothing() -> None:
    assert Matcher({}).guess("delete my data").offers == ()
