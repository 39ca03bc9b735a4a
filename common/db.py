"""Database engines, sessions and migrations, the same for the backend's database and the bot's.

Both databases are reached through SQLAlchemy's asyncio API: SQLite (aiosqlite)
for the embedded default, PostgreSQL (asyncpg) at scale; ``Autocommit.execute``,
for hot single statements, runs SQLite's batched in a thread of its own. ``upgrade``
runs the Alembic migrations of one database; nothing creates tables any other way. Each
side owns its declarative base and its migrations folder
(``backend.models.base``, ``bot.state``); this module knows neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import weakref
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

import aiosqlite
from aiosqlite import context as aiosqlite_context
from sqlalchemy import (
    DateTime,
    Delete,
    Executable,
    Insert,
    TextClause,
    Update,
    create_engine,
    event,
    exc,
    inspect,
)
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.engine import Connection, Dialect, Row, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from common.private_files import DIR_MODE, ensure_private_file, tighten_private_file
from common.settings import PREFIX, SettingsError, lookup, parse_int

log = logging.getLogger("datadesk.migrations")

# Stable constraint names, so that migrations written on SQLite and PostgreSQL agree.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


@cache  # asked on hot paths (``write_turn`` before each of a worker's writes); URLs are few
def is_sqlite(url: str) -> bool:
    """Whether a database URL names SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


# Per event loop (tests run many), per SQLite database: the process's write turn.
_WRITE_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def write_turn(url: str) -> contextlib.AbstractAsyncContextManager[Any]:
    """This process's turn at SQLite's write lock on ``url``; on PostgreSQL, no wait.

    SQLite lets one writer in at a time; another finds the lock taken and
    sleeps in SQLite's busy handler, up to 100 ms a try, however soon it is
    let go. The writers of one process that write often and in bursts (a
    worker's claims and joined batches, its "Was this you?" notices) take this
    turn first, so they queue here, in order, and each finds the lock free.
    Never take it twice: it is not reentrant.
    """
    if not is_sqlite(url):
        return contextlib.nullcontext()
    turns = _WRITE_TURNS.setdefault(asyncio.get_running_loop(), {})
    return turns.setdefault(url, asyncio.Lock())


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; the busy timeout makes a
    # second writer wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _prepare_sqlite_file(url: str) -> None:
    """Create a SQLite database file ``0600`` (in a ``0700`` folder if new) before SQLite does.

    SQLite gives its ``-wal``, ``-shm`` and ``-journal`` files the database
    file's permissions, so they are private too; ones left wider by an older
    version are tightened.
    """
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    ensure_private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten_private_file(path.with_name(path.name + suffix))


# A server's connections are shared by every process's pools (PostgreSQL allows
# 100 by default): a process keeps up to POOL_SIZE open and opens up to
# MAX_OVERFLOW more for a burst.
POOL_SIZE = 10
MAX_OVERFLOW = 20


