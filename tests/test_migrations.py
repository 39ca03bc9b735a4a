"""Migrations are the only way tables are made, so they must match the models exactly."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

import backend.models  # noqa: F401  (registers every backend table)
import bot.dialogs.reloads  # registers the dialog reload requests
import bot.state
import bot.telegram.inbox  # registers the webhook inbox and chat lease tables
import bot.telegram.registry  # registers the bot's process table
from backend.models.base import Base
from common.db import make_engine


async def _differences(url: str, metadata: MetaData) -> list[Any]:
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def test_backend_migrations_build_exactly_the_models(backend_db_url: str) -> None:
    assert await _differences(backend_db_url, Base.metadata) == []


async def test_bot_migrations_build_exactly_the_models(bot_db_url: str) -> None:
    assert await _differences(bot_db_url, bot.state.BotBase.metadata) == []
