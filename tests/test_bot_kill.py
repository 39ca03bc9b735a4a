"""A bot process killed mid-update: no transcript line lost, none filed twice, no update applied twice.

``tests/fakes/dying_bot.py`` handles one ``/start`` for real and ends with
``os._exit`` at the chosen moment; a bot started afterwards on the same bot
database gets the update again (Telegram was never told it was done) and the
customer's next one. The backend and both databases are real (SQLite and
PostgreSQL); the dying bot reaches the backend over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from conftest import BOT_SECRET_KEY, SERVICE_TOKEN, LiveBackend, bot_settings_for
from fakes.dying_bot import DIED

from backend import transcripts
from bot.backend_client import BackendClient
from bot.channel import Press, Reply, Start
from bot.conversation import Conversations

ROOT = Path(__file__).resolve().parent.parent
CHAT = "tg:4242"


async def _dying_bot(backend: LiveBackend, bot_db_url: str, data: Path, die_at: str) -> int:
    """Run the dying bot for update 5 of CHAT; its exit status."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATADESK_DATA_DIR": str(data),
        "DATADESK_BOT_DATABASE_URL": bot_db_url,
        "DATADESK_BACKEND_URL": backend.url,
        "DATADESK_SERVICE_TOKEN": SERVICE_TOKEN,
        "DATADESK_BOT_SECRET_KEY": BOT_SECRET_KEY,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.dying_bot",
        "--chat", CHAT, "--update-id", "5", "--die-at", die_at,
        cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(120):
        _, stderr = await process.communicate()
    assert process.returncode == DIED, stderr.decode(errors="replace")
    return process.returncode


@pytest.mark.parametrize("die_at", ["saved", "filed"])
async def test_a_bot_killed_around_filing_the_transcript_loses_no_line_and_files_none_twice(
    backend: LiveBackend, bot_db_url: str, tmp_path: Path, die_at: str
) -> None:
    await _dying_bot(backend, bot_db_url, tmp_path / "bot-var", die_at)

    settings = bot_settings_for(tmp_path, backend.url, bot_db_url)
    client = BackendClient(settings.backend_url, SERVICE_TOKEN)
    again = await Conversations.open(settings, backend=client)
    try:
        # Telegram hands the unconfirmed /start out again: it was handled, so it is skipped.
        assert await again.handle(CHAT, Start("en", update_id=5)) == []
        asked = await again.handle(CHAT, Press("marketing_opt_out", update_id=6))
        assert any(isinstance(o, Reply) and o.contact_button for o in asked)
        await again.flush()
    finally:
        await again.close()
        await client.close()
    async with backend.services.sessions() as session:
        entries = await transcripts.transcript(session, CHAT)
    assert [(e.seq, e.direction) for e in entries] == [(1, "in"), (2, "out"), (3, "in"), (4, "out")]
    assert entries[0].text == "/start"
    assert entries[2].text == "[Stop marketing messages]"
