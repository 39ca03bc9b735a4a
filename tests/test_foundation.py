"""The foundation: settings, the API's guard rails, migrations on every engine."""

from __future__ import annotations

import pytest
from conftest import LiveBackend

from backend.settings import Settings
from common.logs import redact
from common.settings import SettingsError


def test_settings_default_to_sqlite_under_data_dir(tmp_path):
    settings = Settings.from_env({"DATADESK_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'backend.sqlite3'}"
    assert settings.jurisdiction == "EU-LV"


def test_a_bad_setting_names_the_variable():
    with pytest.raises(SettingsError, match="DATADESK_HTTP_PORT: expected a whole number"):
        Settings.from_env({"DATADESK_HTTP_PORT": "eighty"})
    with pytest.raises(SettingsError, match="DATADESK_REVIEW_KINDS: unknown request kind"):
        Settings.from_env({"DATADESK_REVIEW_KINDS": "erasure,teleport"})


def test_log_lines_lose_phones_emails_and_codes():
    line = redact("sent 482913 to +371 2000 0001 and anna@example.lv card 4111 1111 1111 1111")
    assert "482913" not in line
    assert "2000 0001" not in line
    assert "anna@example.lv" not in line
    assert "4111" not in line


async def test_the_api_refuses_calls_without_the_service_token(backend: LiveBackend):
    async with backend.client.get(backend.api("/healthz")) as resp:
        assert resp.status == 200
    import aiohttp

    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(backend.api("/api/v1/anything")) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "unauthorized"
        headers = {"Authorization": "Bearer wrong"}
        async with anonymous.get(backend.api("/api/v1/anything"), headers=headers) as resp:
            assert resp.status == 401
