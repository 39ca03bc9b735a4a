"""The bot's settings: only what a channel needs, read from only the bot's variables."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from backend.settings import Settings
from bot.settings import VARIABLES, BotSettings
from common.settings import PREFIX, REPO_ROOT, SettingsError
from datadesk.cli import main
from datadesk.deployment import Deployment

# What only the backend may know, each set to a value that must not reach the bot.
BACKEND_SECRETS = {
    "DATADESK_SECRET_KEY": "sentinel-secret-key",
    "DATADESK_SMTP_PASSWORD": "sentinel-smtp-password",
    "DATADESK_SMTP_USER": "sentinel-smtp-user",
    "DATADESK_SMTP_HOST": "sentinel-smtp-host",
    "DATADESK_CRM": "http",
    "DATADESK_CRM_URL": "http://sentinel-crm",
    "DATADESK_CRM_TOKEN": "sentinel-crm-token",
    "DATADESK_SMS_GATEWAY": "http",
    "DATADESK_SMS_GATEWAY_URL": "http://sentinel-sms",
    "DATADESK_SMS_GATEWAY_TOKEN": "sentinel-sms-token",
    "DATADESK_DATABASE_URL": "postgresql+asyncpg://sentinel@db/backend",
}


class Recorded(Mapping[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self.values[name]

    def get(self, name: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(name)
        return self.values.get(name, default)

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the bot walked the whole environment instead of naming what it reads")

    def __len__(self) -> int:
        return len(self.values)


def test_the_bot_looks_up_only_its_own_variables_and_none_of_the_backends_secrets() -> None:
    env = Recorded(
        {
            **BACKEND_SECRETS,
            "DATADESK_TELEGRAM_TOKEN": "123:abc",
            "DATADESK_SERVICE_TOKEN": "shared-service-token",
        }
    )

    settings = BotSettings.from_env(env)

    assert env.asked <= {PREFIX + name for name in VARIABLES}
    assert not env.asked & set(BACKEND_SECRETS)
    held = repr(dataclasses.astuple(settings))
    assert "sentinel" not in held
    assert (settings.telegram_token, settings.service_token) == ("123:abc", "shared-service-token")


def test_the_bot_settings_have_no_place_for_the_backends_secrets() -> None:
    fields = {f.name for f in dataclasses.fields(BotSettings)}

    backend_only = {f.name for f in dataclasses.fields(Settings)} - fields
    assert {"secret_key", "smtp_password", "crm_token", "sms_gateway_token"} <= backend_only
    assert not any(name.startswith(("smtp", "crm", "sms")) for name in fields)
    assert "secret_key" not in fields


def test_the_bot_defaults_to_its_database_in_data_dir_and_the_local_backend(tmp_path: Path) -> None:
    settings = BotSettings.from_env(
        {"DATADESK_DATA_DIR": str(tmp_path), "DATADESK_HTTP_HOST": "10.0.0.5"}
    )

    assert settings.bot_database_url == f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    assert settings.backend_url == "http://10.0.0.5:8080"
    assert settings.bot_secret_key is None
    assert settings.telegram_mode == "polling"


def test_the_printed_settings_hold_no_token_or_key() -> None:
    settings = BotSettings.from_env(
        {
            "DATADESK_TELEGRAM_TOKEN": "123:telegram-token",
            "DATADESK_SERVICE_TOKEN": "the-service-token",
            "DATADESK_BOT_SECRET_KEY": "the-bot-secret-key-long-enough",
            "DATADESK_WEBHOOK_SECRET": "the-webhook-secret",
        }
    )

    shown = repr(settings)
    for secret in ("telegram-token", "the-service-token", "the-bot-secret", "the-webhook-secret"):
        assert secret not in shown


def test_a_bot_key_too_short_to_be_a_key_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="DATADESK_BOT_SECRET_KEY: use at least 16"):
        BotSettings.from_env({"DATADESK_BOT_SECRET_KEY": "hunter2"})


def test_only_a_running_telegram_channel_needs_a_webhook_url() -> None:
    env = {"DATADESK_TELEGRAM_MODE": "webhook", "DATADESK_TELEGRAM_TOKEN": "123:abc"}

    both = Deployment.from_env(env)

    assert both.bot.telegram_mode == "webhook"
    with pytest.raises(SettingsError, match="TELEGRAM_MODE=webhook needs DATADESK_WEBHOOK_URL"):
        both.bot.check_channel()
    with pytest.raises(SettingsError, match="DATADESK_TELEGRAM_TOKEN is not set"):
        BotSettings().check_channel()
    assert BotSettings(telegram_token="123:abc").check_channel() == "123:abc"


def test_the_commands_run_in_webhook_mode_without_a_url_and_the_bot_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("DATADESK_TELEGRAM_MODE", "webhook")
    monkeypatch.setenv("DATADESK_TELEGRAM_TOKEN", "123:abc")
    monkeypatch.setenv("DATADESK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DATADESK_SERVICE_TOKEN", "t")

    assert main(["dialogs", "check"]) == 0
    assert main(["bot"]) == 2
    assert main(["run"]) == 2

    err = capsys.readouterr().err
    assert "datadesk bot: not started: DATADESK_TELEGRAM_MODE=webhook needs" in err
    assert "datadesk: DATADESK_TELEGRAM_MODE=webhook needs DATADESK_WEBHOOK_URL" in err
    # Refused before anything was made: no data folder, no key, no database.
    assert not (tmp_path / "var").exists()


def test_the_service_token_comes_from_the_environment_first(tmp_path: Path) -> None:
    (tmp_path / "service-token").write_text("from-the-file\n")
    settings = BotSettings(data_dir=tmp_path, service_token="from-the-environment")

    assert settings.with_service_token().service_token == "from-the-environment"


def test_without_one_the_bot_reads_the_token_the_backend_keeps_in_data_dir(tmp_path: Path) -> None:
    backend = Settings(data_dir=tmp_path / "var").with_service_token()
    bot = BotSettings(data_dir=tmp_path / "var").with_service_token()

    assert bot.service_token == backend.service_token
    assert (tmp_path / "var" / "service-token").stat().st_mode & 0o777 == 0o600


def test_the_bot_never_makes_up_a_service_token_the_backend_would_refuse(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"DATADESK_SERVICE_TOKEN is not set and .*service-token"
    ):
        BotSettings(data_dir=tmp_path / "var").with_service_token()

    assert not (tmp_path / "var").exists()


def test_no_bot_module_but_its_settings_reads_the_environment() -> None:
    # The terminal chat reads LANG/LC_ALL for the customer's language, nothing of DATADESK_*.
    allowed = {"bot/settings.py", "bot/terminal.py"}
    readers = set()
    for path in sorted((REPO_ROOT / "bot").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            named = (isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}) or (
                isinstance(node, ast.Name) and node.id in {"environ", "getenv"}
            )
            if named:
                readers.add(path.relative_to(REPO_ROOT).as_posix())

    assert readers <= allowed
    assert "bot/settings.py" in readers


def test_the_telegram_rate_limit_is_thirty_a_second_unless_set_and_zero_turns_it_off() -> None:
    assert BotSettings.from_env({}).telegram_rate_limit == 30
    assert BotSettings.from_env({"DATADESK_TELEGRAM_RATE_LIMIT": "0"}).telegram_rate_limit == 0
    assert (
        BotSettings.from_env({"DATADESK_TELEGRAM_RATE_LIMIT": "12.5"}).telegram_rate_limit == 12.5
    )


@pytest.mark.parametrize("raw", ["fast", "-1", "nan", "inf"])
def test_a_telegram_rate_limit_that_is_not_calls_per_second_stops_the_start_naming_it(
    raw: str,
) -> None:
    with pytest.raises(
        SettingsError, match="DATADESK_TELEGRAM_RATE_LIMIT: expected calls per second"
    ):
        BotSettings.from_env({"DATADESK_TELEGRAM_RATE_LIMIT": raw})


def test_the_webhook_order_wait_is_a_fifth_of_a_second_unless_set_and_zero_turns_it_off() -> None:
    assert BotSettings.from_env({}).webhook_order_wait == 0.2
    assert BotSettings.from_env({"DATADESK_WEBHOOK_ORDER_WAIT": "0"}).webhook_order_wait == 0
    assert BotSettings.from_env({"DATADESK_WEBHOOK_ORDER_WAIT": "0.5"}).webhook_order_wait == 0.5


@pytest.mark.parametrize("raw", ["soon", "-0.1", "nan", "6", "inf"])
def test_a_webhook_order_wait_that_is_not_a_few_seconds_stops_the_start_naming_it(
    raw: str,
) -> None:
    with pytest.raises(
        SettingsError, match="DATADESK_WEBHOOK_ORDER_WAIT: expected seconds from 0 to 5"
    ):
        BotSettings.from_env({"DATADESK_WEBHOOK_ORDER_WAIT": raw})


@pytest.mark.parametrize("raw", ["eighty", "0", "70000"])
def test_a_webhook_port_that_is_not_a_port_stops_the_start_naming_it(raw: str) -> None:
    with pytest.raises(SettingsError, match="DATADESK_WEBHOOK_PORT"):
        BotSettings.from_env({"DATADESK_WEBHOOK_PORT": raw})
