"""What ``datadesk run`` leaves in DATA_DIR is private: the folder 0700, keys and databases 0600.

A real ``datadesk run`` with a Telegram token (the Bot API stand-in) and no
key or token configured generates the backend's key, the service token and
the bot's key into DATA_DIR, and keeps its SQLite databases there; while it
serves a customer, every one of those files, SQLite's ``-wal`` and ``-shm``
included, is readable by its owner alone. A DATA_DIR that an earlier version
left open to others is tightened, and the operator is told.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

from fakes.botapi import TOKEN, BotApiStandIn

from common.settings import REPO_ROOT
from e2e.conftest import free_port

CHAT = 7201
PRIVATE = (
    "backend.sqlite3",
    "backend.sqlite3-wal",
    "backend.sqlite3-shm",
    "bot.sqlite3",
    "bot.sqlite3-wal",
    "bot.sqlite3-shm",
    "secret.key",
    "service-token",
    "bot.key",
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_datadesk_run_keeps_its_keys_and_databases_private_and_tightens_an_open_data_dir(
    tmp_path: Path,
) -> None:
    data = tmp_path / "var"
    data.mkdir()
    data.chmod(0o755)
    port = free_port()
    async with BotApiStandIn() as api:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")} | {
            "DATADESK_DATA_DIR": str(data),
            "DATADESK_HTTP_PORT": str(port),
            "DATADESK_TELEGRAM_TOKEN": TOKEN,
            "DATADESK_TELEGRAM_API_URL": api.url,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "datadesk.cli", "run",
            cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            # The customer is answered: the bot is up and has written its conversation.
            await api.send_text(CHAT, "/start", language_code="en")
            await api.wait_for_message(CHAT, buttons="update_contact", timeout=60)
            await api.wait_until(lambda: api.confirmed_offset > api.last_update_id, timeout=20)
            modes = {name: oct(mode(data / name)) for name in PRIVATE}
            folder = oct(mode(data))
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert folder == "0o700"
    assert modes == dict.fromkeys(PRIVATE, "0o600")
    assert f"folder {data} was 0755; tightened to 0700" in stderr.decode()
