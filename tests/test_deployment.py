"""docs/deployment.md and deploy/: checked where a machine can check them.

- every ``DATADESK_*`` setting the code reads is listed in docs/deployment.md
  and docs/operators.md, and neither lists one the code does not read;
- the example environment files name only settings their processes read;
- the systemd units pass ``systemd-analyze verify`` and start real commands;
- the nginx example passes ``nginx -t``;
- the PostgreSQL script of docs/deployment.md, run on a real server, makes
  roles that can migrate (owners), serve (applications) and nothing more;
- every command but the bot's runs in webhook mode without ``WEBHOOK_URL``.
"""

from __future__ import annotations

import ast
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import POSTGRES_URL, find_tool
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.settings import VARIABLES as BOT_VARIABLES
from common.settings import PREFIX, REPO_ROOT
from datadesk.cli import build_parser, main

DOCS = REPO_ROOT / "docs"
DEPLOY = REPO_ROOT / "deploy"
SOURCES = ("bot", "backend", "common", "datadesk")
NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
WORKTREE_BIN = Path(sys.executable).parent


def _program(name: str) -> str:
    """The full path of a program the ``needs_tool`` marker made sure of."""
    found = find_tool(name)
    assert found is not None, name
    return found


# --- the settings list ---------------------------------------------------------------


def _setting_name(node: ast.Call) -> str | None:
    """The setting a call reads: ``get("X")``, ``lookup(env, "X")``, ``env.get(PREFIX + "X")``."""
    func = node.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    for arg in node.args:
        if (
            called in ("get", "lookup")
            and isinstance(arg, ast.Constant)
            and isinstance(arg.value, str)
            and NAME.match(arg.value)
            and (called == "lookup" or isinstance(func, ast.Name))
        ):
            return arg.value
        if (
            isinstance(arg, ast.BinOp)
            and isinstance(arg.left, ast.Name)
            and arg.left.id == "PREFIX"
            and isinstance(arg.right, ast.Constant)
            and isinstance(arg.right.value, str)
        ):
            return arg.right.value
    return None


def _full_name(node: ast.AST) -> str | None:
    """A setting named in full: ``"DATADESK_X"`` or ``f"{PREFIX}X"``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        full = node.value
        return full.removeprefix(PREFIX) if full.startswith(PREFIX) and NAME.match(full) else None
    if isinstance(node, ast.JoinedStr) and len(node.values) == 2:
        head, tail = node.values
        if (
            isinstance(head, ast.FormattedValue)
            and isinstance(head.value, ast.Name)
            and head.value.id == "PREFIX"
            and isinstance(tail, ast.Constant)
            and isinstance(tail.value, str)
            and NAME.match(tail.value)
        ):
            return tail.value
    return None


def settings_read_in(paths: list[Path]) -> dict[str, str]:
    """Every setting (without the prefix) these modules read, and one ``file:line`` reading it.

    A setting is read through ``common.settings.lookup`` (each side's ``get``
    helper), or named in full (``"DATADESK_AUDIT_KEY"``, ``f"{PREFIX}X"``,
    ``os.environ["DATADESK_…"]``).
    """
    found: dict[str, str] = {}
    for path in paths:
        where = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = _setting_name(node) if isinstance(node, ast.Call) else _full_name(node)
            if name and name not in found:
                found[name] = f"{where}:{getattr(node, 'lineno', '?')}"
    return found


def settings_read_by_code() -> dict[str, str]:
    """Every setting the code reads; the bot's ``VARIABLES`` are its whole list."""
    paths = [path for top in SOURCES for path in sorted((REPO_ROOT / top).rglob("*.py"))]
    found = settings_read_in(paths)
    for name in BOT_VARIABLES:
        found.setdefault(name, "bot/settings.py (VARIABLES)")
    return found


def settings_listed_in(doc: Path) -> dict[str, int]:
    """The names in the first column of the doc's settings table (``| name | …``), with lines."""
    listed: dict[str, int] = {}
    in_table = False
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if "|" in line else []
        if not in_table:
            in_table = bool(cells) and cells[0] == "name"
            continue
        if not cells:
            break
        for name in re.findall(r"`([^`]+)`", cells[0]):
            name = name.removeprefix(PREFIX)
            if NAME.match(name):
                listed.setdefault(name, number)
    return listed


