"""``datadesk run`` and ``datadesk worker`` as an operator starts them: up, serving, stopped cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import SECRET_KEY, SERVICE_TOKEN

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, database_url: str, port: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATADESK_DATA_DIR": str(tmp_path / "var"),
        "DATADESK_DATABASE_URL": database_url,
        "DATADESK_BOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        "DATADESK_SECRET_KEY": SECRET_KEY,
        "DATADESK_SERVICE_TOKEN": SERVICE_TOKEN,
        "DATADESK_HTTP_PORT": str(port),
    }


def _get(url: str) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  (loopback http)
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return int(response.status), response.read()


def test_datadesk_run_serves_the_api_with_a_worker_and_stops_on_sigterm(
    tmp_path: Path, backend_db_url: str
) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "datadesk.cli", "run"],
        cwd=ROOT,
        env=_env(tmp_path, backend_db_url, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.strip() == f"agent console: http://127.0.0.1:{port}/console/"
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = _get(f"http://127.0.0.1:{port}/api/v1/notifications?wait=0")
                break
            except OSError:
                # The console line is printed as the server starts; it may need a moment.
                assert time.monotonic() < deadline, "the backend never answered"
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.1)
        assert status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_worker_with_once_drains_an_empty_queue_and_exits_zero(
    tmp_path: Path, backend_db_url: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "datadesk.cli", "worker", "--once", "--concurrency", "2"],
        cwd=ROOT,
        env=_env(tmp_path, backend_db_url, _free_port()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_datadesk_run_chat_stops_everything_when_the_terminal_chat_ends(
    tmp_path: Path, backend_db_url: str
) -> None:
    port = _free_port()
    result = subprocess.run(
        [sys.executable, "-m", "datadesk.cli", "run", "--chat"],
        cwd=ROOT,
        env=_env(tmp_path, backend_db_url, port),
        input="/quit\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"agent console: http://127.0.0.1:{port}/console/\n")


def test_a_worker_for_a_jurisdiction_without_rules_says_so_and_exits_one(
    tmp_path: Path, backend_db_url: str
) -> None:
    env = _env(tmp_path, backend_db_url, _free_port()) | {"DATADESK_JURISDICTION": "XX"}
    result = subprocess.run(
        [sys.executable, "-m", "datadesk.cli", "worker", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "datadesk: retention.yaml: no rules for jurisdiction 'XX' (have: CN, EU-LV)"
    )
