"""``datadesk`` as an operator types it: readable help, one-line errors, no tracebacks.

Each test runs the real command in a process of its own, as a shell would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import SECRET_KEY, SERVICE_TOKEN

from datadesk.cli import GROUPS

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "datadesk.cli"]


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``datadesk ARGS`` as a shell would (our own interpreter and module)."""
    return subprocess.run([*CLI, *args], cwd=ROOT, text=True, check=False, **kwargs)  # type: ignore[call-overload]  # noqa: S603


def _env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATADESK_DATA_DIR": str(tmp_path / "var"),
        "DATADESK_DATABASE_URL": database_url,
        "DATADESK_SECRET_KEY": SECRET_KEY,
        "DATADESK_SERVICE_TOKEN": SERVICE_TOKEN,
        **extra,
    }


def test_help_names_each_group_by_what_it_is_for_in_plain_text() -> None:
    done = _run(["--help"], capture_output=True)
    assert done.returncode == 0
    assert "``" not in done.stdout
    listed = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("    ")}
    for group in ("db", "crm", "dialogs", "locales", "agents", "audit"):
        assert GROUPS[group] in listed[group]
        assert f"{group} commands" not in listed[group]


def test_a_port_already_in_use_is_one_line_naming_the_setting(
    tmp_path: Path, backend_db_url: str
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = _env(tmp_path, backend_db_url, DATADESK_HTTP_PORT=str(port))
        done = _run(["backend"], env=env, capture_output=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("datadesk: cannot listen:")
    assert str(port) in last
    assert "DATADESK_HTTP_PORT" in last


def test_an_export_into_a_closed_pipe_ends_quietly(tmp_path: Path, backend_db_url: str) -> None:
    env = _env(tmp_path, backend_db_url)
    assert _run(["crm", "seed-demo"], env=env, capture_output=True, timeout=120).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte, like `| head` after its lines
    try:
        done = _run(
            ["crm", "export", "C-1001"],
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr
    assert done.returncode == 141