def pool_limits(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """``DB_POOL_SIZE`` and ``DB_MAX_OVERFLOW`` that are set, as ``pool_size``/``max_overflow``.

    Raises ``SettingsError`` for a value that is not a whole number (``DB_POOL_SIZE`` at
    least 1, ``DB_MAX_OVERFLOW`` at least 0).
    """
    env = os.environ if env is None else env
    limits: dict[str, int] = {}
    size, overflow = lookup(env, "DB_POOL_SIZE"), lookup(env, "DB_MAX_OVERFLOW")
    if size is not None:
        limits["pool_size"] = parse_int("DB_POOL_SIZE", size)
        if limits["pool_size"] < 1:
            raise SettingsError(f"DATADESK_DB_POOL_SIZE: expected at least 1, got {size!r}")
    if overflow is not None:
        limits["max_overflow"] = parse_int("DB_MAX_OVERFLOW", overflow)
        if limits["max_overflow"] < 0:
            raise SettingsError(f"DATADESK_DB_MAX_OVERFLOW: expected 0 or more, got {overflow!r}")
    return limits


class _ClosingCursor(aiosqlite.Cursor):
    """An aiosqlite cursor whose sqlite3 cursor is closed in its own thread when a call fails.

    SQLAlchemy's aiosqlite adapter leaves the cursor of a failed statement
    open, held by the error's traceback until the garbage collector frees it,
    on the event loop's thread. Freeing an open cursor resets its statement,
    and that waits for the connection's mutex: if the connection is by then
    waiting in SQLite's busy handler for another process's write lock, the
    event loop stops for up to the busy timeout, and with it every transaction
    of the process, the one holding the lock the others wait for included.
    py-spy on a ``datadesk backend`` that answered nothing for 30 s (two
    backends on one SQLite file, ``make bench``) showed the loop in
    ``gc_collect_main → cursor_clear → sqlite3_reset → pthread_mutex_lock``.
    """

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        except BaseException:
            # Queued behind the failed call (even one cancelled while it runs),
            # in the connection's thread; nobody waits for it.
            self._conn._tx.put_nowait((None, self._cursor.close))
            raise


class _Connection(aiosqlite.Connection):
    @aiosqlite_context.contextmanager
    async def cursor(self) -> aiosqlite.Cursor:
        return _ClosingCursor(self, await self._execute(self._conn.cursor))  # type: ignore[no-untyped-call]


def _aiosqlite_connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> Any:
    """``aiosqlite.connect``, making a ``_Connection``; its thread does not keep the process up."""
    connection = _Connection(partial(sqlite3.connect, database, **kwargs), iter_chunk_size)
    connection._thread.daemon = True
    return connection


class _AiosqliteDbapi(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI, connecting with ``_aiosqlite_connect``."""

    def connect(self, *arg: Any, **kw: Any) -> Any:
        kw.setdefault("async_creator_fn", _aiosqlite_connect)
        return super().connect(*arg, **kw)


_AIOSQLITE = _AiosqliteDbapi(aiosqlite, sqlite3)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create an async engine with the settings this project relies on for ``url``.

    Every engine hides SQL parameters from its errors and echo: they hold
    personal data in clear (before ``Encrypted`` columns encrypt it), and an
    error's text ends up in logs. A PostgreSQL engine's pool holds ``pool_size``
    connections and up to ``max_overflow`` more (given, else ``POOL_SIZE`` and
    ``MAX_OVERFLOW``); ``DATADESK_DB_POOL_SIZE`` and ``DATADESK_DB_MAX_OVERFLOW``,
    when set, override both (``SettingsError`` for a bad value).
    """
    kwargs["hide_parameters"] = True
    if is_sqlite(url):
        _prepare_sqlite_file(url)
        if make_url(url).get_driver_name() == "aiosqlite":
            kwargs.setdefault("module", _AIOSQLITE)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", MAX_OVERFLOW)
    # The operator's limit wins over a caller's default: it is what the server can take.
    kwargs.update(pool_limits())
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        event.listen(engine.sync_engine.pool, "checkout", _drop_closed_asyncpg)
    return engine


def _drop_closed_asyncpg(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool ``checkout``: refuse a connection whose server side is gone, without a round trip.

    ``pool_pre_ping`` sends a query at every checkout: one round trip per
    transaction, 18% of a worker's samples under ``make bench`` (py-spy). A
    server that restarts or ends a connection closes its socket, and asyncpg
    notices that on the event loop (``is_closed()``), so this check costs
    nothing; the pool then opens a fresh connection. A connection that breaks
    silently fails its next statement instead, and the pool is invalidated then.
    """
    raw = getattr(dbapi_connection, "_connection", None)
    if raw is not None and raw.is_closed():
        raise exc.DisconnectionError("the server closed this connection")


async def begin_write(session: AsyncSession) -> None:
    """Start ``session``'s transaction as a writer: on SQLite, take the write lock now.

    pysqlite opens a deferred transaction at the first write, so a transaction
    that reads what it is about to change (which rows are due, whose lease is
    still ours) would read before holding the lock; ``BEGIN IMMEDIATE`` takes
    it first, waiting up to the busy timeout. PostgreSQL locks rows instead
    (``FOR UPDATE``), so this does nothing there. Call it before anything else.
    """
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The one way sessions are made: objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Outcome:
    """What one statement did: the rows it returned (none for a write), the rows it changed."""

    rows: list[Row[Any]]
    rowcount: int


def _writes(statement: Executable) -> bool:
    if isinstance(statement, TextClause):  # SQL as text: an upsert the dialects cannot cache
        return statement.text.lstrip()[:6].upper() in {"INSERT", "UPDATE", "DELETE"}
    return isinstance(statement, (Insert, Update, Delete))


class _SqliteBatches:
    """Statements of many tasks run together in one thread of their own, one hop per batch.

    aiosqlite sends every DBAPI call (cursor, execute, fetch, close) to its
    thread and back, and each hop waits for the GIL while the event loop
    computes; a py-spy profile of ``bench/engine.py`` put most of a persisted
    event's time there. Here a statement is queued; whatever was queued while
    the previous batch ran goes to the thread in one call, which runs it in
    order in one transaction (``BEGIN IMMEDIATE`` when any writes: a group
    commit) on a connection it keeps, and answers each statement's caller.
    A statement's own error (a duplicate key) is its caller's alone; one that
    ends the transaction (the disk is full) is every caller's in the batch.
    """

    def __init__(self, url: str) -> None:
        self._engine = create_engine(
            make_url(url).set(drivername="sqlite"),
            hide_parameters=True,
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
        )
        event.listen(self._engine, "connect", _sqlite_pragmas)
        self._connection: Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datadesk-sqlite")
        self._queued: list[tuple[Executable, Any, asyncio.Future[Outcome]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def execute(self, statement: Executable, params: Any) -> Outcome:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Outcome] = loop.create_future()
        self._queued.append((statement, params, answer))
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await answer

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[tuple[Executable, Any, asyncio.Future[Outcome]]] = []
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                work = [(statement, params) for statement, params, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(self._thread, self._run, work)
                except Exception as error:
                    outcomes = [error] * len(batch)
                for (_, _, answer), outcome in zip(batch, outcomes, strict=True):
                    if answer.done():  # its caller was cancelled
                        continue
                    if isinstance(outcome, Exception):
                        answer.set_exception(outcome)
                    else:
                        answer.set_result(outcome)
                batch = []
        finally:
            self._draining = None
            # Cancelled (the loop is closing): nobody is left to answer these.
            for _, _, answer in batch + self._queued:
                answer.cancel()
            self._queued = []

    def _run(self, work: list[tuple[Executable, Any]]) -> list[Outcome | Exception]:
        """In the thread: the batch in one transaction if it writes; each statement's outcome."""
        if self._connection is None:
            self._connection = self._engine.connect()
        connection = self._connection
        raw: Any = connection.connection.driver_connection
        writes = any(_writes(statement) for statement, _ in work)
        outcomes: list[Outcome | Exception] = []
        try:
            if writes:
                raw.execute("BEGIN IMMEDIATE")
            for statement, params in work:
                try:
                    result = connection.execute(statement, params)
                    rows = list(result.all()) if result.returns_rows else []
                    outcomes.append(Outcome(rows, result.rowcount))
                except exc.StatementError as error:
                    if writes and not raw.in_transaction:
                        raise  # SQLite ended the transaction: the batch's writes are gone
                    outcomes.append(error)
            if writes:
                raw.execute("COMMIT")
            connection.rollback()  # SQLAlchemy's own (empty) autobegun transaction
        except BaseException:
            # The batch fails as a whole; the next one starts on a fresh connection.
            self._connection = None
            with contextlib.suppress(Exception):
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
            with contextlib.suppress(Exception):
                connection.close()
            raise
        return outcomes

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._engine.dispose()

    async def close(self) -> None:
        if self._draining is not None:
            await asyncio.shield(self._draining)
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_connection)
        self._thread.shutdown(wait=False)


class Autocommit:
    """Single-statement transactions beside ``engine``, for a hot path.

    ``execute`` runs one statement as its own transaction and returns its
    ``Outcome``. On SQLite, statements of tasks running at once are batched to
    one thread and committed together (see ``_SqliteBatches``); ``connect``'s
    connections have a pool of their own with nothing to reset on return
    (every reset is a round trip to aiosqlite's thread). PostgreSQL's
    connections are shared with ``engine``, not doubled.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._own = engine.dialect.name == "sqlite"
        self._batches: _SqliteBatches | None = None
        if self._own:
            self.engine = make_engine(
                engine.url.render_as_string(hide_password=False),
                isolation_level="AUTOCOMMIT",
                pool_reset_on_return=None,
            )
        else:
            self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    def connect(self) -> AsyncConnection:
        """A connection whose every statement commits by itself (``async with``)."""
        return self.engine.connect()

    async def execute(self, statement: Executable, params: Any = None) -> Outcome:
        """Run ``statement`` (with ``params``: a dict, or a list for executemany) and commit it."""
        if self._own:
            if self._batches is None:
                self._batches = _SqliteBatches(
                    self.engine.url.render_as_string(hide_password=False)
                )
            return await self._batches.execute(statement, params)
        async with self.engine.connect() as connection:
            result = await connection.execute(statement, params)
            rows = list(result.all()) if result.returns_rows else []
            return Outcome(rows, result.rowcount)

    async def close(self) -> None:
        """Release the pool and thread of its own (SQLite); a shared pool is ``engine``'s to dispose."""
        if self._batches is not None:
            await self._batches.close()
            self._batches = None
        if self._own:
            await self.engine.dispose()


def alembic_config(url: str, script_location: Path) -> Any:
    """Alembic's configuration for one database and its migrations folder."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    # Revision files are named by their id alone: 0005_what_it_does.py.
    config.set_main_option("file_template", "%%(rev)s")
    return config


def upgrade_sync(url: str, script_location: Path) -> list[str]:
    """Run Alembic migrations of one database up to head (blocking); the revisions applied.

    Safe from many processes at once: ``common.alembic_env`` takes a lock, so
    one process applies the migrations and the others find none left.
    """
    from alembic import command

    if is_sqlite(url):
        _prepare_sqlite_file(url)
    config = alembic_config(url, script_location)
    command.upgrade(config, "heads")
    applied: list[str] = config.attributes.get("applied", [])
    side = script_location.parent.name
    if applied:
        log.info("%s database: applied %s", side, ", ".join(applied))
    else:
        log.info("%s database: already at the newest schema", side)
    return applied


async def upgrade(url: str, script_location: Path) -> list[str]:
    """Run Alembic migrations up to head without blocking the event loop; the revisions applied."""
    return await asyncio.to_thread(upgrade_sync, url, script_location)


@cache
def _revisions(script_location: Path) -> tuple[frozenset[str], frozenset[str]]:
    """Every revision of a migrations folder, and its heads (read once per process)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://", script_location))
    known = frozenset(rev.revision for rev in script.walk_revisions())
    return known, frozenset(script.get_heads())


async def require_schema(engine: AsyncEngine, script_location: Path, setting: str) -> None:
    """``SettingsError`` naming ``datadesk db upgrade`` when the database is behind its migrations.

    Processes do not migrate by themselves (``datadesk run`` and the terminal
    chat excepted): one started on an empty or older database would fail at
    its first query with an SQL error, or worse, at a customer's first
    message. A database at a revision this code does not know is newer
    (a deployment mid-upgrade) and is let be. ``setting`` names the URL's
    variable for the message; the URL itself is not shown (it may hold a
    password).
    """
    known, heads = _revisions(script_location)
    async with engine.connect() as connection:
        found: frozenset[str] = frozenset()
        if await connection.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
            versions = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            found = frozenset(versions.scalars().all())
    if found == heads or not found <= known:
        return
    side = script_location.parent.name
    at = ", ".join(sorted(found)) or "no tables"
    raise SettingsError(
        f"{PREFIX}{setting}: the {side} database is not migrated (at {at}, newest"
        f" {', '.join(sorted(heads))}); run `datadesk db upgrade` first"
    )


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every engine.

    SQLite keeps no zone, so values are normalised to UTC on the way in and
    marked UTC on the way out; PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def admin_execute(url: str, sql: str) -> None:
    """Run one statement that cannot run in a transaction (``CREATE DATABASE``) on ``url``'s server.

    Tests and benchmarks use it to make and drop throw-away PostgreSQL databases.
    """
    import asyncpg

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database=parsed.database or "postgres",
        timeout=10,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
