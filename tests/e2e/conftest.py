"""The whole of datadesk on loopback, driven from the customer's side of a Telegram chat.

``stack`` starts, per test and per database engine (SQLite, PostgreSQL):
the Bot API stand-in, the SMS gateway sink and an SMTP server, the real
backend API and one real worker on the test's backend database (clock: the
test's ``FakeClock``), and the real bot pieces (``Conversations`` on the test's
bot database, ``BackendClient``, ``TelegramChannel``) pointed at all of them.
Each side has its own settings and data folder, as separate processes would:
``Stack.settings`` is the backend's, ``Stack.bot_settings`` the bot's.
Customers come from a small CRM import; their codes are read from what the
SMS sink and the SMTP server received, the way a phone would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import openapi_contract
import pytest
from aiohttp import web
from fakes import loopback
from fakes.botapi import TOKEN, BotApiStandIn

from backend.crm import importer
from backend.services import Services, open_services
from backend.settings import Settings
from bot.backend_client import BackendClient
from bot.conversation import Conversations
from bot.i18n import Catalogs
from bot.settings import BotSettings
from bot.state_key import load_state_key
from bot.telegram.app import ChannelOptions, TelegramChannel
from common.clock import FakeClock

SMS_TOKEN = "sms-gateway-test-token"

CUSTOMERS: dict[str, Any] = {
    "customers": [
        {
            "ref": "C-1001",
            "name": "Anna Bērziņa",
            "language": "lv",
            "phones": [{"number": "+37120000001", "primary": True}],
            "emails": [{"address": "anna@example.lv", "primary": True}],
            "address": {"line1": "Brīvības iela 1", "city": "Rīga", "postcode": "LV-1010", "country": "LV"},
            "marketing": {"email": True, "sms": True, "phone": False, "post": True},
            "products": [
                {"kind": "current_account", "id": "LV80BANK0000435195001", "opened": "2015-03-01", "closed": None},
                {"kind": "loan", "id": "L-77", "opened": "2020-01-10", "closed": "2024-06-30"},
            ],
            "transactions": [{"date": "2024-05-02", "amount": "-12.50", "currency": "EUR", "product": "LV80BANK0000435195001"}],
            "documents": [{"kind": "passport_copy", "collected": "2015-03-01"}],
        },
        {
            "ref": "C-1002",
            "name": "Ivan Petrov",
            "language": "ru",
            "phones": [{"number": "+37120000002", "primary": True}],
            "emails": [{"address": "ivan@example.lv", "primary": True}],
            "address": {"line1": "Elizabetes iela 20", "city": "Rīga", "postcode": "LV-1050", "country": "LV"},
            "marketing": {"email": True, "sms": True, "phone": True, "post": True},
            "products": [{"kind": "loan", "id": "L-88", "opened": "2012-01-10", "closed": "2024-06-30"}],
            "transactions": [{"date": "2024-05-02", "amount": "-100.00", "currency": "EUR", "product": "L-88"}],
            "documents": [{"kind": "passport_copy", "collected": "2012-01-10"}],
        },
        {
            "ref": "C-1003",
            "name": "Emma Wood",
            "language": "en",
            "phones": [{"number": "+37120000003", "primary": True}],
            "emails": [{"address": "emma@example.com", "primary": True}],
            "address": {"line1": "Tērbatas iela 5", "city": "Rīga", "postcode": "LV-1011", "country": "LV"},
            "marketing": {"email": True, "sms": False, "phone": False, "post": False},
            "products": [{"kind": "savings_account", "id": "LV97BANK0000435195002", "opened": "2019-03-01", "closed": None}],
            "transactions": [],
            "documents": [],
        },
    ]
}  # fmt: skip


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on a free loopback port (a backend behind the OpenAPI contract check)."""
    return await loopback.serve(openapi_contract.check(app))


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    """Every part of datadesk, running; the test plays the customer through ``api``."""

    api: BotApiStandIn
    sms: Any
    mail: Any
    services: Services
    settings: Settings
    bot_settings: BotSettings
    clock: FakeClock
    catalogs: Catalogs
    mode: str = "polling"
    channel: TelegramChannel | None = None
    conversations: Conversations | None = None
    backend_client: BackendClient | None = None
    # ChannelOptions fields a test changes (``update_backoff``, say).
    channel_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def backend_url(self) -> str:
        """Where the backend's API and console listen."""
        return self.bot_settings.backend_url

    # ---- the bot process --------------------------------------------------

    async def start_bot(self) -> None:
        """Start the bot pieces as ``datadesk bot`` does (state from the bot database)."""
        # As ``datadesk bot`` takes both from TELEGRAM_MODE: the conversations and the channel agree.
        bot = replace(self.bot_settings, telegram_mode=self.mode)
        self.backend_client = BackendClient(bot.backend_url, bot.service_token)
        self.conversations = await Conversations.open(bot, backend=self.backend_client)
        self.channel = TelegramChannel(
            token=TOKEN,
            api_url=self.api.url,
            conversations=self.conversations,
            notifications=self.backend_client,
            options=self._channel_options(),
        )
        await self.channel.start()

    def _channel_options(self) -> ChannelOptions:
        if self.mode == "polling":
            return ChannelOptions(
                rate_limit=False, poll_timeout=1, notifications_wait=1, **self.channel_overrides
            )
        port = free_port()
        return ChannelOptions(
            **self.channel_overrides,
            rate_limit=False,
            notifications_wait=1,
            # As ``datadesk bot`` runs webhooks: updates through the bot database's inbox.
            bot_database_url=self.bot_settings.bot_database_url,
            state_key=load_state_key(self.bot_settings),
            mode="webhook",
            webhook_url=f"http://127.0.0.1:{port}/telegram/e2e-hook",
            webhook_secret="e2e-webhook-secret",
            webhook_port=port,
        )

    async def stop_bot(self) -> None:
        """Stop the bot pieces, keeping the backend, worker and databases."""
        if self.channel is not None:
            await self.channel.stop()
        if self.conversations is not None:
            await self.conversations.close()
        if self.backend_client is not None:
            await self.backend_client.close()
        self.channel = self.conversations = self.backend_client = None

    # ---- what the customer's phone and mailbox received --------------------

    def codes_sent_to(self, phone: str) -> list[str]:
        """Six-digit codes the SMS gateway accepted for ``phone``, oldest first."""
        return list(self.sms.codes_for(phone))

    def sms_count(self) -> int:
        """Every SMS the gateway accepted, to anyone."""
        return len(self.sms.messages)

    async def code_for(self, phone: str, after: int = 0) -> str:
        """The newest code sent to ``phone`` once more than ``after`` codes have arrived."""
        while len(self.codes_sent_to(phone)) <= after:
            await self.sms.wait_for(len(self.sms.messages) + 1)
        return self.codes_sent_to(phone)[-1]

    async def mailed_code(self, address: str, after: int = 0) -> str:
        """The newest code mailed to ``address`` once more than ``after`` have arrived."""
        while len(self.mail.codes_for(address)) <= after:
            await self.mail.wait_for(len(self.mail.messages) + 1)
        return str(self.mail.codes_for(address)[-1])

    # ---- the customer's words, in their language ----------------------------

    def says(self, locale: str, message: str, **params: object) -> str:
        """``message`` in ``locale`` with ``params`` filled in, as the bot would say it."""
        translator = self.catalogs.translator(locale)
        return translator.format(translator.gettext(message), **params)

    def t(self, locale: str, message: str) -> str:
        """What ``message`` reads as in ``locale``: the text before its first placeholder."""
        text = self.catalogs.translator(locale).gettext(message)
        return text.split("{", 1)[0].strip()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Settings a test changes; override by parametrizing this name."""
    return {}


@pytest.fixture
def channel_overrides() -> dict[str, Any]:
    """``ChannelOptions`` a test changes; override by parametrizing this name."""
    return {}


@pytest.fixture
def bot_in_process() -> bool:
    """Whether ``stack`` runs the bot in the test's process; parametrize False to run it yourself."""
    return True


