"""The dialog extractor, through Babel's own extraction API and the real ``pybabel`` command."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import extract
from babel.messages.pofile import read_po

from bot.i18n.sources import extract_template
from common.errors import ConfigError
from common.settings import REPO_ROOT

FIXTURES = Path(__file__).parent / "fixtures"
PYBABEL = Path(sys.executable).parent / "pybabel"

DIALOG = b"""\
flow: verify
steps:
  - id: ask_phone
    # TRANSLATORS: the customer has not proved who they are yet.
    text: "Please share your phone number."
    context: verify
    comment: "Shown above the share-contact button."
    options:
      - {id: share, label: "Share my phone number"}
      - id: "no"
        label: No
  - id: open
    text:
      one: "You have {count} open request."
      other: "You have {count} open requests."
      count: count
    context: status
  - id: both
    text: ["First way to say it.", "Second way to say it."]
"""


def extracted(source: bytes, tags: tuple[str, ...] = ("TRANSLATORS:",)) -> list[tuple[object, ...]]:
    """What Babel makes of a dialog file: (line, message(s), comments, context) tuples."""
    fileobj = io.BytesIO(source)
    fileobj.name = "dialogs/verify.yaml"
    return list(extract("bot.i18n.extract:extract_dialogs", fileobj, comment_tags=tags))


def test_every_text_and_label_is_extracted_with_its_line_context_and_comments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.i18n.extract"):
        messages = extracted(DIALOG)
    assert messages == [
        (
            5,
            "Please share your phone number.",
            [
                "TRANSLATORS: the customer has not proved who they are yet.",
                "Shown above the share-contact button.",
            ],
            "verify",
        ),
        (9, "Share my phone number", [], None),
        (14, ("You have {count} open request.", "You have {count} open requests."), [], "status"),
        (19, "First way to say it.", [], None),
        (19, "Second way to say it.", [], None),
    ]
    # An unquoted No is a boolean to YAML: the author is told to quote it.
    assert "dialogs/verify.yaml:11: text is not a string; quote it" in caplog.text


def test_a_comment_without_a_translator_tag_is_not_carried() -> None:
    messages = extracted(DIALOG, tags=())
    assert messages[0][2] == ["Shown above the share-contact button."]


def test_a_plural_without_both_english_forms_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.i18n.extract"):
        messages = extracted(b'text: {other: "{count} requests", count: n}\n')
    assert messages == []
    assert "dialogs/verify.yaml:1: a plural text needs both 'one' and 'other'" in caplog.text


def test_broken_yaml_is_reported_with_its_file_and_line() -> None:
    with pytest.raises(ConfigError) as caught:
        extracted(b'steps:\n  - text: "fine"\n  - text: [unclosed\n')
    assert str(caught.value).startswith("dialogs/verify.yaml:4: not valid YAML")


def test_pybabel_extract_and_update_bring_a_new_dialog_text_into_every_catalog(
    tmp_path: Path,
) -> None:
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "locales_clean", root)
    (root / "dialogs" / "tests").mkdir()
    (root / "dialogs" / "tests" / "status.yaml").write_text('- bot: {text: "Not a source"}\n')
    with (root / "dialogs" / "status.yaml").open("a", encoding="utf-8") as dialog:
        dialog.write('  - id: thanks\n    text: "Thank you."\n    context: farewell\n')

    def pybabel(*args: str) -> None:
        # Fixed arguments from this test, run against a throwaway copy.
        subprocess.run([str(PYBABEL), "-q", *args], cwd=root, check=True, timeout=120)  # noqa: S603

    pybabel("extract", "-F", "babel.cfg", "-o", "locales/messages.pot", ".")
    pybabel("update", "-i", "locales/messages.pot", "-d", "locales", "-D", "messages")

    with (root / "locales" / "messages.pot").open("rb") as pot:
        template = read_po(pot)
    assert template.get("Thank you.", context="farewell") is not None
    assert template.get("Not a source") is None
    with (root / "locales" / "lv" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        lv = read_po(po, locale="lv")
    added = lv.get("Thank you.", context="farewell")
    assert added is not None
    assert added.string == ""
    assert added.locations == [("dialogs/status.yaml", 19)]
    # Translations already made survive the update.
    kept = lv.get("What would you like to do?")
    assert kept is not None
    assert kept.string == "Ko Jūs vēlētos darīt?"


def test_the_check_extracts_exactly_what_make_locales_extracts(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    subprocess.run(  # noqa: S603  (fixed arguments)
        [str(PYBABEL), "-q", "extract", "-F", "babel.cfg", "-o", str(pot),
         "--add-comments=TRANSLATORS:", "."],
        cwd=REPO_ROOT,
        check=True,
        timeout=120,
    )  # fmt: skip
    with pot.open("rb") as fileobj:
        by_pybabel = {(m.context, m.id, tuple(m.locations)) for m in read_po(fileobj) if m.id}
    template = extract_template(REPO_ROOT, REPO_ROOT / "dialogs")
    by_check = {(m.context, m.id, tuple(m.locations)) for m in template if m.id}
    assert by_check == by_pybabel
    assert len(by_check) > 100
