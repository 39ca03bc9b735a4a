"""``datadesk chat``: the dialogs in a terminal, in this process and as a separate one.

In-process, lines are fed one by one (a line can wait for the code the SMS
sink received); as a separate process, ``datadesk chat`` is pointed at the
live backend with ``DATADESK_BACKEND_URL`` and scripted through stdin.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import SERVICE_TOKEN, bot_settings_for
from fakes.verification_world import ANNA, ANNA_REF, DMITRY, DMITRY_REF, World, world

from backend import notifications
from backend.ledger.worker import run_one
from bot.terminal import run_chat

__all__ = ["world"]

DATADESK = Path(sys.executable).parent / "datadesk"


class Screen(io.StringIO):
    """A terminal's output that tells waiters when something new was printed."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def write(self, text: str) -> int:
        self.changed.set()
        return super().write(text)

    async def until(self, pattern: str, times: int = 1) -> str:
        """Wait until ``pattern`` was printed ``times`` times; the first match."""
        async with asyncio.timeout(15):
            while len(found := re.findall(pattern, self.getvalue())) < times:
                self.changed.clear()
                await self.changed.wait()
        return str(found[0])


async def test_a_customer_changes_their_address_in_the_terminal_and_sees_the_outcome(
    world: World, bot_db_url: str, tmp_path: Path
) -> None:
    chat_settings = bot_settings_for(tmp_path, world.backend.url, bot_db_url)
    screen = Screen()

    async def typed() -> AsyncIterator[str]:
        yield "update_contact"  # an option by its id
        yield "share"  # no mail server here: the code goes by SMS at once
        yield await world.code_for(ANNA)
        yield "3"  # postal address
        yield "Brīvības iela 99, Rīga, LV-1010, Latvija"
        yield "yes"
        reference = await screen.until(r"DD-[0-9A-Z]{6}")
        assert await run_one(world.services, world.services.crm, "w1") is True
        # The outcome arrives while the customer is idle, and is printed once.
        await screen.until(reference, times=2)
        yield "/quit"

    await run_chat(
        chat_settings, language="lv", name="anna", lines=typed(), out=screen, poll_wait=1
    )
    shown = screen.getvalue()
    assert "  1) " in shown
    assert "[share]" in shown
    assert "✂ [code]" in shown
    assert "Brīvības" in shown
    assert len(re.findall(r"DD-[0-9A-Z]{6}", shown)) == 2


async def test_two_demo_customers_in_turn_each_get_their_own_chat_and_number(
    world: World, bot_db_url: str, tmp_path: Path
) -> None:
    chat_settings = bot_settings_for(tmp_path, world.backend.url, bot_db_url)
    anna = Screen()

    async def as_anna() -> AsyncIterator[str]:
        yield "marketing_opt_out"
        yield "share"
        yield await world.code_for(ANNA)
        await anna.until(r"\[all\]")
        yield "/quit"

    await run_chat(
        chat_settings, language="en", name=ANNA_REF, phone=ANNA, lines=as_anna(), out=anna
    )
    assert "you're verified" in anna.getvalue()

    dmitry = Screen()

    async def as_dmitry() -> AsyncIterator[str]:
        yield "marketing_opt_out"
        # Not Anna's session: Dmitry is asked who he is, and `share` shares his number.
        await dmitry.until(r"\[share\]")
        yield "share"
        yield await world.code_for(DMITRY)
        await dmitry.until(r"\[all\]")
        yield "/logout"
        await dmitry.until("signed out")
        yield "marketing_opt_out"
        await dmitry.until(r"\[share\]", times=2)
        yield "/quit"

    await run_chat(
        chat_settings, language="en", name=DMITRY_REF, phone=DMITRY, lines=as_dmitry(), out=dmitry
    )
    shown = dmitry.getvalue()
    assert "you're verified" in shown
    assert len(world.sink.codes_for(DMITRY)) == 1
    assert len(world.sink.codes_for(ANNA)) == 1


def test_the_demo_customers_numbers_come_from_the_demo_seed() -> None:
    from datadesk.demo_chat import demo_phone

    assert demo_phone("C-1001") == "+37120000001"
    assert demo_phone("C-1101") == "+37121001101"
    assert demo_phone("C-9999") is None


async def test_datadesk_chat_refuses_a_ref_that_is_no_demo_customer(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        str(DATADESK), "chat", "--as", "C-9999",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={**os.environ, "DATADESK_DATA_DIR": str(tmp_path / "var")},
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert "--as C-9999: no such demo customer" in stderr.decode()


async def test_datadesk_chat_talks_to_a_backend_in_another_process(
    world: World, bot_db_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "LOGNAME": "chat-test",
        "DATADESK_BACKEND_URL": world.backend.url,
        "DATADESK_SERVICE_TOKEN": SERVICE_TOKEN,
        "DATADESK_DATA_DIR": str(tmp_path / "var"),
        "DATADESK_BOT_DATABASE_URL": bot_db_url,
    }
    process = await asyncio.create_subprocess_exec(
        str(DATADESK),
        "chat",
        "--lang",
        "ru",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(b"1\nshare\n/quit\n"), timeout=60)
    # Wake the long-poll the chat left behind, so the backend stops at once.
    async with world.services.sessions() as session, session.begin():
        await notifications.enqueue(
            session, chat="term:chat-test", locale="ru", type="agent_left", at=world.clock.now()
        )
    shown = stdout.decode()
    assert process.returncode == 0, stderr.decode()
    assert "  1) " in shown
    # This backend has no mail server: the code goes by SMS without asking where.
    assert "[resend]" in shown, shown
    assert "[email]" not in shown, shown
    # It spoke Russian: the menu's words are in Cyrillic.
    assert any("\u0400" <= ch <= "\u04ff" for ch in shown), shown
    assert ANNA not in stderr.decode()


async def test_a_terminal_with_lang_no_NO_gets_the_english_menu_on_every_turn(
    world: World, bot_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.setenv("LANG", "no_NO.UTF-8")
    chat_settings = bot_settings_for(tmp_path, world.backend.url, bot_db_url)
    screen = Screen()

    async def typed() -> AsyncIterator[str]:
        await screen.until("What would you like to do?")
        yield "/help"
        yield "hello \udc80 there"  # a stray byte, as the terminal decodes it
        yield "/quit"

    await run_chat(chat_settings, name="nora", lines=typed(), out=screen, poll_wait=1)
    shown = screen.getvalue()
    assert shown.count("What would you like to do?") >= 3, shown
    assert "went wrong" not in shown
