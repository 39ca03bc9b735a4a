"""The body of every Alembic ``env.py`` here: both databases migrate the same way.

Migrations run online through the project's own async engine (so SQLite gets
the same pragmas as at run time) and in batch mode on SQLite, which cannot
ALTER most things in place.

Many processes may migrate at once (every bot, worker and backend of a
deployment started together runs ``datadesk db upgrade``), so an upgrade holds
a lock: a PostgreSQL advisory lock for the migration transaction, an exclusive
``flock`` on a file beside a SQLite database. The first process migrates; the
others wait for it, then find nothing left to do. The revisions a process
applied are left in ``config.attributes["applied"]`` for ``common.db.upgrade_sync``
to log, so a deployment's logs show the one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from alembic import context
from alembic.migration import MigrationContext, MigrationInfo
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection, make_url

from common.db import is_sqlite, make_engine
from common.private_files import FILE_MODE

# The key of the advisory lock: any fixed number does (PostgreSQL's advisory
# locks belong to one database, and a database has one migration history).
MIGRATION_LOCK = int.from_bytes(b"datadesk", "big") >> 1


def _run(connection: Connection, metadata: MetaData) -> None:
    applied: list[str] = context.config.attributes.setdefault("applied", [])

    def record(
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: Collection[Any],
        run_args: Mapping[str, Any],
    ) -> None:
        applied.extend(step.up_revision_ids)

    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=is_sqlite(str(connection.engine.url)),
        compare_type=True,
        on_version_apply=record,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Released at commit: the version table is current by the time a waiter reads it.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def _run_async(url: str, metadata: MetaData) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run, metadata)
            await connection.commit()
    finally:
        await engine.dispose()


@contextlib.contextmanager
def sqlite_migration_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock on ``DATABASE.migrate-lock`` beside a SQLite file (else nothing)."""
    database = make_url(url).database if is_sqlite(url) else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield None
        return
    descriptor = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield None
    finally:
        os.close(descriptor)  # releases the lock


def run_migrations(metadata: MetaData, default_url: Callable[[], str] | None = None) -> None:
    """Run the migrations Alembic asked for against ``sqlalchemy.url``.

    Without one in the configuration (the ``alembic`` command with the
    checkout's ``alembic.ini``), ``default_url()`` gives the database the
    ``DATADESK_*`` settings name.
    """
    url = context.config.get_main_option("sqlalchemy.url")
    if not url and default_url is not None:
        url = default_url()
    if not url:
        raise RuntimeError("alembic: sqlalchemy.url is not set; use `datadesk db upgrade`")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    with sqlite_migration_lock(url):
        asyncio.run(_run_async(url, metadata))
