"""Which bot processes are running, so ``datadesk dialogs reload`` can signal them.

Convention: every bot process using a ``DATA_DIR`` writes its pid, one per
line, to ``DATA_DIR/bot.pid`` when it starts (``register_bot``) and removes it
when it stops (``unregister_bot``). It reloads its dialog files on SIGHUP,
keeping the last good version when the new files are broken.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

PID_FILE = "bot.pid"


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PID_FILE
    with (data_dir / f"{PID_FILE}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> list[int]:
    try:
        lines = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return []
    return [int(line) for line in lines if line.isdigit()]


def _write(path: Path, pids: list[int]) -> None:
    if pids:
        path.write_text("".join(f"{pid}\n" for pid in pids), encoding="ascii")
    else:
        path.unlink(missing_ok=True)


def register_bot(data_dir: Path, pid: int | None = None) -> None:
    """Record this (or ``pid``'s) bot process in ``DATA_DIR/bot.pid``."""
    pid = os.getpid() if pid is None else pid
    with _locked(data_dir) as path:
        pids = _read(path)
        if pid not in pids:
            _write(path, [*pids, pid])


def unregister_bot(data_dir: Path, pid: int | None = None) -> None:
    """Remove this (or ``pid``'s) bot process from ``DATA_DIR/bot.pid``."""
    pid = os.getpid() if pid is None else pid
    with _locked(data_dir) as path:
        _write(path, [p for p in _read(path) if p != pid])


def bot_pids(data_dir: Path) -> list[int]:
    """The pids recorded in ``DATA_DIR/bot.pid`` (some may have died without unregistering)."""
    with _locked(data_dir) as path:
        return _read(path)
