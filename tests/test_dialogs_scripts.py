"""Every scripted conversation in ``dialogs/tests/*.yaml`` as its own test, on the shipped catalogs.

The same runner backs ``datadesk dialogs test``; a failure names the script's
``file:line`` and shows what the bot said instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.dialogs.testing import Script, ScriptFailed, load_scripts, run_script
from bot.engine import Dialogs, load_dialogs
from bot.i18n import Catalogs
from common.settings import REPO_ROOT

DIALOGS = REPO_ROOT / "dialogs"
SCRIPTS, SCRIPT_ERRORS = load_scripts(DIALOGS / "tests")


@pytest.fixture(scope="module")
def dialogs() -> Dialogs:
    return load_dialogs(DIALOGS)


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    return Catalogs.load(REPO_ROOT / "locales")


def test_the_scripts_are_well_formed() -> None:
    assert SCRIPT_ERRORS == []


def test_every_journey_is_scripted_in_at_least_two_locales() -> None:
    locales: dict[str, set[str]] = {}
    for script in SCRIPTS:
        journey = Path(script.file).stem
        locales.setdefault(journey, set()).add(script.locale.replace("-", "_").split("_")[0])
    assert set(locales) >= {
        "start",
        "verify",
        "update_contact",
        "marketing_opt_out",
        "erasure",
        "status",
        "agent",
    }
    assert all(len(found) >= 2 for found in locales.values()), locales


@pytest.mark.parametrize("script", SCRIPTS, ids=[f"{Path(s.file).stem}: {s.name}" for s in SCRIPTS])
def test_dialog_script(script: Script, dialogs: Dialogs, catalogs: Catalogs) -> None:
    try:
        run_script(dialogs, catalogs, script)
    except ScriptFailed as failure:
        pytest.fail(str(failure), pytrace=False)


def test_a_script_that_expects_the_wrong_thing_fails_at_its_line(
    tmp_path: Path, dialogs: Dialogs, catalogs: Catalogs
) -> None:
    (tmp_path / "wrong.yaml").write_text(
        "tests:\n"
        "  - name: expects a button that is not there\n"
        "    locale: en\n"
        "    steps:\n"
        "      - start\n"
        "      - buttons: [update_contact, erasure]\n"
    )
    (script,), errors = load_scripts(tmp_path)
    assert errors == []
    with pytest.raises(
        ScriptFailed, match=r"wrong\.yaml:6: expected buttons \['update_contact', 'erasure'\]"
    ):
        run_script(dialogs, catalogs, script)


def test_a_script_must_answer_the_action_the_bot_calls(
    tmp_path: Path, dialogs: Dialogs, catalogs: Catalogs
) -> None:
    (tmp_path / "unanswered.yaml").write_text(
        "tests:\n"
        "  - name: forgets to answer start_verification\n"
        "    steps:\n"
        "      - start\n"
        "      - press: status\n"
        "      - share_contact: '+37120000001'\n"
        "      - press: sms\n"
        "      - press: erasure\n"
    )
    (script,), _ = load_scripts(tmp_path)
    with pytest.raises(
        ScriptFailed, match=r"unanswered\.yaml:8: the bot is waiting for start_verification"
    ):
        run_script(dialogs, catalogs, script)