def test_the_settings_list_finds_what_the_code_reads() -> None:
    read = settings_read_by_code()
    # One from each way of reading: the backend's get(), the bot's list, a name in full.
    assert {"SMTP_ALLOW_PLAIN_LOGIN", "WEBHOOK_PORT", "AUDIT_SIGNING_KEY"} <= read.keys()
    assert read["SMTP_ALLOW_PLAIN_LOGIN"].startswith("backend/settings.py:")
    assert "AUDIT_KEY" in settings_listed_in(DOCS / "operators.md")


def test_each_way_of_reading_a_setting_is_found(tmp_path: Path) -> None:
    module = tmp_path / "reads.py"
    module.write_text(
        "import os\n"
        "from common.settings import PREFIX, lookup\n"
        "def from_env(env):\n"
        "    def get(name):\n"
        "        return lookup(env, name)\n"
        "    a = get('METRICS_PORT')\n"
        "    b = lookup(env, 'LOG_FORMAT')\n"
        "    c = os.environ.get('DATADESK_HEALTH_PATH')\n"
        "    d = env.get(PREFIX + 'PLUS_NAME')\n"
        "    e = env.get(f'{PREFIX}F_NAME')\n"
        "    headers = env.get('X-Not-A-Setting'), env.get('NOT_OURS')\n"
        "    raise ValueError(f'{PREFIX}MESSAGE_ONLY is not set')\n",
        encoding="utf-8",
    )
    found = settings_read_in([module])
    assert sorted(found) == ["F_NAME", "HEALTH_PATH", "LOG_FORMAT", "METRICS_PORT", "PLUS_NAME"]
    assert found["LOG_FORMAT"] == f"{module}:7"


def test_every_setting_the_code_reads_is_in_both_docs_and_they_list_no_other() -> None:
    read = settings_read_by_code()
    problems = []
    for doc in (DOCS / "deployment.md", DOCS / "operators.md"):
        listed = settings_listed_in(doc)
        shown = doc.relative_to(REPO_ROOT)
        for name in sorted(read.keys() - listed.keys()):
            problems.append(
                f"{shown}: missing {PREFIX}{name} (read at {read[name]}); "
                "add a row to its settings table"
            )
        for name in sorted(listed.keys() - read.keys()):
            problems.append(f"{shown}:{listed[name]}: lists {PREFIX}{name}, which no code reads")
    assert not problems, "\n".join(problems)


def _env_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            names.append(line.split("=", 1)[0].strip().removeprefix(PREFIX))
    return names


def test_the_bot_s_environment_file_holds_none_of_the_backend_s_settings() -> None:
    names = _env_names(DEPLOY / "bot.env.example")
    assert "WEBHOOK_URL" in names
    assert [n for n in names if n not in BOT_VARIABLES] == []


def test_the_backend_s_environment_file_names_only_settings_it_reads() -> None:
    read = settings_read_by_code()
    names = _env_names(DEPLOY / "backend.env.example")
    bot_only = set(BOT_VARIABLES) - {"DATA_DIR", "HTTP_HOST", "HTTP_PORT", "SERVICE_TOKEN"}
    bot_only -= {"LOG_LEVEL"}
    assert [n for n in names if n not in read or n in bot_only] == []
    # The units set these; in the file they would override the unit.
    for env_file in ("backend.env.example", "bot.env.example"):
        assert {"DATA_DIR", "HTTP_PORT", "WEBHOOK_PORT"}.isdisjoint(_env_names(DEPLOY / env_file))


# --- systemd ---------------------------------------------------------------------------

UNITS = DEPLOY / "systemd"
INSTANCES = {
    "datadesk-backend@.service": "8080",
    "datadesk-worker@.service": "1",
    "datadesk-bot@.service": "8443",
}


def _units_here(folder: Path) -> list[Path]:
    """The units, their datadesk pointed at this checkout's, templates as one instance each."""
    made = []
    for unit in sorted(UNITS.iterdir()):
        text = unit.read_text(encoding="utf-8").replace(
            "/opt/datadesk/.venv/bin/datadesk", str(WORKTREE_BIN / "datadesk")
        )
        text = text.replace("WorkingDirectory=/opt/datadesk", f"WorkingDirectory={REPO_ROOT}")
        name = (
            unit.name.replace("@.", f"@{INSTANCES[unit.name]}.") if "@." in unit.name else unit.name
        )
        (folder / name).write_text(text, encoding="utf-8")
        made.append(folder / name)
    return made


def test_there_is_a_unit_for_each_process_and_a_timer_for_the_purge() -> None:
    assert {u.name for u in UNITS.iterdir()} == {
        *INSTANCES,
        "datadesk-purge.service",
        "datadesk-purge.timer",
    }


