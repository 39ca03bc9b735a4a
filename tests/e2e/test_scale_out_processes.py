"""Scale-out as an operator runs it: 2 ``datadesk backend``, 2 ``datadesk worker`` and 2
``datadesk bot`` processes in webhook mode on one pair of databases.

The test plays Telegram (the Bot API stand-in, POSTing each update to the next
bot in turn, as a load balancer would, two at once) and the customer's phone
(an SMS gateway sink). One customer walks the marketing opt-out with their
updates spread over both bots, sends two messages at the same moment, and
Telegram delivers one update again. Every update is applied once, whichever
bot received it, and in ``update_id`` order, the two sent at the same moment
included: one request, the answers in the order asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import settings_for
from fakes.botapi import TOKEN, BotApiStandIn
from fakes.processes import Processes
from fakes.sms_sink import SmsSink, running_sms_sink
from sqlalchemy import select

from backend.crm import importer
from backend.models.ledger import Request
from backend.services import open_services
from bot.telegram.inbox import InboxRow
from common.db import make_engine, make_sessionmaker
from e2e.conftest import CUSTOMERS, free_port

CHAT = 8801
PHONE = "+37120000003"
SMS_TOKEN = "scale-out-sms-token"
START_TIMEOUT = 60.0
CLI = ["-m", "datadesk.cli"]


@pytest.fixture
async def sms() -> AsyncIterator[SmsSink]:
    async with running_sms_sink(SMS_TOKEN) as sink:
        yield sink


async def _healthy(port: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http, asyncio.timeout(START_TIMEOUT):
        while True:
            with contextlib.suppress(OSError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.2)


async def test_two_bots_two_backends_two_workers_apply_one_chat_s_updates_once_in_order(
    tmp_path: Path, backend_db_url: str, bot_db_url: str, sms: SmsSink
) -> None:
    settings = settings_for(tmp_path, backend_db_url)
    services = await open_services(settings)
    customers, problems = importer.validate(CUSTOMERS)
    assert problems == []
    await importer.apply(services.sessions, customers, services.clock)
    await services.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")}
    env.update(
        {
            "DATADESK_DATA_DIR": str(tmp_path / "var"),
            "DATADESK_DATABASE_URL": backend_db_url,
            "DATADESK_BOT_DATABASE_URL": bot_db_url,
            "DATADESK_SECRET_KEY": settings.secret_key or "",
            "DATADESK_BOT_SECRET_KEY": "scale-out-bot-key-not-for-production",
            "DATADESK_SERVICE_TOKEN": settings.service_token,
            "DATADESK_SMS_GATEWAY": "http",
            "DATADESK_SMS_GATEWAY_URL": sms.url,
            "DATADESK_SMS_GATEWAY_TOKEN": SMS_TOKEN,
            "DATADESK_TELEGRAM_TOKEN": TOKEN,
            "DATADESK_TELEGRAM_MODE": "webhook",
            "DATADESK_WEBHOOK_SECRET": "scale-out-webhook-secret",
            # Stores of a pair sent at once land this far apart at most, under CI's load.
            "DATADESK_WEBHOOK_ORDER_WAIT": "1",
            "DATADESK_LOG_LEVEL": "INFO",
        }
    )
    processes = Processes(tmp_path, grace=20)
    async with BotApiStandIn() as api:
        env["DATADESK_TELEGRAM_API_URL"] = api.url
        backends = [free_port(), free_port()]
        hooks = [f"http://127.0.0.1:{free_port()}/telegram/hook" for _ in range(2)]
        api.balance(hooks, concurrency=2)
        try:
            for n, port in enumerate(backends):
                await processes.start(
                    f"backend{n}", [*CLI, "backend"], {**env, "DATADESK_HTTP_PORT": str(port)}
                )
                await processes.start(f"worker{n}", [*CLI, "worker"], env)
            for port in backends:
                await _healthy(port)
            for n, hook in enumerate(hooks):
                bot = {
                    **env,
                    "DATADESK_WEBHOOK_URL": hook,
                    "DATADESK_BACKEND_URL": f"http://127.0.0.1:{backends[n]}",
                }
                await processes.start(f"bot{n}", [*CLI, "bot"], bot)
            async with asyncio.timeout(START_TIMEOUT):
                # Each bot sets the webhook once it is ready.
                while sum(m == "setWebhook" for m, _ in api.calls) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            await _walk(api, sms)
            # Telegram delivers the typed code again (it missed the bot's 200).
            code_update = _update_with_text(api, sms.codes_for(PHONE)[-1])
            said = len(api.messages(CHAT))
            await api.redeliver(code_update)
            await api.wait_until(lambda: not api._updates, timeout=10)
            await asyncio.sleep(1.0)
            assert len(api.messages(CHAT)) == said, api.transcript(CHAT)[said:]
        finally:
            await processes.stop()
            logs = processes.logs()
            print(logs)  # pytest shows it when the test fails

    # Both bots took updates of the chat.
    ours = {uid for uid, update in api._queued.items() if _chat_of(update) == CHAT}
    assert {url for uid, url in api.delivered_to if uid in ours} == set(hooks), logs
    # Applied once each, in update_id order, whichever bot received them.
    engine = make_engine(bot_db_url)
    async with make_sessionmaker(engine)() as session:
        rows = list(
            await session.scalars(
                select(InboxRow).where(InboxRow.update_id.in_(ours)).order_by(InboxRow.update_id)
            )
        )
    await engine.dispose()
    assert len(rows) == len(ours), logs
    applied = [r.applied_at for r in rows]
    assert all(at is not None for at in applied), logs
    assert applied == sorted(applied), logs  # type: ignore[type-var]
    # One opt-out asked for, one request made.
    services = await open_services(settings)
    async with services.sessions() as session:
        requests = list(await session.scalars(select(Request).where(Request.chat == f"tg:{CHAT}")))
    await services.close()
    assert [(r.kind, r.state) for r in requests] == [("marketing_opt_out", "done")]


def _chat_of(update: dict[str, Any]) -> int | None:
    """The chat an update of the stand-in's is in (a message, or the message a press was on)."""
    message = update.get("message") or update.get("callback_query", {}).get("message") or {}
    chat = message.get("chat", {}).get("id")
    return int(chat) if chat is not None else None