@pytest.fixture
def telegram_mode() -> str:
    """How the bot gets updates; parametrize ``webhook`` to have the stand-in POST them."""
    return "polling"


@pytest.fixture
async def stack(
    tmp_path: Path,
    backend_db_url: str,
    bot_db_url: str,
    clock: FakeClock,
    settings_overrides: dict[str, Any],
    bot_in_process: bool,
    telegram_mode: str,
    channel_overrides: dict[str, Any],
) -> AsyncIterator[Stack]:
    """The running system for one test; stopped afterwards in reverse order."""
    from fakes.sms_sink import running_sms_sink
    from fakes.smtp import running_smtp

    from backend.api.app import create_app
    from backend.ledger import connector
    from backend.ledger.worker import run_workers

    async with contextlib.AsyncExitStack() as stack_exit:
        api = await stack_exit.enter_async_context(BotApiStandIn())
        sms = await stack_exit.enter_async_context(running_sms_sink(SMS_TOKEN))
        mail = stack_exit.enter_context(running_smtp())
        settings = replace(
            Settings.from_env({}),
            data_dir=tmp_path / "var",
            database_url=backend_db_url,
            service_token="e2e-service-token",
            secret_key="e2e-secret-key-not-for-production",
            sms_gateway="http",
            sms_gateway_url=sms.url,
            sms_gateway_token=SMS_TOKEN,
            smtp_host=mail.host,
            smtp_port=mail.port,
            **settings_overrides,
        )
        services = await open_services(settings, clock=clock)
        stack_exit.push_async_callback(services.close)
        customers, problems = importer.validate(CUSTOMERS)
        assert problems == []
        await importer.apply(services.sessions, customers, clock)
        runner, url = await serve(create_app(services))
        stack_exit.push_async_callback(runner.cleanup)
        bot_settings = replace(
            BotSettings.from_env({}),
            data_dir=tmp_path / "bot-var",
            bot_database_url=bot_db_url,
            bot_secret_key="e2e-bot-secret-key-not-for-production",
            telegram_token=TOKEN,
            telegram_api_url=api.url,
            backend_url=url,
            service_token=settings.service_token,
        )
        stop = asyncio.Event()
        worker = asyncio.create_task(
            run_workers(services, connector(services), concurrency=1, stop=stop, purge=False)
        )

        async def stop_worker() -> None:
            stop.set()
            await worker

        stack_exit.push_async_callback(stop_worker)
        catalogs = Catalogs.load(bot_settings.locales_dir)
        running = Stack(
            api,
            sms,
            mail,
            services,
            settings,
            bot_settings,
            clock,
            catalogs,
            telegram_mode,
            channel_overrides=channel_overrides,
        )
        stack_exit.push_async_callback(running.stop_bot)
        if bot_in_process:
            await running.start_bot()
        yield running