@pytest.mark.needs_tool("systemd-analyze")
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = _units_here(tmp_path)
    done = subprocess.run(  # noqa: S603 - a fixed program on our own files
        [_program("systemd-analyze"), "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ours = [line for line in done.stderr.splitlines() if "datadesk" in line]
    assert (done.returncode, ours) == (0, [])


def test_each_unit_starts_a_datadesk_command_that_exists() -> None:
    parser = build_parser()
    started = {}
    for unit in sorted(UNITS.glob("*.service")):
        for line in unit.read_text(encoding="utf-8").splitlines():
            if line.startswith("ExecStart="):
                program, *argv = shlex.split(line.removeprefix("ExecStart="))
                assert program == "/opt/datadesk/.venv/bin/datadesk", unit.name
                parser.parse_args(argv)  # exits (fails the test) on an unknown command
                started[unit.name] = argv[0]
    assert started == {
        "datadesk-backend@.service": "backend",
        "datadesk-bot@.service": "bot",
        "datadesk-purge.service": "purge",
        "datadesk-worker@.service": "worker",
    }


# --- nginx -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _self_signed(folder: Path, name: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.bank.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (folder / f"{name}.fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.mark.needs_tool("nginx")
def test_the_nginx_example_passes_nginx_t(tmp_path: Path) -> None:
    # nginx -t binds every listen address: the example's public ports and the
    # proxy's private address become free loopback ports; nothing else changes.
    tls = tmp_path / "tls"
    tls.mkdir()
    for name in ("console", "bot"):
        _self_signed(tls, name)
    site = (DEPLOY / "nginx" / "datadesk.conf").read_text(encoding="utf-8")
    assert "/etc/datadesk/tls/" in site
    site = site.replace("/etc/datadesk/tls/", f"{tls}/")
    site, listens = re.subn(
        r"listen [\d.:]+( ssl)?;", lambda m: f"listen 127.0.0.1:{_free_port()}{m[1] or ''};", site
    )
    assert listens == 4
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n    access_log off;\n    include {tmp_path}/site.conf;\n}}\n",
        encoding="utf-8",
    )
    done = subprocess.run(  # noqa: S603 - a fixed program on our own files
        [_program("nginx"), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_the_nginx_example_forwards_the_client_and_the_console_s_websocket() -> None:
    site = (DEPLOY / "nginx" / "datadesk.conf").read_text(encoding="utf-8")
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in site
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site
    assert "proxy_set_header Upgrade $http_upgrade;" in site
    # The webhook's path and port are WEBHOOK_URL's in bot.env.example.
    [url] = [
        line.split("=", 1)[1]
        for line in (DEPLOY / "bot.env.example").read_text(encoding="utf-8").splitlines()
        if line.startswith("DATADESK_WEBHOOK_URL=")
    ]
    assert url == "https://bot.bank.example:8443/telegram/hook"
    assert "location = /telegram/hook {" in site
    assert "listen 8443 ssl;" in site


# --- PostgreSQL roles -------------------------------------------------------------------


def _roles_script(prefix: str) -> str:
    """docs/deployment.md's SQL, with every role and database renamed ``{prefix}…``."""
    text = (DOCS / "deployment.md").read_text(encoding="utf-8")
    [script] = re.findall(r"```sql\n(.*?)```", text, flags=re.S)
    return re.sub(r"\bdatadesk((?:_bot)?(?:_owner|_app)?)\b", prefix + r"\1", script)


@pytest.fixture
def documented_roles(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The roles and databases of docs/deployment.md on the test server; dropped afterwards."""
    from sqlalchemy.engine import make_url

    prefix = f"ddtest_{secrets.token_hex(4)}"
    admin = make_url(POSTGRES_URL).set(drivername="postgresql")
    admin_dsn = admin.render_as_string(hide_password=False)
    script = tmp_path / "roles.sql"
    script.write_text(_roles_script(prefix), encoding="utf-8")

    def psql(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - a fixed program on our own files
            [_program("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin_dsn, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def url(role: str, database: str) -> str:
        found = make_url(POSTGRES_URL).set(
            username=f"{prefix}{role}", password="from-your-secret-store", database=database
        )
        return found.render_as_string(hide_password=False)

    try:
        made = psql("-f", str(script))
        assert made.returncode == 0, made.stderr
        yield {
            "prefix": prefix,
            "admin": admin_dsn,
            "owner": url("_owner", prefix),
            "app": url("_app", prefix),
            "bot_owner": url("_bot_owner", f"{prefix}_bot"),
            "bot_app": url("_bot_app", f"{prefix}_bot"),
        }
    finally:
        drops = [f"DROP DATABASE IF EXISTS {prefix}{db} WITH (FORCE);" for db in ("", "_bot")]
        drops += [
            f"DROP ROLE IF EXISTS {prefix}{role};"
            for role in ("_owner", "_app", "_bot_owner", "_bot_app")
        ]
        for statement in drops:
            psql("-c", statement)


def _privileges(admin_dsn: str, database: str, role: str) -> tuple[bool, bool, list[str], int]:
    """Can ``role`` create in public; does it reach rows of every table; which it cannot; tables."""
    query = (
        f"SELECT has_schema_privilege('{role}', 'public', 'CREATE'), "
        f"has_database_privilege('{role}', current_database(), 'CONNECT'), "
        "coalesce(string_agg(tablename, ' ') FILTER (WHERE NOT has_table_privilege("
        f"'{role}', quote_ident(tablename), 'SELECT, INSERT, UPDATE, DELETE')), ''), count(*) "
        "FROM pg_tables WHERE schemaname = 'public'"
    )
    from sqlalchemy.engine import make_url

    dsn = make_url(admin_dsn).set(database=database).render_as_string(hide_password=False)
    done = subprocess.run(  # noqa: S603 - a fixed program on our own files
        [_program("psql"), "-X", "-At", "-F", "|", "-d", dsn, "-c", query],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    create, connect, missing, tables = done.stdout.strip().split("|")
    return create == "t", connect == "t", missing.split(), int(tables)


@pytest.mark.postgres_only
@pytest.mark.needs_tool("psql")
def test_the_documented_roles_migrate_serve_and_cannot_change_the_schema(
    documented_roles: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = documented_roles["prefix"]
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATADESK_DATA_DIR", str(tmp_path / "var"))

    def with_asyncpg(url: str) -> str:
        return url.replace("postgresql://", "postgresql+asyncpg://", 1)

    # Migrations as the owners.
    monkeypatch.setenv("DATADESK_DATABASE_URL", with_asyncpg(documented_roles["owner"]))
    monkeypatch.setenv("DATADESK_BOT_DATABASE_URL", with_asyncpg(documented_roles["bot_owner"]))
    assert main(["db", "upgrade"]) == 0

    # The backend's commands as the application role.
    monkeypatch.setenv("DATADESK_DATABASE_URL", with_asyncpg(documented_roles["app"]))
    assert main(["crm", "seed-demo"]) == 0
    assert main(["purge"]) == 0
    assert main(["keys", "status"]) == 0
    assert main(["audit", "verify"]) == 0

    admin = documented_roles["admin"]
    for database, role in ((prefix, f"{prefix}_app"), (f"{prefix}_bot", f"{prefix}_bot_app")):
        create, connect, missing, tables = _privileges(admin, database, role)
        assert tables > 0, database
        assert (create, connect, missing) == (False, True, []), (database, role)
    # Each application role reaches its own database only.
    assert _privileges(admin, prefix, f"{prefix}_bot_app")[1] is False
    assert _privileges(admin, f"{prefix}_bot", f"{prefix}_app")[1] is False


# --- webhook mode without a URL ---------------------------------------------------------


def test_db_upgrade_runs_in_webhook_mode_without_a_webhook_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATADESK_TELEGRAM_MODE", "webhook")
    monkeypatch.setenv("DATADESK_TELEGRAM_TOKEN", "123:abc")
    monkeypatch.delenv("DATADESK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("DATADESK_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATADESK_BOT_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATADESK_DATA_DIR", str(tmp_path / "var"))

    assert main(["db", "upgrade"]) == 0
    assert main(["bot"]) == 2

    err = capsys.readouterr().err
    assert err.count("WEBHOOK_URL") == 1
    assert (
        "datadesk bot: not started: DATADESK_TELEGRAM_MODE=webhook needs DATADESK_WEBHOOK_URL"
        in err
    )
    assert (tmp_path / "var" / "backend.sqlite3").exists()


def test_a_port_held_by_another_process_names_the_settings_that_move_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATADESK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DATADESK_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATADESK_BOT_DATABASE_URL", raising=False)
    assert main(["db", "upgrade"]) == 0
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        monkeypatch.setenv("DATADESK_HTTP_HOST", "127.0.0.1")
        monkeypatch.setenv("DATADESK_HTTP_PORT", str(holder.getsockname()[1]))

        assert main(["backend"]) == 2

    err = capsys.readouterr().err
    assert "another process holds the port" in err
    assert "DATADESK_HTTP_PORT (backend and console) or DATADESK_WEBHOOK_PORT" in err
