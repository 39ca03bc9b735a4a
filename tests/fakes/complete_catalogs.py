"""Catalogs in which every dialog text is translated (as itself), for tests of the dialog checks.

The shipped ``locales/`` are filled in by translators on their own schedule;
tests that are about the checks, not the translations, use these instead.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from bot.engine.loader import read_dialogs
from bot.engine.model import Text
from bot.i18n import SHIPPED_LOCALES


def _texts(dialogs_dir: Path) -> list[Text]:
    # Broken files are read as far as they go: their texts are translated too.
    dialogs, _ = read_dialogs(dialogs_dir)
    found: list[Text] = list(dialogs.messages.values())
    for flow in dialogs.flows.values():
        for step in flow.steps.values():
            found += [t for t in (step.text, step.contact_button) if t is not None]
            found += [o.label for o in step.options]
    return [t for t in found if not t.literal]


def write_complete_locales(
    dialogs_dir: Path, target: Path, *, leave_out: dict[str, str] | None = None
) -> Path:
    """Write ``target/<locale>/LC_MESSAGES/messages.po`` for every shipped locale; return ``target``.

    ``leave_out`` maps a locale to one source text left untranslated there.
    """
    texts = _texts(dialogs_dir)
    for locale in SHIPPED_LOCALES:
        catalog = Catalog(locale=locale, domain="messages")
        for text in texts:
            if leave_out and leave_out.get(locale) == text.source:
                continue
            if text.plural is not None:
                forms = tuple([text.source] + [text.plural] * (catalog.num_plurals - 1))
                catalog.add((text.source, text.plural), forms, context=text.context)
            else:
                catalog.add(text.source, text.source, context=text.context)
        folder = target / locale / "LC_MESSAGES"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "messages.po").open("wb") as handle:
            write_po(handle, catalog)
    return target
