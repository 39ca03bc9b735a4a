"""Fresh, migrated databases for tests: a copied file on SQLite, a reused pool on PostgreSQL.

Each factory migrates a template once per session. On SQLite a test gets a copy
of the template file. On PostgreSQL ``CREATE DATABASE … TEMPLATE`` plus a
``DROP DATABASE`` afterwards cost a forced checkpoint each (seconds under
load, and a thousand of them in a full run), so a database a test is done with
is emptied and reused instead:

- its connections are ended (a process the test started may still hold some);
- a database whose schema moved away from the template's (a test migrated it
  down, say) is dropped, never reused;
- every table is truncated (``RESTART IDENTITY``) and the rows the migrations
  seeded, saved in the template's ``dd_seed`` schema, are put back.

Database names carry the creating process id, so a session can drop what a
killed earlier session left behind (``sweep_orphans``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from common.db import upgrade_sync

SEED_SCHEMA = "dd_seed"


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


class PostgresServer:
    """Administrative statements on the test server, through its maintenance database."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self._connect = {
            "host": parsed.host or "127.0.0.1",
            "port": parsed.port or 5432,
            "user": parsed.username or "postgres",
            "password": parsed.password,
        }
        self.admin_database = parsed.database or "postgres"

    def url_of(self, name: str) -> str:
        """The SQLAlchemy URL of database ``name`` on this server."""
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    async def _run(self, database: str, *statements: str) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database=database, timeout=30, **self._connect)
        try:
            rows: list[asyncpg.Record] = []
            for sql in statements:
                rows = await conn.fetch(sql)
            return rows
        finally:
            await conn.close()

    def admin(self, *statements: str) -> list[asyncpg.Record]:
        """Run statements that cannot run in a transaction (CREATE/DROP DATABASE)."""
        return asyncio.run(self._run(self.admin_database, *statements))

    def inside(self, database: str, *statements: str) -> list[asyncpg.Record]:
        """Run statements in ``database``; the rows of the last one."""
        return asyncio.run(self._run(database, *statements))

    def end_connections(self, database: str) -> None:
        self.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )

    def drop(self, database: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def sweep_orphans(self, prefix: str = "dd_") -> int:
        """Drop databases named ``{prefix}…_{pid}_…`` whose creating process is gone."""
        names = [r["datname"] for r in self.admin("SELECT datname FROM pg_database")]
        dropped = 0
        for name in names:
            pid = _creator(name, prefix)
            if pid is not None and not _alive(pid):
                self.drop(name)
                dropped += 1
        return dropped


def _creator(name: str, prefix: str) -> int | None:
    """The process id in a test database's name (``dd_<label>_<pid>_<n>``), if it has one."""
    if not name.startswith(prefix):
        return None
    parts = name.split("_")
    return int(parts[2]) if len(parts) >= 4 and parts[2].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _table_list(rows: Iterable[asyncpg.Record]) -> list[str]:
    return sorted(str(r["table_name"]) for r in rows)


_TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
)


class DatabaseFactory:
    """Makes fresh, migrated databases of one kind (``sqlite``/``postgres``) for one schema."""

    def __init__(
        self,
        kind: str,
        script_location: Path,
        workdir: Path,
        label: str,
        server: PostgresServer | None = None,
    ) -> None:
        if kind == "postgres" and server is None:
            raise ValueError("a PostgreSQL factory needs its server")
        self.kind = kind
        self.script_location = script_location
        self.workdir = workdir
        self.label = label
        self.server = server
        self._template: str | None = None
        self._tables: list[str] = []
        self._seeded: list[str] = []
        self._version: list[str] = []
        self._free: list[str] = []
        self._made: list[str] = []
        self._count = 0

    def _name(self, what: str) -> str:
        self._count += 1
        return f"dd_{what}_{os.getpid()}_{self._count}"

    def _ensure_template(self) -> str:
        if self._template is not None:
            return self._template
        if self.kind == "sqlite":
            path = self.workdir / f"template-{self.label}.sqlite3"
            upgrade_sync(f"sqlite+aiosqlite:///{path}", self.script_location)
            self._template = str(path)
            return self._template
        assert self.server is not None
        name = self._name(f"tmpl{self.label}")
        self.server.admin(f'CREATE DATABASE "{name}"')
        upgrade_sync(self.server.url_of(name), self.script_location)
        self._tables = _table_list(self.server.inside(name, _TABLES))
        self._version = [
            str(r[0]) for r in self.server.inside(name, "SELECT * FROM alembic_version")
        ]
        self.server.inside(name, f"CREATE SCHEMA {SEED_SCHEMA}")
        for table in self._tables:
            if table == "alembic_version":
                continue
            rows = self.server.inside(name, f'SELECT count(*) AS n FROM "{table}"')
            if rows[0]["n"]:
                self.server.inside(
                    name, f'CREATE TABLE {SEED_SCHEMA}."{table}" AS TABLE public."{table}"'
                )
                self._seeded.append(table)
        self._template = name
        return name

    def new(self, directory: Path) -> str:
        """A URL of a database at the newest schema holding only what the migrations seed."""
        template = self._ensure_template()
        if self.kind == "sqlite":
            target = directory / f"{self.label}.sqlite3"
            # Private from creation, as the database helpers make every SQLite file.
            with open(template, "rb") as source, open(target, "xb", opener=_private) as copy:
                shutil.copyfileobj(source, copy)
            return f"sqlite+aiosqlite:///{target}"
        assert self.server is not None
        if self._free:
            return self.server.url_of(self._free.pop())
        name = self._name(self.label)
        self.server.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self._made.append(name)
        return self.server.url_of(name)

    def release(self, url: str) -> None:
        """The test is done with ``url``: empty it for the next test, or drop it if it changed."""
        if self.kind != "postgres":
            return
        assert self.server is not None
        name = make_url(url).database or ""
        if name not in self._made:
            return
        self.server.end_connections(name)
        try:
            tables = _table_list(self.server.inside(name, _TABLES))
            version = [str(r[0]) for r in self.server.inside(name, "SELECT * FROM alembic_version")]
            if tables != self._tables or version != self._version:
                raise LookupError("schema moved away from the template")
            emptied = ", ".join(f'public."{t}"' for t in tables if t != "alembic_version")
            self.server.inside(
                name,
                f"BEGIN; TRUNCATE {emptied} RESTART IDENTITY CASCADE; "
                + "".join(
                    f'INSERT INTO public."{t}" SELECT * FROM {SEED_SCHEMA}."{t}"; '
                    for t in self._seeded
                )
                + "COMMIT",
            )
        except (LookupError, asyncpg.PostgresError, OSError):
            self._made.remove(name)
            self.server.drop(name)
            return
        self._free.append(name)

    def close(self) -> None:
        """Drop every database this factory made, its template last."""
        if self.kind != "postgres":
            return
        assert self.server is not None
        for name in [*self._made, *([self._template] if self._template else [])]:
            self.server.drop(name)
        self._made.clear()
        self._free.clear()
