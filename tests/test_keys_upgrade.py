"""A database written before key ids: upgraded by migration 0007, still read, then rotated.

The backend database is migrated down to 0006 and given rows as the previous
version wrote them (``v1.`` values, no key id, no associated data, no
``row_uid``), then migrated up again. The first start registers the key after
checking a stored value opens with it; customers are found and read as
before; ``keys rotate`` with the same key gives every value its key id and
row binding.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from fakes.legacy import v1_value

from backend.crypto import Key
from backend.key_rotation import rotate
from backend.keys import key_counts, totals_by_key
from backend.models.base import BACKEND_MIGRATIONS
from backend.services import open_services
from backend.settings import Settings
from common.clock import FakeClock
from common.db import UTCDateTime, alembic_config, make_engine, upgrade

PHONE = "+37120000077"


async def _write_as_the_previous_version(url: str, key: Key) -> None:
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    customers = sa.table(
        "crm_customers",
        sa.column("id"),
        sa.column("ref"),
        sa.column("name"),
        sa.column("language"),
        sa.column("created_at", UTCDateTime()),
    )
    phones = sa.table(
        "crm_phones",
        sa.column("customer_id"),
        sa.column("number"),
        sa.column("number_index"),
        sa.column("is_primary"),
    )
    notifications = sa.table(
        "notifications",
        sa.column("chat"),
        sa.column("locale"),
        sa.column("type"),
        sa.column("details"),
        sa.column("created_at", UTCDateTime()),
    )
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                customers.insert().values(
                    id=1, ref="C-77", name=v1_value(key, "Ilze Ozola"), language="lv", created_at=at
                )
            )
            await conn.execute(
                phones.insert().values(
                    customer_id=1,
                    number=v1_value(key, PHONE),
                    number_index=_legacy_index(key, PHONE),
                    is_primary=True,
                )
            )
            await conn.execute(
                notifications.insert().values(
                    chat="tg:77",
                    locale="lv",
                    type="agent_message",
                    details=v1_value(key, '{"text": "Labdien"}'),
                    created_at=at,
                )
            )
    finally:
        await engine.dispose()


def _legacy_index(key: Key, e164: str) -> str:
    """The phone's look-up digest as the previous version computed it."""
    return hmac.new(key.index_key, f"phone\x00{e164}".encode(), hashlib.sha256).hexdigest()


async def test_values_from_before_key_ids_are_read_after_the_upgrade_and_rotated(
    settings: Settings, clock: FakeClock
) -> None:
    url = settings.database_url
    key = Key.from_secret(settings.secret_key or "")
    config = alembic_config(url, BACKEND_MIGRATIONS)
    await asyncio.to_thread(command.downgrade, config, "0006_console_limits")
    await _write_as_the_previous_version(url, key)
    await upgrade(url, BACKEND_MIGRATIONS)

    svc = await open_services(settings, clock=clock)
    try:
        assert await svc.crm.find_by_phone(PHONE) == "C-77"
        exported = await svc.crm.export("C-77")
        assert exported is not None
        assert exported["name"] == "Ilze Ozola"
        assert totals_by_key(await key_counts(svc.engine)) == {"v1": 3}

        report = await rotate(svc.engine, svc.keyring, batch=10, progress=lambda _: None)
        assert report.unreadable is None
        assert totals_by_key(await key_counts(svc.engine)) == {key.id: 3}
        assert await svc.crm.find_by_phone(PHONE) == "C-77"
        exported = await svc.crm.export("C-77")
        assert exported is not None
        assert exported["name"] == "Ilze Ozola"
    finally:
        await svc.close()
