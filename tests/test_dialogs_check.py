"""``datadesk dialogs check``: every error kind, at its file and line, through the real command."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fakes.complete_catalogs import write_complete_locales

from bot.dialogs.cli import check_command
from bot.engine import DialogErrors, check_dialogs, load_dialogs
from bot.i18n import Catalogs
from bot.settings import BotSettings
from common.settings import REPO_ROOT

DIALOGS = REPO_ROOT / "dialogs"
BROKEN = Path(__file__).parent / "fixtures" / "dialogs_broken"
MARK = re.compile(r"#\s*error:\s*(.+?)\s*$")


def _dialogs_with(tmp_path: Path, *extra: Path) -> Path:
    """The shipped dialogs plus ``extra`` files (read last: named zz_*), in a fresh folder."""
    folder = tmp_path / "dialogs"
    folder.mkdir()
    for path in DIALOGS.glob("*.yaml"):
        shutil.copy(path, folder)
    for index, path in enumerate(extra):
        text = path.read_text(encoding="utf-8")
        if index:
            # Each fixture names its flow "broken"; a second one would be a duplicate flow.
            text = text.replace("\n  broken:", f"\n  broken_{index}:")
        (folder / f"zz_{index}_{path.name}").write_text(text, encoding="utf-8")
    return folder


def _catalogs_for(folder: Path, tmp_path: Path, **leave_out: str) -> Catalogs:
    return Catalogs.load(write_complete_locales(folder, tmp_path / "locales", leave_out=leave_out))


def _marks(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(n, m.group(1)) for n, line in enumerate(lines, 1) if (m := MARK.search(line))]


def test_the_shipped_dialogs_pass_when_every_text_is_translated(tmp_path: Path) -> None:
    dialogs, errors = check_dialogs(DIALOGS, _catalogs_for(DIALOGS, tmp_path))
    assert errors == []
    assert dialogs is not None
    assert {
        "start",
        "language",
        "verify",
        "update_contact",
        "marketing_opt_out",
        "erasure",
        "status",
        "agent",
    } <= set(dialogs.flows)


FIXTURES = sorted(BROKEN.glob("*.yaml"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_each_broken_fixture_is_reported_at_its_file_and_line(
    fixture: Path, tmp_path: Path
) -> None:
    folder = _dialogs_with(tmp_path, fixture)
    (line, expected), *_ = _marks(fixture)
    _, errors = check_dialogs(folder, _catalogs_for(folder, tmp_path))
    where = f"{(folder / f'zz_0_{fixture.name}').as_posix()}:{line}: "
    assert any(e.startswith(where) and expected in e for e in errors), errors
    # Nothing in the shipped files is blamed for the fixture's mistake.
    assert all(f"zz_0_{fixture.name}:" in e for e in errors), errors


def test_the_fixtures_cover_every_error_kind_the_issue_names() -> None:
    kinds = {p.stem for p in FIXTURES}
    assert {
        "unknown_step_target", "unreachable_step", "option_without_id", "duplicate_option_id",
        "callback_too_long", "unknown_validator", "unknown_action", "unhandled_outcome",
        "erasure_without_verification", "erasure_without_preview", "erasure_without_confirmation",
        "contact_change_without_old_new",
        "phrasings_unknown_journey", "phrasings_empty", "phrasings_locale_not_shipped",
        "phrasings_duplicate_across_journeys",
    } <= kinds  # fmt: skip


def test_a_text_missing_from_one_locale_is_named_with_its_line(tmp_path: Path) -> None:
    text = "Where should I send your one-time code?"
    catalogs = _catalogs_for(DIALOGS, tmp_path, lv=text)
    _, errors = check_dialogs(DIALOGS, catalogs)
    source = (DIALOGS / "verify.yaml").read_text().splitlines()
    line = next(n for n, written in enumerate(source, 1) if text in written)
    assert len(errors) == 1
    assert errors[0].endswith(f"verify.yaml:{line}: not translated in lv: {text!r}")


def test_every_error_is_listed_not_only_the_first(tmp_path: Path) -> None:
    picked = [
        BROKEN / "option_without_id.yaml",
        BROKEN / "duplicate_step_id.yaml",
        BROKEN / "unknown_key.yaml",
    ]
    folder = _dialogs_with(tmp_path, *picked)
    with pytest.raises(DialogErrors) as caught:
        load_dialogs(folder)
    assert len(caught.value.errors) == 3
    for index, path in enumerate(picked):
        (line, expected), *_ = _marks(path)
        assert any(
            f"zz_{index}_{path.name}:{line}: " in e and expected in e for e in caught.value.errors
        )


def test_a_message_code_needs_is_required(tmp_path: Path) -> None:
    folder = _dialogs_with(tmp_path)
    messages = folder / "messages.yaml"
    messages.write_text(
        messages.read_text().replace("  input.stale_button:", "  input.old_button:")
    )
    _, errors = check_dialogs(folder)
    assert any(
        e.endswith("message 'input.stale_button' is missing (code renders it)") for e in errors
    ), errors


def test_the_command_lists_errors_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _dialogs_with(
        tmp_path, BROKEN / "unknown_action.yaml", BROKEN / "unknown_validator.yaml"
    )
    settings = BotSettings(locales_dir=write_complete_locales(folder, tmp_path / "locales"))
    status = check_command(argparse.Namespace(dir=str(folder)), settings)
    out = capsys.readouterr()
    assert status == 1
    lines = out.out.splitlines()
    assert len(lines) == 2
    assert re.match(r".+zz_0_unknown_action\.yaml:4: .*unknown action 'send_money'", lines[0])
    assert re.match(r".+zz_1_unknown_validator\.yaml:4: .*unknown validator 'iban'", lines[1])
    assert "2 problem(s)" in out.err


def test_the_installed_command_says_ok_in_one_line_and_exits_0(tmp_path: Path) -> None:
    locales = write_complete_locales(DIALOGS, tmp_path / "locales")
    env = {**os.environ, "DATADESK_LOCALES_DIR": str(locales), "DATADESK_DATA_DIR": str(tmp_path)}
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "datadesk.cli", "dialogs", "check", str(DIALOGS)],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(done.stdout.splitlines()) == 1
    assert done.stdout.startswith("dialogs check: OK, 10 flows")


def test_the_installed_command_exits_1_on_a_broken_folder(tmp_path: Path) -> None:
    folder = _dialogs_with(tmp_path, BROKEN / "invalid_yaml.yaml")
    env = {
        **os.environ,
        "DATADESK_LOCALES_DIR": str(write_complete_locales(DIALOGS, tmp_path / "loc")),
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "datadesk.cli", "dialogs", "check", str(folder)],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert re.fullmatch(r".+zz_0_invalid_yaml\.yaml:6: not valid YAML: .+\n", done.stdout)


MUTATIONS = [
    ("erasure.yaml", "ok: show_preview", "ok: confirm", "without showing what changes"),
    (
        "erasure.yaml",
        "when: {verified: true}",
        "when: {verified: false}",
        "without a successful verification",
    ),
    (
        "update_contact.yaml",
        "next: not_changed\n\n      - id: submit_route",
        "next: submit_route\n\n      - id: submit_route",
        "without an explicit 'yes'",
    ),
    (
        "update_contact.yaml",
        "proved: show_change",
        "proved: confirm",
        "without showing what changes",
    ),
]


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"), MUTATIONS, ids=[m[3] + " " + m[0] for m in MUTATIONS]
)
def test_weakening_a_shipped_journey_is_caught(
    tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    folder = _dialogs_with(tmp_path)
    path = folder / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    _, errors = check_dialogs(folder)
    assert any(f"{file}:" in e and "submit_request" in e and expected in e for e in errors), errors


def test_every_legal_basis_and_category_of_the_retention_policy_has_a_message() -> None:
    policy = yaml.safe_load((REPO_ROOT / "backend" / "policies" / "retention.yaml").read_text())
    dialogs = load_dialogs(DIALOGS)
    for jurisdiction in policy["jurisdictions"].values():
        for category, rules in jurisdiction["categories"].items():
            assert f"category.{category}" in dialogs.messages
            for rule in rules or []:
                assert f"basis.{rule['basis']}" in dialogs.messages, rule["basis"]


def test_every_reason_a_reviewer_can_give_has_words_for_the_customer() -> None:
    from backend.console.review import REJECT_REASONS

    dialogs = load_dialogs(DIALOGS)
    for code in REJECT_REASONS:
        assert f"reason.review_rejected.{code}" in dialogs.messages, code


def test_a_menu_option_without_phrasings_passes_with_a_note_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _dialogs_with(tmp_path)
    start = folder / "start.yaml"
    start.write_text(
        start.read_text().replace(
            "            - id: agent\n",
            "            - id: my_requests\n"
            '              label: "Where is my request?"\n'
            "              goto: status\n"
            "            - id: agent\n",
            1,
        )
    )
    line = start.read_text().splitlines().index("            - id: my_requests") + 1
    settings = BotSettings(locales_dir=write_complete_locales(folder, tmp_path / "locales"))
    status = check_command(argparse.Namespace(dir=str(folder)), settings)
    out = capsys.readouterr()
    assert status == 0, out.out
    assert re.search(
        rf"note: .+start\.yaml:{line}: main-menu option 'my_requests' has no phrasings in "
        r"en, lv, ru, zh_Hans, zh_Hant",
        out.err,
    ), out.err
