"""The connection pool without a ping per checkout: connections the server closed are replaced."""

from __future__ import annotations

import asyncio

import pytest
from conftest import DB_KINDS
from sqlalchemy import text

from backend.services import Services
from common.db import admin_execute


@pytest.mark.parametrize("db_kind", [kind for kind in DB_KINDS if kind == "postgres"])
async def test_a_connection_the_server_ended_is_replaced_before_anyone_uses_it(
    services: Services,
) -> None:
    async with services.sessions() as session:
        own = await session.scalar(text("SELECT pg_backend_pid()"))
    # As a server restart or an administrator would: end the pooled connection.
    await admin_execute(services.settings.database_url, f"SELECT pg_terminate_backend({int(own)})")
    # asyncpg learns of the closed socket on the event loop; give it a few turns.
    for _ in range(100):
        await asyncio.sleep(0.01)
        async with services.sessions() as session:
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
        if pid != own:
            break
    assert pid != own
