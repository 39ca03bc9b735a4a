"""The Telegram channel under load: datadesk next to a bare python-telegram-bot echo bot.

Both bots poll the same Bot API stand-in (``tests/fakes/botapi.py``) over real
HTTP in one run. 100 customers act at once; each waits for the bot's answer
before its next step, as people do. Measured: updates handled per second,
and latency from the customer's action to the bot's first message after it
(p50, p99).

- **echo**: PTB's echo bot (a ``MessageHandler`` that sends the text back),
  with PTB's concurrent update processing so it is not held back by its
  serial default.
- **channel + echo**: datadesk's ``TelegramChannel`` (per-chat ordering,
  rendering, HTML escaping) over dialogs that echo: the channel's own cost.
- **datadesk**: the real channel, ``Conversations``, dialog engine, bot state
  (SQLite), backend API, verification and ledger (SQLite) and a worker. Each
  customer walks /start → "my requests" → marketing opt-out (share contact,
  SMS code, choose channel, confirm) → the reference, 8 updates in all.
  The run is cut at ``DATADESK_SECONDS``; "journeys" counts customers who
  reached their reference by then.

Telegram's flood limits (``AIORateLimiter``) are off for both bots: against
the stand-in they would measure the limiter (30 messages/s), not the bots.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:
    # The Bot API stand-in lives with the tests' fakes.
    sys.path.insert(0, str(REPO / "tests"))

from fakes.botapi import TOKEN, BotApiStandIn, SentMessage  # noqa: E402

CUSTOMERS = 100
ECHO_SECONDS = 4.0
# The datadesk run stops here even if customers are mid-journey: the bench stays
# under a minute on a busy machine; what was answered by then is what counts.
DATADESK_SECONDS = 22.0
JOURNEY_TIMEOUT = 40.0


@dataclass
class Figures:
    """One bot's run: what was handled, in how long, how quickly each was answered."""

    name: str
    updates: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    journeys: int = 0

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency at quantile ``q`` in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index] * 1000


class Replies:
    """Per chat, wakes the customer waiting for the bot's next message (no global scan)."""

    def __init__(self, api: BotApiStandIn) -> None:
        self._waiting: dict[int, tuple[Callable[[SentMessage], bool], asyncio.Future[float]]] = {}
        self._first: dict[int, asyncio.Future[float]] = {}
        api.on_send = self._sent

    async def _sent(self, message: SentMessage) -> None:
        now = time.perf_counter()
        first = self._first.pop(message.chat_id, None)
        if first is not None and not first.done():
            first.set_result(now)
        waiting = self._waiting.get(message.chat_id)
        if waiting is not None and waiting[0](message) and not waiting[1].done():
            waiting[1].set_result(now)

    async def act(
        self,
        chat: int,
        action: Awaitable[Any],
        until: Callable[[SentMessage], bool],
        figures: Figures,
    ) -> None:
        """Do ``action``; wait for a message satisfying ``until``; count the update and latency."""
        loop = asyncio.get_running_loop()
        first: asyncio.Future[float] = loop.create_future()
        done: asyncio.Future[float] = loop.create_future()
        self._first[chat] = first
        self._waiting[chat] = (until, done)
        began = time.perf_counter()
        await action
        try:
            async with asyncio.timeout(JOURNEY_TIMEOUT):
                await done
        finally:
            self._waiting.pop(chat, None)
            self._first.pop(chat, None)
        figures.updates += 1
        figures.latencies.append((first.result() if first.done() else done.result()) - began)


def has_button(data: str) -> Callable[[SentMessage], bool]:
    return lambda m: any(d == data or d.endswith(f":{data}") for d in m.button_data)


def contains(text: str) -> Callable[[SentMessage], bool]:
    return lambda m: text in m.text


# ---- the bare echo bot -------------------------------------------------------


