"""``datadesk locales check`` as a product team runs it: one ``file:line: message`` per problem.

Each broken case lives in ``tests/fixtures/locales_<case>/`` as only the files
that differ from ``tests/fixtures/locales_clean/``; a test lays them over a copy
of the clean project and runs the real command in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.settings import REPO_ROOT
from datadesk.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
LV = "locales/lv/LC_MESSAGES/messages.po"
RU = "locales/ru/LC_MESSAGES/messages.po"
ZH_HANS = "locales/zh_Hans/LC_MESSAGES/messages.po"
ZH_HANT = "locales/zh_Hant/LC_MESSAGES/messages.po"


def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str | None = None) -> Path:
    """A copy of the clean fixture project with ``case``'s files laid over it; the cwd."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "locales_clean", root)
    if case is not None:
        shutil.copytree(FIXTURES / f"locales_{case}", root, dirs_exist_ok=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("DATADESK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DATADESK_LOCALES_DIR", str(root / "locales"))
    monkeypatch.setenv("DATADESK_DIALOGS_DIR", str(root / "dialogs"))
    return root


def check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Run ``datadesk locales check``; return the exit status and the lines it printed."""
    status = main(["locales", "check"])
    out = capsys.readouterr()
    return status, [*out.out.splitlines(), *out.err.splitlines()]


def test_complete_catalogs_pass_with_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, monkeypatch)
    status, lines = check(capsys)
    assert status == 0
    assert lines == [
        "locales check: 5 locales (en, lv, ru, zh_Hans, zh_Hant), 4 messages each, all translated"
    ]


def test_a_missing_translation_fails_with_its_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, monkeypatch, "missing")
    status, lines = check(capsys)
    assert status == 1
    assert lines == [
        f'{LV}:37: missing translation of "What would you like to do?"',
        "locales check: 1 problem(s)",
    ]


def test_a_misspelt_placeholder_fails_naming_both_spellings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, monkeypatch, "placeholder")
    status, lines = check(capsys)
    assert status == 1
    assert lines[0] == (
        f'{RU}:25: translation of "Your request {{reference}} is due on {{due_date}}." has '
        "placeholders {due_date}, {referense}; the source has {due_date}, {reference}"
    )
    assert len(lines) == 2


def test_a_fuzzy_translation_fails_until_someone_reviews_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, monkeypatch, "fuzzy")
    status, lines = check(capsys)
    assert status == 1
    assert lines == [
        f'{ZH_HANT}:24: fuzzy translation of "Your request {{reference}} is due on {{due_date}}.": '
        "review it, then remove the fuzzy flag",
        "locales check: 1 problem(s)",
    ]


def test_a_plural_with_the_wrong_number_of_forms_fails_and_says_which_numbers_use_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, monkeypatch, "plural")
    status, lines = check(capsys)
    assert status == 1
    assert lines[:2] == [
        f'{LV}:30: "You have {{count}} open request." has 2 plural forms; the Plural-Forms header '
        "of this Latvian catalog needs 3: [0] 1, 21, 31…; [1] 2, 3, 4…; [2] 0, 10, 11…",
        f'{ZH_HANS}:29: "You have {{count}} open request." has 2 plural forms; the Plural-Forms '
        "header of this Chinese (Simplified) catalog needs 1: [0] 0, 1, 2…",
    ]


def replace_plural_forms(po: Path, header: str) -> None:
    """Write ``header`` as the catalog's ``Plural-Forms`` line, in place of the one it has."""
    text = po.read_text(encoding="utf-8")
    start = text.index('"Plural-Forms:')
    end = text.index('"MIME-Version')
    po.write_text(text[:start] + f'"Plural-Forms: {header}\\n"\n' + text[end:], encoding="utf-8")


def test_a_plural_forms_header_with_too_few_forms_fails_naming_cldrs_categories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, monkeypatch)
    replace_plural_forms(root / RU, "nplurals=2; plural=(n != 1);")
    status, lines = check(capsys)
    assert status == 1
    assert lines[0] == (
        f"{RU}:15: Plural-Forms says nplurals=2; Russian has 3: "
        "many (0, 5, 6…), one (1, 21, 31…), few (2, 3, 4…)"
    )


def test_a_plural_formula_that_puts_a_number_in_the_wrong_category_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # gettext's traditional Latvian formula: only 0 itself takes the third form, whereas
    # CLDR counts 10, 11–19, 20, 30… with 0 ("10 pieprasījumu", not "10 pieprasījumi").
    root = project(tmp_path, monkeypatch)
    replace_plural_forms(
        root / LV, "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n != 0 ? 1 : 2);"
    )
    status, lines = check(capsys)
    assert status == 1
    assert lines[0] == (
        f"{LV}:15: Plural-Forms puts 10 in form [1] with 2, but CLDR counts 10 as 'zero' and 2 "
        "as 'other'; Latvian has 3: zero (0, 10, 11…), one (1, 21, 31…), other (2, 3, 4…)"
    )


def test_a_plural_formula_in_another_order_than_babels_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Babel 2.19 lists Latvian as zero, one, other; a catalog may keep one, other, zero.
    root = project(tmp_path, monkeypatch)
    po = root / LV
    replace_plural_forms(
        po, "nplurals=3; plural=(n%10==0 || (n%100>=11 && n%100<=19) ? 0 : n%10==1 ? 1 : 2);"
    )
    text = po.read_text(encoding="utf-8")
    text = text.replace("msgstr[0]", "msgstr[x]").replace("msgstr[2]", "msgstr[0]")
    text = text.replace("msgstr[1]", "msgstr[2]").replace("msgstr[x]", "msgstr[1]")
    po.write_text(text, encoding="utf-8")
    assert check(capsys) == (
        0,
        [
            "locales check: 5 locales (en, lv, ru, zh_Hans, zh_Hant), 4 messages each, all translated"
        ],
    )


