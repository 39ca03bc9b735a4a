"""Folders and files that hold keys or personal data: private to their owner from the start.

``DATA_DIR`` holds the keys, the service token and the SQLite databases, so:

- ``ensure_private_dir`` makes a folder ``0700``; one that exists with wider
  modes is tightened when this process's user owns it, otherwise a warning
  names it (the operator has to fix it; nothing here can).
- ``read_or_create_secret`` returns the secret kept in a file, writing a new
  one there first if there is none. The file is ``0600`` from the moment it
  exists, never ``chmod``-ed afterwards, and processes starting at once agree
  on one secret: each writes its candidate to a private temporary file (created
  ``O_CREAT|O_EXCL`` with mode ``0600``) and hard-links it to the final name;
  exactly one link succeeds, the others read the winner's, complete, file.
- ``read_secret`` reads such a file without creating it.
- ``ensure_private_file`` creates an empty ``0600`` file (a SQLite database
  before SQLite opens it, so its ``-wal`` and ``-shm``, which SQLite creates
  with the database file's permissions, are ``0600`` too) and tightens an
  existing one this user owns; ``tighten_private_file`` only does the latter.

An empty secret file is a ``ConfigError`` naming it. Nothing here logs a
secret; log lines name paths and modes only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from common.errors import ConfigError

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def _tighten(path: Path, wanted: int, what: str) -> None:
    """Narrow ``path`` to ``wanted`` if group or others have any access; warn if we can't."""
    info = path.stat()
    current = stat.S_IMODE(info.st_mode)
    if not current & 0o077:
        return
    if info.st_uid != os.getuid():
        log.warning(
            "%s %s is %04o and owned by another user; make it %04o (only its owner can)",
            what,
            path,
            current,
            wanted,
        )
        return
    path.chmod(wanted)
    log.warning("%s %s was %04o; tightened to %04o", what, path, current, wanted)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as ``0700``, or tighten it if it is wider."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE, "folder")


def ensure_private_file(path: Path) -> None:
    """Create ``path`` empty with mode ``0600`` if it is missing; tighten it if it is wider."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except FileExistsError:
        _tighten(path, FILE_MODE, "file")


def tighten_private_file(path: Path) -> None:
    """Narrow an existing file to ``0600`` if it is wider; a missing one is left missing."""
    with contextlib.suppress(FileNotFoundError):
        _tighten(path, FILE_MODE, "file")


def read_secret(path: Path) -> str | None:
    """The secret kept in ``path`` (surrounding whitespace removed); None if there is no file."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not text:
        raise ConfigError(
            str(path), None, "is empty; remove it to have a new secret generated, or restore it"
        )
    _tighten(path, FILE_MODE, "secret file")
    return text


def read_or_create_secret(path: Path, make: Callable[[], str] | None = None) -> str:
    """The secret in ``path``, created first (``make()``, default 48 random bytes) if missing.

    ``path``'s folder must exist (``ensure_private_dir``). Safe when several
    processes call it at once for the same path: all of them get the same secret.
    """
    existing = read_secret(path)
    if existing is not None:
        return existing
    candidate = (make or _random_secret)()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(candidate + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # When another process linked its candidate first, everyone uses that one.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    winner = read_secret(path)
    if winner is None:
        raise ConfigError(str(path), None, "was removed while it was being created; start again")
    return winner


def _random_secret() -> str:
    return secrets.token_urlsafe(48)
