"""``datadesk bot`` as its own process: killed mid-journey, started again, reloaded, stopped.

The backend, worker and Bot API stand-in run in the test; the bot runs as an
operator would run it, configured only through ``DATADESK_*`` variables, and
only the bot's: its own data folder, database and key, the backend's address
and service token, nothing of the backend's secrets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes.botapi import TOKEN

from bot.state import BOT_MIGRATIONS
from common.db import upgrade_sync
from common.settings import REPO_ROOT
from e2e.conftest import Stack
from e2e.steps import (
    ERASURE_SUBMITTED,
    NO_OPEN_REQUESTS,
    OUTCOME_DONE,
    PHONES,
    PREVIEW_HEAD,
    choose,
    reference_in,
    requests_of,
    start,
    verify,
)

CHAT = 7001


class BotProcess:
    """One ``datadesk bot`` process and what it wrote to stderr."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.process: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._logged = asyncio.Event()

    def environment(self) -> dict[str, str]:
        s = self.stack.bot_settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")}
        env.update(
            {
                "DATADESK_DATA_DIR": str(s.data_dir),
                "DATADESK_BOT_DATABASE_URL": s.bot_database_url,
                "DATADESK_TELEGRAM_TOKEN": TOKEN,
                "DATADESK_TELEGRAM_API_URL": s.telegram_api_url,
                "DATADESK_BACKEND_URL": s.backend_url,
                "DATADESK_SERVICE_TOKEN": s.service_token,
                "DATADESK_LOG_LEVEL": "INFO",
            }
        )
        return env

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "datadesk.cli", "bot",
            cwd=REPO_ROOT, env=self.environment(), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode(errors="replace"))
            self._logged.set()

    async def wait_logged(self, text: str) -> None:
        """Until the process logged a line containing ``text``."""
        async with asyncio.timeout(20):
            while not any(text in line for line in self.log):
                self._logged.clear()
                await self._logged.wait()

    async def stop(self, signum: int) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signum)
        async with asyncio.timeout(30):
            code = await self.process.wait()
        if self._reader is not None:
            await self._reader
        return code


@pytest.fixture
async def bot_process(stack: Stack) -> AsyncIterator[BotProcess]:
    process = BotProcess(stack)
    await process.start()
    try:
        yield process
    finally:
        if process.process is not None and process.process.returncode is None:
            await process.stop(signal.SIGKILL)


@pytest.mark.parametrize("bot_in_process", [False])
async def test_a_killed_bot_process_is_replaced_and_the_customer_carries_on_at_the_same_step(
    stack: Stack, bot_process: BotProcess
) -> None:
    api = stack.api
    locale = "lv"
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "erasure")
    await verify(stack, CHAT, locale, PHONES[locale])
    scope = await api.wait_for_message(CHAT, buttons="marketing")
    # Once the bot has told Telegram it is done with every update, pull the plug.
    await api.wait_until(lambda: api.confirmed_offset > api.last_update_id, timeout=20)
    assert await bot_process.stop(signal.SIGKILL) == -signal.SIGKILL
    await api.press(CHAT, scope.message_id, "marketing")
    replacement = BotProcess(stack)
    await replacement.start()
    try:
        await api.wait_for_message(CHAT, stack.t(locale, PREVIEW_HEAD), timeout=30)
        await api.wait_for_message(CHAT, buttons="yes")
        await choose(stack, CHAT, "yes")
        submitted = await api.wait_for_message(CHAT, stack.t(locale, ERASURE_SUBMITTED))
        [request] = await requests_of(stack, CHAT)
        assert request.reference == reference_in(submitted)
        # The worker may finish before /status is asked, so wait for the outcome
        # first: then /status has one certain answer.
        outcome = await api.wait_for_message(CHAT, stack.t(locale, OUTCOME_DONE), timeout=30)
        assert request.reference in outcome.text
        # SIGHUP re-reads the dialog files and the bot keeps serving.
        pid_file = stack.bot_settings.data_dir / "bot.pid"
        assert pid_file.read_text().strip() == str(replacement.process.pid)  # type: ignore[union-attr]
        replacement.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        await replacement.wait_logged("dialogs reloaded")
        await api.send_text(CHAT, "/status")
        listed = await api.wait_for_message(CHAT, f"{request.reference}: ")
        assert stack.t(locale, NO_OPEN_REQUESTS) not in listed.text
    finally:
        status = await replacement.stop(signal.SIGTERM)
    assert status == 0
    assert not pid_file.exists()
    assert "Telegram channel stopped" in "".join(replacement.log)


def test_a_bot_with_broken_dialog_files_refuses_to_start_and_says_where(tmp_path: Path) -> None:
    broken = tmp_path / "dialogs"
    shutil.copytree(REPO_ROOT / "dialogs", broken)
    start_file = broken / "start.yaml"
    start_file.write_text(start_file.read_text().replace("goto: erasure", "goto: no_such_flow"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")}
    env |= {
        "DATADESK_DATA_DIR": str(tmp_path / "var"),
        "DATADESK_TELEGRAM_TOKEN": TOKEN,
        "DATADESK_TELEGRAM_API_URL": "http://127.0.0.1:9",
        "DATADESK_DIALOGS_DIR": str(broken),
        "DATADESK_SERVICE_TOKEN": "t",
        "DATADESK_BOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
    }
    upgrade_sync(env["DATADESK_BOT_DATABASE_URL"], BOT_MIGRATIONS)
    done = subprocess.run(
        [sys.executable, "-m", "datadesk.cli", "bot"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"{start_file}:" in done.stderr or "start.yaml:" in done.stderr
    assert "no_such_flow" in done.stderr