def test_a_plural_formula_that_is_not_c_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, monkeypatch)
    replace_plural_forms(root / RU, "nplurals=3; plural=__import__('os');")
    status, lines = check(capsys)
    assert status == 1
    assert lines[0].startswith(f"{RU}:15: Plural-Forms")
    assert "is not a gettext formula" in lines[0]


def test_a_text_added_to_the_dialogs_fails_until_the_catalogs_are_updated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, monkeypatch, "outdated")
    status, lines = check(capsys)
    assert status == 1
    for po in ("locales/en/LC_MESSAGES/messages.po", LV, RU, ZH_HANS, ZH_HANT):
        assert f'dialogs/status.yaml:19: "Thank you." is not in {po}; run `make locales`' in lines
    assert (
        "locales/messages.pot: out of date with the sources (1 new, 0 gone); run `make locales`"
        in lines
    )


def test_an_entry_the_dialogs_no_longer_have_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, monkeypatch)
    dialog = root / "dialogs" / "status.yaml"
    dialog.write_text(
        dialog.read_text(encoding="utf-8").replace('text: "What would you like to do?"', ""),
        encoding="utf-8",
    )
    status, lines = check(capsys)
    assert status == 1
    assert (
        f'{LV}:37: "What would you like to do?" is no longer in the sources; run `make locales`'
        in lines
    )


def test_a_broken_catalog_is_reported_with_its_line_and_the_others_are_still_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, monkeypatch, "broken")
    (tmp_path / "project" / "locales/ru/LC_MESSAGES/messages.po").unlink()
    status, lines = check(capsys)
    assert status == 1
    assert lines[:2] == [
        f"{LV}:39: 'this' is not a PO keyword; a line starts with msgid, msgstr, msgctxt, "
        'a quoted continuation "…" or # for a comment',
        f"{RU}: no catalog for shipped locale ru; create it with "
        "`pybabel init -i locales/messages.pot -d locales -l ru`",
    ]


@pytest.mark.parametrize(
    ("written", "reported"),
    [
        ("msgstr Что вы хотите сделать?", "msgstr: the text must be in double quotes"),
        (
            'msgstr "Что вы хотите сделать?',
            "msgstr: the quoted text is not closed with a double quote",
        ),
        ('msgstr Что вы хотите сделать?"', "msgstr: the text must be in double quotes"),
        (
            'msgstr "Что "вы" хотите сделать?"',
            'msgstr: text after the closing quote; write a quote inside the text as \\"',
        ),
        (
            'msgstr "Что вы хотите \\q сделать?"',
            "msgstr: unknown escape \\q; write a backslash as \\\\",
        ),
    ],
)
def test_a_malformed_msgstr_line_is_refused_with_its_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    written: str,
    reported: str,
) -> None:
    # Babel alone reads each of these by cutting off the first and last letters.
    root = project(tmp_path, monkeypatch)
    po = root / RU
    text = po.read_text(encoding="utf-8")
    good = 'msgstr "Что вы хотите сделать?"'
    line = text[: text.index(good)].count("\n") + 1
    po.write_text(text.replace(good, written), encoding="utf-8")
    status, lines = check(capsys)
    assert status == 1
    assert lines[0] == f"{RU}:{line}: {reported}"


def test_a_dialog_file_that_is_not_yaml_is_reported_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, monkeypatch)
    (root / "dialogs" / "broken.yaml").write_text('steps:\n  - text: "unclosed\n', encoding="utf-8")
    status, lines = check(capsys)
    assert status == 1
    assert lines[0].startswith("dialogs/broken.yaml:3: not valid YAML")


def test_the_shipped_catalogs_pass_the_check() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")}
    done = subprocess.run(
        [sys.executable, "-m", "datadesk.cli", "locales", "check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 locales (en, lv, ru, zh_Hans, zh_Hant)" in done.stdout


def test_extra_locale_folders_are_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, monkeypatch)
    (root / "locales" / "de" / "LC_MESSAGES").mkdir(parents=True)
    (root / "locales" / "xx" / "LC_MESSAGES").mkdir(parents=True)
    shutil.copy(root / "locales/en/LC_MESSAGES/messages.po", root / "locales/xx/LC_MESSAGES")
    status, lines = check(capsys)
    assert status == 1
    assert lines == [
        "locales/de/LC_MESSAGES/messages.po: no catalog for locale de; create it with "
        "`pybabel init -i locales/messages.pot -d locales -l de`",
        "locales/xx/LC_MESSAGES/messages.po: folder 'xx' is not a known locale id (e.g. lv, zh_Hant)",
        "locales check: 2 problem(s)",
    ]


def test_a_message_translated_twice_in_one_catalog_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, monkeypatch)
    with (root / LV).open("a", encoding="utf-8") as po:
        po.write('\nmsgctxt "button"\nmsgid "Back"\nmsgstr "Atpakaļ uz sākumu"\n')
    status, lines = check(capsys)
    assert status == 1
    assert lines == [
        f'{LV}:47: "Back" is already translated at line 42; keep one',
        "locales check: 1 problem(s)",
    ]