def _update_with_text(api: BotApiStandIn, text: str) -> int:
    return next(uid for uid, u in api._queued.items() if u.get("message", {}).get("text") == text)


async def _walk(api: BotApiStandIn, sms: SmsSink) -> None:
    """The opt-out, every step waiting for the answer, as a customer does."""
    # Two messages at the same moment go to different bots: whichever stores
    # its update first waits WEBHOOK_ORDER_WAIT for the other's, so /start is
    # answered first. Each is answered once.
    await api.send_text(CHAT, "/start", language_code="en")
    await api.send_text(CHAT, "/help")
    await api.wait_until(lambda: len(api.messages(CHAT)) >= 2, timeout=20)
    await asyncio.sleep(0.5)  # a third answer (one handled twice) would come by now
    assert len(api.messages(CHAT)) == 2, api.transcript(CHAT)
    assert api.messages(CHAT)[0].text.startswith("Hello!"), api.transcript(CHAT)
    await api.press_button(CHAT, "marketing_opt_out")
    await api.wait_until(lambda: any(m.contact_button for m in api.messages(CHAT)), timeout=20)
    await api.share_contact(CHAT, PHONE.lstrip("+"))
    # No mail server: the code goes by SMS without asking, and the code is asked for.
    await api.wait_for_message(CHAT, buttons="resend", timeout=20)
    await sms.wait_for(1, within=20)
    await api.send_text(CHAT, sms.codes_for(PHONE)[-1])
    await api.wait_for_message(CHAT, buttons="all", timeout=20)
    await api.press_button(CHAT, "email")
    await api.wait_for_message(CHAT, buttons="yes", timeout=20)
    await api.press_button(CHAT, "yes")
    await api.wait_for_message(CHAT, "DD-", timeout=20)
    await api.wait_until(lambda: any(" is done" in m.text for m in api.messages(CHAT)), timeout=30)
