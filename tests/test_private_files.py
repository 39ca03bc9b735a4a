"""Keys, tokens and databases are private to their owner from the moment they exist."""

from __future__ import annotations

import logging
import multiprocessing
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import ConfigError
from common.private_files import (
    ensure_private_dir,
    ensure_private_file,
    read_or_create_secret,
    read_secret,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave new files world-readable, as a careless service manager might."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_folder_is_made_private_with_its_parents(tmp_path: Path, open_umask: None) -> None:
    ensure_private_dir(tmp_path / "a" / "var")

    assert mode(tmp_path / "a" / "var") == 0o700


def test_a_folder_open_to_others_is_tightened_and_the_operator_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "var"
    folder.mkdir()
    folder.chmod(0o755)

    with caplog.at_level(logging.WARNING):
        ensure_private_dir(folder)

    assert mode(folder) == 0o700
    assert f"folder {folder} was 0755; tightened to 0700" in caplog.text


def test_a_folder_someone_else_owns_is_left_as_it_is_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "var"
    folder.mkdir()
    folder.chmod(0o755)
    # Seen from another account, this folder belongs to someone else.
    monkeypatch.setattr(os, "getuid", lambda: folder.stat().st_uid + 1)

    with caplog.at_level(logging.WARNING):
        ensure_private_dir(folder)

    assert mode(folder) == 0o755
    assert f"folder {folder} is 0755 and owned by another user; make it 0700" in caplog.text


def test_a_secret_file_is_0600_from_its_creation_without_any_chmod(
    tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("chmod called: the file existed with other modes first")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)

    secret = read_or_create_secret(tmp_path / "bot.key")

    assert mode(tmp_path / "bot.key") == 0o600
    assert len(secret) >= 64
    assert read_or_create_secret(tmp_path / "bot.key") == secret
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bot.key"]


def test_a_secret_already_on_disk_is_read_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "service-token").write_text("kept-token\n")
    (tmp_path / "service-token").chmod(0o600)

    assert read_or_create_secret(tmp_path / "service-token") == "kept-token"
    assert read_secret(tmp_path / "service-token") == "kept-token"
    assert read_secret(tmp_path / "missing") is None


def test_an_empty_secret_file_is_an_error_that_names_it(tmp_path: Path) -> None:
    (tmp_path / "bot.key").write_text("  \n")

    with pytest.raises(ConfigError, match=r"bot\.key: is empty"):
        read_or_create_secret(tmp_path / "bot.key")


def _race(
    path: str, start: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue[str]
) -> None:
    start.wait()
    out.put(read_or_create_secret(Path(path)))


def test_processes_starting_at_once_all_end_up_with_one_secret(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    racers = 6
    start = context.Barrier(racers)
    out: multiprocessing.Queue[str] = context.Queue()
    processes = [
        context.Process(target=_race, args=(str(tmp_path / "bot.key"), start, out))
        for _ in range(racers)
    ]
    for process in processes:
        process.start()
    secrets = [out.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert len(set(secrets)) == 1
    assert (tmp_path / "bot.key").read_text().strip() == secrets[0]
    assert mode(tmp_path / "bot.key") == 0o600
    # No candidate that lost the race is left lying around.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bot.key"]


def test_a_database_file_is_created_private_and_an_open_one_tightened(
    tmp_path: Path, open_umask: None
) -> None:
    ensure_private_file(tmp_path / "new.sqlite3")
    (tmp_path / "old.sqlite3").write_bytes(b"SQLite format 3\x00")
    (tmp_path / "old.sqlite3").chmod(0o644)

    ensure_private_file(tmp_path / "old.sqlite3")

    assert mode(tmp_path / "new.sqlite3") == 0o600
    assert (tmp_path / "new.sqlite3").read_bytes() == b""
    assert mode(tmp_path / "old.sqlite3") == 0o600
    assert (tmp_path / "old.sqlite3").read_bytes() == b"SQLite format 3\x00"
