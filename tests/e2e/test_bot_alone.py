"""A ``datadesk bot`` that holds nothing of the backend still serves customers.

The backend runs as its own ``datadesk backend`` process and the bot as its
own ``datadesk bot`` process, each with its own ``DATA_DIR`` as on separate
hosts. The bot's folder has no ``secret.key`` and its environment no
``DATADESK_SECRET_KEY``; a customer still verifies through it (the code is
sent by the backend process, typed into the chat, checked by the backend).
Afterwards the bot's folder holds only the bot's own key, private, and the
conversation it saved opens under that key and not under the backend's.
Run again with the backend's secrets in the bot's environment: it leaves
them alone just the same.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from fakes.botapi import TOKEN

from bot.state import StateStore
from bot.state_key import BOT_KEY_FILE, StateKey
from common.settings import REPO_ROOT
from e2e.conftest import SMS_TOKEN, Stack, free_port
from e2e.steps import PHONES, choose, start, verify
from e2e.test_bot_process import BotProcess

CHAT = 7101


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def clean_environment() -> dict[str, str]:
    """The test's environment without any ``DATADESK_*`` variable of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")}


@pytest.fixture
async def backend_process(stack: Stack, tmp_path: Path) -> AsyncIterator[str]:
    """``datadesk backend`` on the stack's database, with its own DATA_DIR; yields its URL."""
    s = stack.settings
    port = free_port()
    env = clean_environment() | {
        "DATADESK_DATA_DIR": str(tmp_path / "backend-host"),
        "DATADESK_DATABASE_URL": s.database_url,
        "DATADESK_SECRET_KEY": s.secret_key or "",
        "DATADESK_SERVICE_TOKEN": s.service_token,
        "DATADESK_HTTP_PORT": str(port),
        "DATADESK_SMS_GATEWAY": "http",
        "DATADESK_SMS_GATEWAY_URL": stack.sms.url,
        "DATADESK_SMS_GATEWAY_TOKEN": SMS_TOKEN,
        "DATADESK_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "datadesk.cli", "backend", cwd=REPO_ROOT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(60):
            while True:
                assert process.returncode is None, "datadesk backend stopped at start"
                try:
                    async with http.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        yield url
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                await process.wait()


class LoneBot(BotProcess):
    """``datadesk bot`` with only the bot's variables, its own DATA_DIR and no backend key."""

    def __init__(self, stack: Stack, data_dir: Path, backend_url: str, extra: dict[str, str]):
        super().__init__(stack)
        self.data_dir = data_dir
        self.backend_url = backend_url
        self.extra = extra

    def environment(self) -> dict[str, str]:
        return clean_environment() | {
            "DATADESK_DATA_DIR": str(self.data_dir),
            "DATADESK_BOT_DATABASE_URL": self.stack.bot_settings.bot_database_url,
            "DATADESK_TELEGRAM_TOKEN": TOKEN,
            "DATADESK_TELEGRAM_API_URL": self.stack.api.url,
            "DATADESK_BACKEND_URL": self.backend_url,
            "DATADESK_SERVICE_TOKEN": self.stack.settings.service_token,
            "DATADESK_LOG_LEVEL": "INFO",
            **self.extra,
        }


def backend_secrets(stack: Stack) -> dict[str, str]:
    """The backend's secrets, the real key among them, as a careless operator might export them."""
    return {
        "DATADESK_SECRET_KEY": stack.settings.secret_key or "",
        "DATADESK_SMTP_PASSWORD": "smtp-password-the-bot-must-not-read",
        "DATADESK_CRM_TOKEN": "crm-token-the-bot-must-not-read",
    }


@pytest.mark.parametrize("bot_in_process", [False])
@pytest.mark.parametrize(
    "secrets_exported", [False, True], ids=["clean-env", "backend-secrets-in-env"]
)
async def test_a_bot_without_the_backend_key_verifies_a_customer_and_keeps_only_its_own_key(
    stack: Stack, backend_process: str, tmp_path: Path, secrets_exported: bool
) -> None:
    bot_home = tmp_path / "bot-host"
    extra = backend_secrets(stack) if secrets_exported else {}
    bot = LoneBot(stack, bot_home, backend_process, extra)
    await bot.start()
    try:
        locale = "lv"
        await start(stack, CHAT, locale)
        await choose(stack, CHAT, "update_contact")
        # The code goes out from the backend process (no mail server: SMS without asking)
        # and is checked there.
        await verify(stack, CHAT, locale, PHONES[locale], mail=False)
        await stack.api.wait_for_message(CHAT, buttons="address")
    finally:
        status = await bot.stop(signal.SIGTERM)
    assert status == 0, "".join(bot.log)

    # The bot's folder: private, with the bot's key and nothing of the backend's.
    assert sorted(p.name for p in bot_home.iterdir()) == [BOT_KEY_FILE]
    assert mode(bot_home) == 0o700
    assert mode(bot_home / BOT_KEY_FILE) == 0o600
    # What it saved opens under its own key; the backend's key opens nothing of it.
    own = StateKey((bot_home / BOT_KEY_FILE).read_text().strip())
    backend_key = StateKey(stack.settings.secret_key or "")
    for key, opens in ((own, True), (backend_key, False)):
        store = StateStore.open(stack.bot_settings.bot_database_url, key)
        try:
            record = await store.load(f"tg:{CHAT}")
        finally:
            await store.close()
        assert record.version > 0
        assert (record.state is not None) is opens
    logged = "".join(bot.log)
    for value in extra.values():
        assert value not in logged
