"""``datadesk run`` stopped with SIGTERM while customers type their codes: nobody's code fails.

The whole product runs as one process, as an operator starts it, on SQLite
in a folder of its own; Telegram is the Bot API stand-in and the SMS gateway
a sink, both on loopback in the test. Each customer has something in hand
when the signal comes: a reply still being sent (the stand-in answers
``sendMessage`` slowly) and, queued behind it in the same chat, the code.
Telegram was already told those updates are done, so they are not coming
back: the process must answer them before it stops, against a backend that
is still there.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from fakes.botapi import TOKEN, BotApiStandIn
from fakes.sms_sink import running_sms_sink

from common.settings import REPO_ROOT
from e2e.conftest import free_port

# The demo's well-known customers (backend/crm/demo.py), one chat each.
CUSTOMERS = {
    9101: ("lv", "+37120000001"),
    9102: ("ru", "+37120000002"),
    9103: ("en", "+37120000003"),
    9104: ("zh-Hans", "+37120000004"),
    9105: ("zh-Hant", "+37120000005"),
    9106: ("lv", "+37120000006"),
    9107: ("ru", "+37120000007"),
}


def _environment(data: Path, api_url: str, sms_url: str, sms_token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")}
    return env | {
        "DATADESK_DATA_DIR": str(data),
        "DATADESK_TELEGRAM_TOKEN": TOKEN,
        "DATADESK_TELEGRAM_API_URL": api_url,
        "DATADESK_SMS_GATEWAY": "http",
        "DATADESK_SMS_GATEWAY_URL": sms_url,
        "DATADESK_SMS_GATEWAY_TOKEN": sms_token,
        "DATADESK_HTTP_PORT": str(free_port()),
        "DATADESK_LOG_LEVEL": "INFO",
    }


async def _cli(env: dict[str, str], *args: str) -> None:
    """Run one ``datadesk`` command to its end; it must succeed."""
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "datadesk.cli", *args,
        cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(120):
        _, stderr = await command.communicate()
    assert command.returncode == 0, stderr.decode(errors="replace")


async def _up_to_the_code(api: BotApiStandIn, chat: int, language: str, phone: str) -> None:
    """From /start to "the code is on its way" for the marketing opt-out."""
    await api.send_text(chat, "/start", language_code=language)
    await api.wait_for_message(chat, buttons="marketing_opt_out", timeout=60)
    await api.press_button(chat, "marketing_opt_out")
    asking = await api.wait_for_message(chat, timeout=30)
    assert asking.contact_button, api.transcript(chat)
    await api.share_contact(chat, phone.lstrip("+"), own=True)
    # No mail server: the code goes by SMS without asking, and the code is asked for.
    await api.wait_for_message(chat, buttons="resend", timeout=30)


async def test_sigterm_while_customers_type_codes_answers_every_code_before_stopping(
    tmp_path: Path,
) -> None:
    async with BotApiStandIn() as api, running_sms_sink() as sink:
        env = _environment(tmp_path / "var", api.url, sink.url, sink.token)
        await _cli(env, "db", "upgrade")
        await _cli(env, "crm", "seed-demo")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "datadesk.cli", "run",
            cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await asyncio.gather(
                *(_up_to_the_code(api, chat, *who) for chat, who in CUSTOMERS.items())
            )
            await sink.wait_for(len(CUSTOMERS), within=30)
            codes = {chat: sink.codes_for(phone)[-1] for chat, (_, phone) in CUSTOMERS.items()}

            # Each customer first says something (its answer is sent slowly), then the code.
            api.slow_down("sendMessage", 1.5)
            for chat in CUSTOMERS:
                await api.send_text(chat, "hello?")
            for chat, code in codes.items():
                await api.send_text(chat, code)
            # Once the bot has told Telegram it has them all, stop it.
            await api.wait_until(lambda: api.confirmed_offset > api.last_update_id, timeout=30)
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(90):
                _, stderr = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        log = stderr.decode(errors="replace")
        assert process.returncode == 0, log
        for chat in CUSTOMERS:
            # Verified: the opt-out's channel choice is shown, which only a checked code reaches.
            await api.wait_for_message(chat, buttons="all", timeout=1)
