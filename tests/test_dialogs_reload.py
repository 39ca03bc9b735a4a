"""``datadesk dialogs reload``: a request in the bot database that every watching bot picks up.

Two bot processes on one database are in ``tests/e2e/test_dialogs_reload_hosts.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from fakes.complete_catalogs import write_complete_locales

from bot.dialogs import cli
from bot.dialogs.reloads import latest_or_none, latest_request, request_reload, watch_reloads
from bot.settings import BotSettings
from bot.state import BOT_MIGRATIONS
from common.db import make_engine, upgrade
from common.settings import REPO_ROOT

DIALOGS = REPO_ROOT / "dialogs"


def _settings(tmp_path: Path, dialogs: Path = DIALOGS) -> BotSettings:
    locales = write_complete_locales(dialogs, tmp_path / "locales")
    return BotSettings(data_dir=tmp_path / "var", dialogs_dir=dialogs, locales_dir=locales)


async def test_a_reload_request_reaches_a_watching_bot_and_not_one_started_after_it(
    tmp_path: Path, bot_db_url: str
) -> None:
    settings = replace(_settings(tmp_path), bot_database_url=bot_db_url)
    engine = make_engine(bot_db_url)
    reloads: list[str] = []
    reloaded = asyncio.Event()

    async def reload(name: str) -> bool:
        reloads.append(name)
        reloaded.set()
        return True

    try:
        # Each bot reads the newest request as it loads its dialogs (runner.start_bot).
        early = asyncio.create_task(
            watch_reloads(
                engine,
                lambda: reload("early"),
                seen=await latest_request(engine),
                poll_seconds=0.05,
            )
        )
        assert await asyncio.to_thread(cli.reload_command, argparse.Namespace(), settings) == 0
        async with asyncio.timeout(5):
            await reloaded.wait()
        late = asyncio.create_task(
            watch_reloads(
                engine, lambda: reload("late"), seen=await latest_request(engine), poll_seconds=0.05
            )
        )
        await asyncio.sleep(0.3)  # several looks, none of them new
        late.cancel()
        early.cancel()
    finally:
        await engine.dispose()
    assert reloads == ["early"]


async def test_a_request_made_while_a_bot_loads_its_dialogs_is_not_lost(bot_db_url: str) -> None:
    engine = make_engine(bot_db_url)
    reloaded = asyncio.Event()

    async def reload() -> bool:
        reloaded.set()
        return True

    try:
        seen = await latest_or_none(engine)  # as the bot starts, before it reads its files
        await request_reload(engine)  # the operator, while the bot is reading them
        watcher = asyncio.create_task(watch_reloads(engine, reload, seen=seen, poll_seconds=0.05))
        async with asyncio.timeout(5):
            await reloaded.wait()
        watcher.cancel()
    finally:
        await engine.dispose()


async def test_a_bot_whose_database_is_not_migrated_yet_keeps_watching_until_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    engine = make_engine(url)
    reloaded = asyncio.Event()

    async def reload() -> bool:
        reloaded.set()
        return True

    try:
        assert await latest_or_none(engine) is None
        watcher = asyncio.create_task(watch_reloads(engine, reload, poll_seconds=0.05))
        await asyncio.sleep(0.2)
        assert "dialog reload requests not read" in caplog.text
        await upgrade(url, BOT_MIGRATIONS)
        await asyncio.sleep(0.2)  # the first good read is taken as seen
        await request_reload(engine)
        async with asyncio.timeout(5):
            await reloaded.wait()
        assert not watcher.done()
        watcher.cancel()
    finally:
        await engine.dispose()


async def test_reload_refuses_broken_dialogs_and_writes_no_request(
    tmp_path: Path, bot_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "dialogs"
    shutil.copytree(DIALOGS, folder)
    (folder / "verify.yaml").write_text(
        (folder / "verify.yaml").read_text().replace("next: check_code", "next: chek_code")
    )
    settings = replace(_settings(tmp_path, folder), bot_database_url=bot_db_url)
    assert cli.reload_command(argparse.Namespace(), settings) == 1
    out = capsys.readouterr()
    assert "verify.yaml:" in out.out
    assert "chek_code" in out.out
    assert "not sent" in out.err
    engine = make_engine(bot_db_url)
    try:
        assert await latest_request(engine) == 0
    finally:
        await engine.dispose()


def test_reload_without_a_migrated_bot_database_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = replace(
        _settings(tmp_path), bot_database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
    )
    assert cli.reload_command(argparse.Namespace(), settings) == 1
    err = capsys.readouterr().err
    assert "dialogs reload: not sent" in err
    assert "datadesk db upgrade" in err


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
