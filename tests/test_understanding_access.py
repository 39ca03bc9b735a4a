"""Free text tells "a copy of my data" from "delete my data" in every language.

Both journeys talk about "my data"; what tells them apart is the verb. These
messages are none of the phrasings in ``dialogs/*.yaml`` nor of the evaluation
set (``bench/understanding_eval.yaml``).
"""

from __future__ import annotations

import pytest
import yaml

from bot.engine import load_dialogs
from bot.i18n import SHIPPED_LOCALES
from bot.understanding import Matcher
from common.settings import REPO_ROOT

# (access, erasure): the same words around a different verb; "send me my data" in every
# language, whose possessive ("manus", "мои", 我的) and noun are erasure's words too.
PAIRS = {
    "en": [
        ("please get me a copy of my data", "please delete my data"),
        ("which data do you hold on me", "delete the data you hold on me"),
        ("send me my personal data", "erase my personal data"),
        ("please send me the data you have about me", "please delete the data you have about me"),
        ("I want my personal data sent to me", "I want my personal data deleted"),
    ],
    "lv": [
        ("gribu savu datu kopiju", "gribu dzēst savus datus"),
        ("kādus datus par mani glabājat", "dzēsiet datus, ko par mani glabājat"),
        ("nosūtiet man manus personas datus", "dzēsiet manus personas datus"),
        ("lūdzu, atsūtiet man manus datus", "lūdzu, izdzēsiet manus datus"),
    ],
    "ru": [
        ("копию моих данных, пожалуйста", "удалите мои данные, пожалуйста"),
        ("какие данные вы обо мне храните", "удалите данные, которые вы обо мне храните"),
        ("пришлите мои персональные данные", "сотрите мои персональные данные"),
        ("пришлите мне мои данные", "сотрите все мои данные"),
        ("отправьте мне мои персональные данные", "удалите мои персональные данные"),
    ],
    "zh_Hans": [
        ("我要我的数据副本", "我要删除我的数据"),
        ("你们存了我哪些数据", "把你们存的我的数据删掉"),
        ("请把我的个人信息发给我", "请把我的个人信息删掉"),
        ("把我的资料寄给我", "删掉我的个人数据"),
    ],
    "zh_Hant": [
        ("我要我的資料副本", "我要刪除我的資料"),
        ("你們存了我哪些資料", "把你們存的我的資料刪掉"),
        ("請把我的個人資料發給我", "請把我的個人資料刪掉"),
        ("把我的個資傳給我", "刪掉我的個人資料"),
    ],
}


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return load_dialogs(REPO_ROOT / "dialogs").matcher


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
def test_a_copy_of_my_data_is_access_and_deleting_it_is_erasure(
    matcher: Matcher, locale: str
) -> None:
    for access, erasure in PAIRS[locale]:
        assert matcher.guess(access).journey == "access", access
        assert matcher.guess(erasure).journey == "erasure", erasure


def test_the_pairs_are_neither_phrasings_nor_evaluation_messages() -> None:
    evaluation = yaml.safe_load(
        (REPO_ROOT / "bench" / "understanding_eval.yaml").read_text(encoding="utf-8")
    )
    known = {text.casefold() for by_journey in evaluation.values() for texts in by_journey.values() for text in texts}  # fmt: skip
    known |= {p.text.casefold() for p in load_dialogs(REPO_ROOT / "dialogs").phrasings}
    for pairs in PAIRS.values():
        for access, erasure in pairs:
            assert access.casefold() not in known
            assert erasure.casefold() not in known


def test_the_evaluation_set_asks_for_access_in_every_language() -> None:
    evaluation = yaml.safe_load(
        (REPO_ROOT / "bench" / "understanding_eval.yaml").read_text(encoding="utf-8")
    )
    for locale in SHIPPED_LOCALES:
        assert len(evaluation[locale]["access"]) >= 8, locale


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
def test_access_messages_of_the_evaluation_set_are_mostly_read_as_access(
    matcher: Matcher, locale: str
) -> None:
    evaluation = yaml.safe_load(
        (REPO_ROOT / "bench" / "understanding_eval.yaml").read_text(encoding="utf-8")
    )
    texts = evaluation[locale]["access"]
    right = sum(matcher.guess(text).journey == "access" for text in texts)
    assert right / len(texts) >= 0.75, (locale, right)
