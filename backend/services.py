"""The backend's long-lived parts, built once per process and handed to handlers and workers."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend import crypto
from backend.crm.connector import CrmConnector
from backend.keys import check_keys
from backend.mailer import Mailer, SmtpMailer
from backend.models.base import BACKEND_MIGRATIONS
from backend.settings import Settings
from backend.sms import ConsoleSmsGateway, HttpSmsGateway, SmsGateway
from common.clock import Clock, SystemClock
from common.db import make_engine, make_sessionmaker, require_schema
from common.private_files import ensure_private_dir
from common.settings import PREFIX


@dataclass
class Services:
    """Everything a request handler or worker needs; no module-level state elsewhere."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keyring: crypto.Keyring
    clock: Clock = field(default_factory=SystemClock)
    crm: CrmConnector = field(kw_only=True)
    sms: SmsGateway = field(kw_only=True)
    mailer: Mailer | None = field(kw_only=True, default=None)

    async def close(self) -> None:
        """Release connections; the object is unusable afterwards."""
        await self.engine.dispose()


async def open_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Build the services for ``settings``; the database must already be migrated.

    Raises ``SettingsError`` (``datadesk`` prints its one line and exits 2)
    when it is not (``common.db.require_schema``), and ``crypto.KeyMismatch``
    (a ``SettingsError`` too) when the configured keys do not fit the database.
    """
    # DATA_DIR holds the key and, by default, the database: private before either is made.
    ensure_private_dir(settings.data_dir)
    keyring = crypto.load_keyring(settings.secret_key, settings.data_dir, settings.old_secret_keys)
    crypto.install(keyring)
    engine = make_engine(settings.database_url)
    clock = clock or SystemClock()
    try:
        await require_schema(engine, BACKEND_MIGRATIONS, "DATABASE_URL")
        # A wrong key would make every customer look unknown: refuse to start instead.
        await check_keys(engine, keyring, clock, _key_source(settings))
    except BaseException:
        await engine.dispose()
        raise
    sessions = make_sessionmaker(engine)
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        keyring=keyring,
        clock=clock,
        crm=_crm(settings, sessions, clock),
        sms=_sms(settings),
        mailer=SmtpMailer.from_settings(settings),
    )


def _key_source(settings: Settings) -> str:
    """How a key-mismatch message names where the primary key came from."""
    if settings.secret_key:
        return f"{PREFIX}SECRET_KEY"
    return f"{settings.data_dir / crypto.SECRET_KEY_FILE} ({PREFIX}SECRET_KEY is unset)"


def _crm(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> CrmConnector:
    """The configured CRM connector: the built-in one, or a bank's over HTTP."""
    if settings.crm == "http" and settings.crm_url:
        from backend.crm.http import HttpCrm

        return HttpCrm(settings.crm_url, settings.crm_token)
    from backend.crm.builtin import BuiltinCrm
    from backend.escalations import chat_history_eraser

    return BuiltinCrm(sessions, clock, on_erase_chat_history=chat_history_eraser(sessions))


def _sms(settings: Settings) -> SmsGateway:
    """The configured SMS gateway: the console for the demo, HTTP for a bank's gateway."""
    if settings.sms_gateway == "http" and settings.sms_gateway_url:
        return HttpSmsGateway(settings.sms_gateway_url, settings.sms_gateway_token)
    return ConsoleSmsGateway()
