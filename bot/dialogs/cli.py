"""``datadesk dialogs check | test | reload``: what product teams run after editing dialogs.

- ``check [DIR]`` lists every problem as ``file:line: message`` and exits 1,
  or prints a one-line summary and exits 0;
- ``test [DIR]`` plays every script in ``DIR/tests/*.yaml``;
- ``reload`` checks the dialogs, then writes a reload request to the bot
  database, which every running bot, on any host, picks up within a couple of
  seconds (see ``bot.dialogs.reloads``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from bot.dialogs.reloads import POLL_SECONDS, request_reload
from bot.dialogs.testing import iter_results, load_scripts
from bot.engine import check_dialogs
from bot.engine.phrasings import uncovered
from bot.i18n import Catalogs
from bot.settings import BotSettings
from common.db import make_engine
from common.errors import ConfigError


def _directory(args: argparse.Namespace, settings: BotSettings) -> Path:
    raw = getattr(args, "dir", None)
    return Path(raw) if raw else settings.dialogs_dir


def _catalogs(settings: BotSettings) -> tuple[Catalogs | None, list[str]]:
    try:
        return Catalogs.load(settings.locales_dir), []
    except ConfigError as exc:
        return None, [str(exc)]


def _check(directory: Path, settings: BotSettings) -> list[str]:
    catalogs, errors = _catalogs(settings)
    _, found = check_dialogs(directory, catalogs)
    return errors + found


def check_command(args: argparse.Namespace, settings: BotSettings) -> int:
    """Validate the dialog files (schema, meaning, translations, safety paths)."""
    directory = _directory(args, settings)
    errors = _check(directory, settings)
    for error in errors:
        print(error)
    if errors:
        print(f"dialogs check: {len(errors)} problem(s) in {directory}", file=sys.stderr)
        return 1
    dialogs, _ = check_dialogs(directory)
    assert dialogs is not None
    for note in uncovered(dialogs):
        print(f"note: {note}", file=sys.stderr)
    steps = sum(len(f.steps) for f in dialogs.flows.values())
    print(
        f"dialogs check: OK, {len(dialogs.flows)} flows, {steps} steps, "
        f"{len(dialogs.messages)} messages, {len(dialogs.phrasings)} phrasings in {directory}"
    )
    return 0


def test_command(args: argparse.Namespace, settings: BotSettings) -> int:
    """Play the scripted conversations in ``DIR/tests``; exit 1 on any failure."""
    directory = _directory(args, settings)
    dialogs, errors = check_dialogs(directory)
    catalogs, catalog_errors = _catalogs(settings)
    scripts, script_errors = load_scripts(directory / "tests")
    problems = errors + catalog_errors + script_errors
    if dialogs is None or catalogs is None or problems:
        for problem in problems:
            print(problem)
        return 1
    if not scripts:
        print(f"dialogs test: no scripts in {directory / 'tests'}", file=sys.stderr)
        return 1
    failed = 0
    for script, failure in iter_results(dialogs, catalogs, scripts):
        if failure is None:
            print(f"ok    {script.where} {script.name}")
        else:
            failed += 1
            print(f"FAIL  {script.where} {script.name}\n  {failure}")
    print(f"dialogs test: {len(scripts) - failed} passed, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


async def _request(url: str) -> int:
    engine = make_engine(url)
    try:
        return await request_reload(engine)
    finally:
        await engine.dispose()


def reload_command(args: argparse.Namespace, settings: BotSettings) -> int:
    """Check the dialogs, then ask every running bot (through the bot database) to reload them."""
    errors = _check(settings.dialogs_dir, settings)
    if errors:
        for error in errors:
            print(error)
        print("dialogs reload: not sent; the bots keep their current dialogs", file=sys.stderr)
        return 1
    try:
        number = asyncio.run(_request(settings.bot_database_url))
    except (SQLAlchemyError, OSError) as exc:
        print(
            f"dialogs reload: not sent, the bot database cannot be written ({type(exc).__name__}); "
            "is DATADESK_BOT_DATABASE_URL the bots' database, migrated with `datadesk db upgrade`?",
            file=sys.stderr,
        )
        return 1
    print(
        f"dialogs reload: request {number} written; every running bot re-reads its dialogs "
        f"within {POLL_SECONDS * 2:g} seconds (checked here: {settings.dialogs_dir})"
    )
    return 0
