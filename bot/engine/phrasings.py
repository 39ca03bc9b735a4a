"""Example phrasings for free text: read from ``phrasings:`` in dialog files, and checked.

The format (``dialogs/README.md``, "Free text")::

    phrasings:
      <main-menu option id>:       # the journey, e.g. erasure
        <locale>:                  # a shipped locale: en, lv, ru, zh_Hans, zh_Hant
          - "delete my data"

``check_phrasings`` needs the flows: every journey must be an option of the
main menu, and no phrasing may appear twice (for two journeys, it could not
tell them apart; for one, it is a slip). ``uncovered`` names the main-menu
options that free text cannot find in some locale: ``dialogs check`` notes
them without failing (a new option works by its button at once), and the
test suite holds the shipped dialogs to full coverage.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from bot.engine.model import Dialogs, Phrasing, Step
from bot.engine.schema import FieldReader
from bot.engine.walk import START_FLOW
from bot.engine.yamlsrc import LineDict, LineList
from bot.i18n import SHIPPED_LOCALES


def read_phrasings(reader: FieldReader, data: Any, line: int) -> list[Phrasing]:
    """The phrasings of one file's ``phrasings:`` mapping; problems noted on ``reader``."""
    if not isinstance(data, LineDict):
        reader.error(line, "phrasings must map journeys to locales to lists of phrasings")
        return []
    found: list[Phrasing] = []
    for journey, by_locale in data.items():
        at = data.line_of(journey)
        if not isinstance(by_locale, LineDict):
            reader.error(at, f"phrasings {journey!r}: expected locales, e.g. 'en:', each a list")
            continue
        for locale, items in by_locale.items():
            locale_line = by_locale.line_of(locale)
            if locale not in SHIPPED_LOCALES:
                reader.error(
                    locale_line,
                    f"phrasings {journey!r}: locale {locale!r} is not shipped "
                    f"(one of {', '.join(SHIPPED_LOCALES)})",
                )
                continue
            if not isinstance(items, LineList):
                reader.error(locale_line, f"phrasings {journey}.{locale}: expected a list")
                continue
            for item, item_line in zip(items, items.item_lines, strict=True):
                if not isinstance(item, str) or not item.strip():
                    reader.error(item_line, f"phrasings {journey}.{locale}: empty phrasing")
                    continue
                found.append(Phrasing(reader.at(item_line), journey, locale, item))
    return found


def _same(text: str) -> str:
    """What two phrasings that read the same have in common: case, marks and punctuation go."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(c if c.isalnum() else " " for c in folded)
    return " ".join(kept.split())


def main_menu(dialogs: Dialogs) -> Step | None:
    """The main menu: the start flow's home step, when it is a question."""
    start = dialogs.flows.get(START_FLOW)
    if start is None:
        return None
    step = start.steps.get(start.home or start.start)
    return step if step is not None and step.kind == "ask" else None


def check_phrasings(dialogs: Dialogs) -> list[str]:
    """Phrasings for unknown journeys, and duplicate phrasings, as ``file:line: …``."""
    errors: list[str] = []
    menu = main_menu(dialogs)
    journeys = {o.id for o in menu.options} if menu is not None else set()
    covered: set[tuple[str, str]] = set()
    seen: dict[tuple[str, str], Phrasing] = {}
    for phrasing in dialogs.phrasings:
        if phrasing.journey not in journeys:
            errors.append(
                f"{phrasing.where}: phrasings for {phrasing.journey!r}, which is not a main-menu "
                f"option (one of {', '.join(sorted(journeys))})"
            )
            continue
        covered.add((phrasing.journey, phrasing.locale))
        key = (phrasing.locale, _same(phrasing.text))
        first = seen.get(key)
        if first is None:
            seen[key] = phrasing
        elif first.journey != phrasing.journey:
            errors.append(
                f"{phrasing.where}: {phrasing.text!r} is also a phrasing of {first.journey!r} "
                f"({first.where}); free text could not tell the two apart"
            )
        else:
            errors.append(f"{phrasing.where}: duplicate phrasing {phrasing.text!r} ({first.where})")
    return errors


def uncovered(dialogs: Dialogs) -> list[str]:
    """Main-menu options without phrasings in some shipped locale, as ``file:line: …``."""
    menu = main_menu(dialogs)
    if menu is None:
        return []
    covered = {(p.journey, p.locale) for p in dialogs.phrasings}
    notes = []
    for option in menu.options:
        missing = [loc for loc in SHIPPED_LOCALES if (option.id, loc) not in covered]
        if missing:
            notes.append(
                f"{option.where}: main-menu option {option.id!r} has no phrasings in "
                f"{', '.join(missing)}; typed text in those languages cannot find it"
            )
    return notes