async def run_echo(api: BotApiStandIn) -> Figures:
    """PTB's echo bot, 100 customers typing for ``ECHO_SECONDS``."""
    from telegram import Update
    from telegram.ext import Application, ContextTypes, MessageHandler, filters

    async def echo(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        assert update.message.text is not None
        await update.message.reply_text(update.message.text)

    application = (
        Application.builder()
        .token(TOKEN)
        .base_url(f"{api.url}/bot")
        .base_file_url(f"{api.url}/file/bot")
        .concurrent_updates(True)
        .connection_pool_size(64)
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, echo))
    figures = Figures("echo (bare PTB)")
    replies = Replies(api)
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(timeout=1)
        began = time.perf_counter()
        deadline = began + ECHO_SECONDS

        async def customer(chat: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                text = f"hello {n}"
                await replies.act(chat, api.send_text(chat, text), contains(text), figures)

        await asyncio.gather(*(customer(1_000 + i) for i in range(CUSTOMERS)))
        figures.seconds = time.perf_counter() - began
        await application.updater.stop()
        await application.stop()
    return figures


# ---- the datadesk channel with echo dialogs ------------------------------------


class EchoConversations:
    """Dialogs that answer each text with itself: isolates the channel's own cost."""

    def commands(self, locale: str) -> list[tuple[str, str]]:
        return [("help", "help")]

    async def notify(self, notification: dict[str, Any]) -> list[Any]:
        return []

    async def handle(self, chat: str, event: Any) -> list[Any]:
        from bot.channel import Reply, Text

        return [Reply(event.text)] if isinstance(event, Text) else []


async def run_channel_echo(api: BotApiStandIn) -> Figures:
    """``TelegramChannel`` (per-chat order, rendering, escaping) over echo dialogs."""
    from bot.telegram.app import ChannelOptions, TelegramChannel

    figures = Figures("channel + echo")
    replies = Replies(api)
    channel = TelegramChannel(
        token=TOKEN,
        api_url=api.url,
        conversations=EchoConversations(),
        options=ChannelOptions(rate_limit=False, poll_timeout=1),
    )
    async with channel:
        began = time.perf_counter()
        deadline = began + ECHO_SECONDS

        async def customer(chat: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                text = f"hello {n}"
                await replies.act(chat, api.send_text(chat, text), contains(text), figures)

        await asyncio.gather(*(customer(3_000 + i) for i in range(CUSTOMERS)))
        figures.seconds = time.perf_counter() - began
    return figures


# ---- datadesk ----------------------------------------------------------------


class RecordingSms:
    """An SMS gateway that keeps texts per number, standing in for phones."""

    def __init__(self) -> None:
        self.codes: dict[str, list[str]] = {}
        self.arrived: dict[str, asyncio.Event] = {}

    async def send(self, to: str, text: str, reference: str) -> None:
        self.codes.setdefault(to, []).extend(re.findall(r"\b(\d{6})\b", text))
        self.arrived.setdefault(to, asyncio.Event()).set()

    async def code(self, to: str) -> str:
        await self.arrived.setdefault(to, asyncio.Event()).wait()
        return self.codes[to][-1]


def _customers(count: int) -> dict[str, Any]:
    return {
        "customers": [
            {
                "ref": f"B-{i:04d}",
                "name": f"Bench Customer {i}",
                "language": "en",
                "phones": [{"number": f"+3712{i:07d}", "primary": True}],
                "emails": [{"address": f"c{i}@example.lv", "primary": True}],
                "address": {"line1": "Brīvības iela 1", "city": "Rīga", "postcode": "LV-1010", "country": "LV"},
                "marketing": {"email": True, "sms": True, "phone": True, "post": True},
                "products": [],
                "transactions": [],
                "documents": [],
            }
            for i in range(1, count + 1)
        ]
    }  # fmt: skip


@contextlib.asynccontextmanager
async def datadesk(api: BotApiStandIn, workdir: Path) -> AsyncIterator[RecordingSms]:
    """Backend, worker and bot on SQLite files in ``workdir``; the SMS texts recorded."""
    from aiohttp import web

    from backend.api.app import create_app
    from backend.crm import importer
    from backend.ledger import connector
    from backend.ledger.worker import run_workers
    from backend.models.base import BACKEND_MIGRATIONS
    from backend.services import open_services
    from backend.settings import Settings
    from bot.backend_client import BackendClient
    from bot.conversation import Conversations
    from bot.settings import BotSettings
    from bot.state import BOT_MIGRATIONS
    from bot.telegram.app import ChannelOptions, TelegramChannel
    from common.db import upgrade

    settings = replace(
        Settings.from_env({}),
        data_dir=workdir,
        database_url=f"sqlite+aiosqlite:///{workdir / 'backend.sqlite3'}",
        service_token="bench-service-token",  # noqa: S106 - a throwaway bench database
        secret_key="bench-secret-key",  # noqa: S106
    )
    bot_settings = replace(
        BotSettings.from_env({}),
        data_dir=workdir / "bot",
        bot_database_url=f"sqlite+aiosqlite:///{workdir / 'bot.sqlite3'}",
        bot_secret_key="bench-bot-secret-key",  # noqa: S106
        service_token=settings.service_token,
        telegram_token=TOKEN,
        telegram_api_url=api.url,
    )
    await upgrade(settings.database_url, BACKEND_MIGRATIONS)
    await upgrade(bot_settings.bot_database_url, BOT_MIGRATIONS)
    services = await open_services(settings)
    sms = RecordingSms()
    services.sms = sms
    customers, problems = importer.validate(_customers(CUSTOMERS))
    assert not problems, problems
    await importer.apply(services.sessions, customers, services.clock)
    runner = web.AppRunner(create_app(services), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    bot_settings = replace(bot_settings, backend_url=f"http://127.0.0.1:{port}")
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_workers(services, connector(services), concurrency=1, stop=stop, purge=False)
    )
    backend = BackendClient(bot_settings.backend_url, bot_settings.service_token)
    conversations = await Conversations.open(bot_settings, backend=backend)
    channel = TelegramChannel(
        token=TOKEN,
        api_url=api.url,
        conversations=conversations,
        notifications=backend,
        options=ChannelOptions(rate_limit=False, poll_timeout=1, notifications_wait=1),
    )
    try:
        async with channel:
            yield sms
    finally:
        await conversations.close()
        await backend.close()
        stop.set()
        await worker
        await runner.cleanup()
        await services.close()


async def walk(
    chat: int, phone: str, api: BotApiStandIn, sms: RecordingSms, replies: Replies, figures: Figures
) -> None:
    """One customer's journeys, each step waiting for the answer a person would wait for."""

    async def press(data: str, until: Callable[[SentMessage], bool]) -> None:
        message = next(m for m in reversed(api.messages(chat)) if data in m.button_data)
        await replies.act(chat, api.press(chat, message.message_id, data), until, figures)

    await replies.act(
        chat, api.send_text(chat, "/start", language_code="en"), has_button("status"), figures
    )
    await press("status", has_button("status"))
    await press("marketing_opt_out", lambda m: m.contact_button is not None)
    await replies.act(chat, api.share_contact(chat, phone.lstrip("+")), has_button("sms"), figures)
    await press("sms", has_button("resend"))
    code = await sms.code(phone)
    await replies.act(chat, api.send_text(chat, code), has_button("all"), figures)
    await press("email", has_button("yes"))
    await press("yes", contains("DD-"))
    figures.journeys += 1


async def run_datadesk(api: BotApiStandIn) -> Figures:
    """datadesk, 100 customers walking their journeys at once."""
    figures = Figures("datadesk")
    with tempfile.TemporaryDirectory(prefix="datadesk-bench-") as tmp:
        async with datadesk(api, Path(tmp)) as sms:
            replies = Replies(api)
            began = time.perf_counter()
            customers = [
                asyncio.create_task(walk(5_000 + i, f"+3712{i:07d}", api, sms, replies, figures))
                for i in range(1, CUSTOMERS + 1)
            ]
            await asyncio.wait(customers, timeout=DATADESK_SECONDS)
            figures.seconds = time.perf_counter() - began
            for customer in customers:
                customer.cancel()
            results = await asyncio.gather(*customers, return_exceptions=True)
            figures.failures = sum(
                isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
                for r in results
            )
    return figures


async def measure() -> list[Figures]:
    """Both bots, one after the other, each against a fresh stand-in."""
    async with BotApiStandIn() as api:
        echo = await run_echo(api)
    async with BotApiStandIn() as api:
        channel = await run_channel_echo(api)
    async with BotApiStandIn() as api:
        ours = await run_datadesk(api)
    return [echo, channel, ours]


def report(results: list[Figures]) -> str:
    """The figures as a table, with datadesk's throughput as a share of the echo bot's."""
    lines = [
        f"bot: {CUSTOMERS} concurrent customers through the Bot API stand-in",
        f"{'bot':<18}{'updates':>9}{'seconds':>9}{'updates/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'journeys':>10}{'failed':>8}",
    ]
    for f in results:
        lines.append(
            f"{f.name:<18}{f.updates:>9}{f.seconds:>9.1f}{f.per_second:>11.1f}"
            f"{f.percentile(0.5):>9.1f}{f.percentile(0.99):>9.1f}{f.journeys:>10}{f.failures:>8}"
        )
    echo = results[0]
    for other in results[1:]:
        if echo.per_second:
            lines.append(
                f"{other.name} / echo: {other.per_second / echo.per_second:.2f}x the throughput, "
                f"{other.percentile(0.5) / echo.percentile(0.5):.1f}x the p50 latency"
            )
    return "\n".join(lines)


def main() -> int:
    """Run the bench, print the table; 1 when customers could not finish their journeys."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    results = asyncio.run(measure())
    print(report(results))
    return 1 if any(f.failures for f in results) else 0


if __name__ == "__main__":
    sys.exit(main())
