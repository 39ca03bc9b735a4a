"""``datadesk dialogs reload``: running bots are found through ``DATA_DIR/bot.pid`` and sent SIGHUP."""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.complete_catalogs import write_complete_locales

from bot.dialogs import cli
from bot.dialogs.pidfile import bot_pids, register_bot, unregister_bot
from bot.settings import BotSettings
from common.settings import REPO_ROOT

DIALOGS = REPO_ROOT / "dialogs"

# A stand-in bot: registers itself, writes "reloaded" on SIGHUP, then exits.
BOT = """
import signal, sys, time
from pathlib import Path
from bot.dialogs.pidfile import register_bot
data = Path(sys.argv[1])
def on_hup(signum, frame):
    (data / "reloaded").write_text("yes")
    sys.exit(0)
signal.signal(signal.SIGHUP, on_hup)
register_bot(data)
(data / "ready").write_text("yes")
time.sleep(60)
"""


def _settings(tmp_path: Path, dialogs: Path = DIALOGS) -> BotSettings:
    locales = write_complete_locales(dialogs, tmp_path / "locales")
    return BotSettings(data_dir=tmp_path / "var", dialogs_dir=dialogs, locales_dir=locales)


def _wait_for(path: Path) -> None:
    # A process start, not a time-based limit: poll for the file it writes.
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_reload_signals_every_registered_bot(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.data_dir.mkdir()
    bot = subprocess.Popen([sys.executable, "-c", BOT, str(settings.data_dir)], cwd=REPO_ROOT)  # noqa: S603
    try:
        _wait_for(settings.data_dir / "ready")
        assert bot_pids(settings.data_dir) == [bot.pid]
        assert cli.reload_command(argparse.Namespace(), settings) == 0
        _wait_for(settings.data_dir / "reloaded")
        assert bot.wait(timeout=30) == 0
    finally:
        if bot.poll() is None:
            bot.send_signal(signal.SIGTERM)
            bot.wait(timeout=30)


def test_reload_forgets_bots_that_died_without_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    register_bot(settings.data_dir, gone.pid)
    assert cli.reload_command(argparse.Namespace(), settings) == 1
    assert "no running bot found" in capsys.readouterr().err
    assert bot_pids(settings.data_dir) == []


def test_reload_refuses_broken_dialogs_and_signals_nobody(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "dialogs"
    shutil.copytree(DIALOGS, folder)
    (folder / "verify.yaml").write_text(
        (folder / "verify.yaml").read_text().replace("next: check_code", "next: chek_code")
    )
    settings = _settings(tmp_path, folder)
    register_bot(settings.data_dir)  # this test process: it must not get a SIGHUP
    try:
        assert cli.reload_command(argparse.Namespace(), settings) == 1
    finally:
        unregister_bot(settings.data_dir)
    out = capsys.readouterr()
    assert "verify.yaml:" in out.out
    assert "chek_code" in out.out
    assert "not sent" in out.err


def test_the_test_command_plays_the_english_scripts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "dialogs"
    shutil.copytree(DIALOGS, folder)
    for script in (folder / "tests").glob("*.yaml"):
        script.unlink()
    shutil.copy(DIALOGS / "tests" / "erasure.yaml", folder / "tests")
    text = (folder / "tests" / "erasure.yaml").read_text()
    # Only the English scripts: these tests are about the command, not the translations.
    head, *scripts = text.split("\n  - name: ")
    english = [s for s in scripts if "\n    locale: en\n" in s]
    (folder / "tests" / "erasure.yaml").write_text(
        "".join(["\n  - name: ".join([head, *english]), "\n"])
    )
    assert cli.test_command(argparse.Namespace(dir=str(folder)), _settings(tmp_path, folder)) == 0
    out = capsys.readouterr()
    assert out.out.count("ok    ") == 3
    assert "3 passed, 0 failed" in out.err
