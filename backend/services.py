"""The backend's long-lived parts, built once per process and handed to handlers and workers."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend import crypto
from backend.clock import Clock, SystemClock
from backend.db import make_engine, make_sessionmaker
from backend.settings import Settings


@dataclass
class Services:
    """Everything a request handler or worker needs; no module-level state elsewhere."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keyring: crypto.Keyring
    clock: Clock = field(default_factory=SystemClock)

    async def close(self) -> None:
        """Release connections; the object is unusable afterwards."""
        await self.engine.dispose()


async def open_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Build the services for ``settings``; the database must already be migrated."""
    keyring = crypto.load_keyring(settings.secret_key, settings.data_dir)
    crypto.install(keyring)
    engine = make_engine(settings.database_url)
    return Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        keyring=keyring,
        clock=clock or SystemClock(),
    )
