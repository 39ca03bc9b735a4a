"""``datadesk dialogs reload`` reaches bot processes on other hosts through their shared database.

Two ``datadesk bot`` processes stand for two hosts: each has its own data
folder and its own copy of the dialog files, and both use one bot database.
The operator runs the reload on a third place; both bots re-read their files,
and one whose copy was broken keeps the last good set and keeps serving.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.dialogs import cli
from common.settings import REPO_ROOT
from e2e.conftest import Stack, free_port
from e2e.test_bot_process import BotProcess

RELOADED = "dialogs reloaded"
REFUSED = "dialogs not reloaded, keeping the last good set"


class HostBot(BotProcess):
    """A ``datadesk bot`` in webhook mode (so two can serve one token) with its own files."""

    def __init__(self, stack: Stack, host: Path) -> None:
        super().__init__(stack)
        self.dialogs = host / "dialogs"
        shutil.copytree(REPO_ROOT / "dialogs", self.dialogs)
        self.host = host
        self.port = free_port()

    def environment(self) -> dict[str, str]:
        key = self.stack.bot_settings.bot_secret_key
        assert key is not None
        return super().environment() | {
            "DATADESK_DATA_DIR": str(self.host / "var"),
            "DATADESK_DIALOGS_DIR": str(self.dialogs),
            "DATADESK_BOT_SECRET_KEY": key,
            "DATADESK_TELEGRAM_MODE": "webhook",
            "DATADESK_WEBHOOK_URL": f"http://127.0.0.1:{self.port}/telegram/hook",
            "DATADESK_WEBHOOK_SECRET": "reload-hosts-webhook-secret",
        }

    async def logged(self, text: str, times: int) -> None:
        """Until the process logged ``times`` lines containing ``text``."""
        async with asyncio.timeout(20):
            while sum(text in line for line in self.log) < times:
                self._logged.clear()
                await self._logged.wait()


async def _reload(stack: Stack, tmp_path: Path) -> float:
    """Run ``datadesk dialogs reload`` as the operator; when it returned."""
    settings = replace(stack.bot_settings, dialogs_dir=REPO_ROOT / "dialogs")
    assert await asyncio.to_thread(cli.reload_command, argparse.Namespace(), settings) == 0
    return time.monotonic()


@pytest.mark.postgres_only
@pytest.mark.parametrize("bot_in_process", [False])
async def test_a_reload_reaches_bots_on_two_hosts_and_a_broken_copy_keeps_its_last_good_files(
    stack: Stack, tmp_path: Path
) -> None:
    bots = [HostBot(stack, tmp_path / "host-a"), HostBot(stack, tmp_path / "host-b")]
    try:
        for bot in bots:
            await bot.start()
        for bot in bots:
            await bot.logged("Telegram channel started", 1)

        asked = await _reload(stack, tmp_path)
        for bot in bots:
            await bot.logged(RELOADED, 1)
        # Each bot looks every second; reading the files takes the rest. The bound
        # is loose for a busy CI machine, and still far from "at the next restart".
        assert time.monotonic() - asked < 10

        broken = bots[1].dialogs / "verify.yaml"
        broken.write_text(broken.read_text().replace("next: check_code", "next: chek_code"))
        await _reload(stack, tmp_path)
        await bots[0].logged(RELOADED, 2)
        await bots[1].logged(REFUSED, 1)
        assert "chek_code" in "".join(bots[1].log)
        assert sum(RELOADED in line for line in bots[1].log) == 1
    finally:
        statuses = [await bot.stop(signal.SIGTERM) for bot in bots if bot.process is not None]
    # Both kept serving until told to stop, and stopped cleanly.
    assert statuses == [0, 0]
