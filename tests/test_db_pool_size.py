"""``DATADESK_DB_POOL_SIZE`` and ``DATADESK_DB_MAX_OVERFLOW``: how many connections a process may hold."""

from __future__ import annotations

import pytest

from backend.settings import Settings
from common.db import MAX_OVERFLOW, POOL_SIZE, make_engine
from common.settings import SettingsError

# Pools open connections when first asked: no server is needed to see their size.
URL = "postgresql+asyncpg://datadesk@127.0.0.1:5432/datadesk"


async def test_the_pool_of_every_engine_is_as_large_as_the_operator_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATADESK_DB_POOL_SIZE", "3")
    monkeypatch.setenv("DATADESK_DB_MAX_OVERFLOW", "1")
    # The operator's limit wins over a caller's own default (the bot's smaller pools).
    for engine in (make_engine(URL), make_engine(URL, pool_size=8)):
        try:
            assert engine.pool.size() == 3  # type: ignore[attr-defined]
            assert engine.pool._max_overflow == 1  # type: ignore[attr-defined]
        finally:
            await engine.dispose()


async def test_without_the_settings_the_pool_keeps_its_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATADESK_DB_POOL_SIZE", raising=False)
    monkeypatch.delenv("DATADESK_DB_MAX_OVERFLOW", raising=False)
    engine = make_engine(URL)
    try:
        assert engine.pool.size() == POOL_SIZE  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == MAX_OVERFLOW  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("DB_POOL_SIZE", "many", "DATADESK_DB_POOL_SIZE: expected a whole number, got 'many'"),
        ("DB_POOL_SIZE", "0", "DATADESK_DB_POOL_SIZE: expected at least 1, got '0'"),
        ("DB_MAX_OVERFLOW", "-1", "DATADESK_DB_MAX_OVERFLOW: expected 0 or more, got '-1'"),
    ],
)
def test_a_bad_pool_size_stops_the_backend_at_start_naming_the_variable(
    name: str, value: str, said: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({f"DATADESK_{name}": value})
    assert str(raised.value) == said
