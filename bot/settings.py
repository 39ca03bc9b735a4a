"""The bot's settings, read from the ``DATADESK_*`` environment (see ``docs/operators.md``).

The bot is a channel: it holds the Telegram token, its conversation store and
its own key, and reaches the backend over HTTP with the service token. It never
reads the backend's secrets (``SECRET_KEY``, ``SMTP_*``, ``SMS_*``, ``CRM_*``):
``BotSettings.from_env`` looks up only the variables named in ``VARIABLES``,
and the class has no field that could hold one of them. ``BotSettings.from_env``
is the only place in ``bot/`` that reads ``DATADESK_*`` variables, and
``use_timedelta_periods`` the only one that writes the environment (PTB's own
``PTB_TIMEDELTA``, not a setting).

Variable names and defaults are the shared contract of ``docs/operators.md``;
where the bot and the backend read the same variable (``DATA_DIR``,
``HTTP_HOST``, ``HTTP_PORT``, ``SERVICE_TOKEN``, ``LOG_LEVEL``) they read it
the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from common.i18n import shipped_dir
from common.logs import LOG_FORMATS
from common.private_files import read_secret
from common.settings import (
    PREFIX,
    SERVICE_TOKEN_FILE,
    SettingsError,
    lookup,
    parse_choice,
    parse_int,
    parse_port,
)


def use_timedelta_periods() -> None:
    """Have python-telegram-bot give periods as ``timedelta`` (``RetryAfter.retry_after``).

    Periods as numbers are deprecated since PTB 22.2 and warned about when
    built; ``PTB_TIMEDELTA`` is PTB's only opt-in to the coming form, read
    each time such a value is built, so the channel sets it before its first
    call. It is PTB's own variable, not a setting: an operator has nothing to
    choose here, and the channel reads periods as ``timedelta``.
    """
    os.environ["PTB_TIMEDELTA"] = "true"


# Every variable the bot reads (without the prefix); nothing else is looked up.
VARIABLES = (
    "DATA_DIR",
    "BOT_DATABASE_URL",
    "BOT_SECRET_KEY",
    "TELEGRAM_TOKEN",
    "TELEGRAM_API_URL",
    "TELEGRAM_MODE",
    "TELEGRAM_RATE_LIMIT",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_PORT",
    "WEBHOOK_ORDER_WAIT",
    "HTTP_HOST",
    "HTTP_PORT",
    "BACKEND_URL",
    "SERVICE_TOKEN",
    "DIALOGS_DIR",
    "LOCALES_DIR",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "BOT_METRICS_PORT",
)


# A shorter key is a password, not a key: refuse it at start.
MIN_SECRET_LENGTH = 16


def _parse_port(raw: str | None) -> int | None:
    """A TCP port (1–65535) or None when unset; SettingsError otherwise."""
    if raw is None:
        return None
    port = parse_int("WEBHOOK_PORT", raw)
    if not 1 <= port <= 65535:
        raise SettingsError(f"{PREFIX}WEBHOOK_PORT: expected a port from 1 to 65535, got {raw!r}")
    return port


def _parse_amount(name: str, raw: str, expected: str, *, most: float = float("inf")) -> float:
    """A finite number from 0 to ``most``; SettingsError saying ``expected`` otherwise."""
    try:
        amount = float(raw)
    except ValueError:
        amount = -1.0
    if not 0 <= amount <= most or amount == float("inf"):
        raise SettingsError(f"{PREFIX}{name}: expected {expected}, got {raw!r}")
    return amount


@dataclass(frozen=True)
class BotSettings:
    """What the bot process may know. Paths are absolute once loaded; secrets stay out of repr."""

    data_dir: Path = Path("var")
    bot_database_url: str = ""
    # The bot's own key for conversation state (None: generated into DATA_DIR/bot.key).
    bot_secret_key: str | None = field(default=None, repr=False)
    telegram_token: str | None = field(default=None, repr=False)
    telegram_api_url: str = "https://api.telegram.org"
    telegram_mode: str = "polling"
    # Limited Bot API calls a second for the token, shared by its bot processes; 0: none.
    telegram_rate_limit: float = 30.0
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    # The webhook listener's port; None: the port in WEBHOOK_URL (a proxy in front may differ).
    webhook_port: int | None = None
    # With other bot processes live, seconds a stored update waits for one of
    # its chat that another bot stores beside it (bot.telegram.inbox).
    webhook_order_wait: float = 0.2
    # The webhook listener's address (HTTP_HOST); the port comes from WEBHOOK_URL.
    http_host: str = "127.0.0.1"
    backend_url: str = "http://127.0.0.1:8080"
    service_token: str = field(default="", repr=False)
    dialogs_dir: Path = field(default_factory=lambda: shipped_dir("dialogs"))
    locales_dir: Path = field(default_factory=lambda: shipped_dir("locales"))
    log_level: str = "INFO"
    # ``text`` or ``json`` (one JSON object a line); see common/logs.py.
    log_format: str = "text"
    # Where ``datadesk bot`` serves /metrics, /livez and /readyz (on HTTP_HOST); 0: nowhere.
    metrics_port: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BotSettings:
        """Read the bot's variables from ``environ`` (default ``os.environ``); raise SettingsError.

        Only the names in ``VARIABLES`` are looked up. Whether the Telegram
        channel can run (a token; ``WEBHOOK_URL`` in webhook mode) is checked
        by ``check_channel`` when it starts, so ``dialogs check`` and the
        other commands run whatever the channel's settings are.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return lookup(env, name)

        data_dir = Path(get("DATA_DIR") or "var").resolve()
        bot_secret_key = get("BOT_SECRET_KEY")
        if bot_secret_key is not None and len(bot_secret_key) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"{PREFIX}BOT_SECRET_KEY: use at least {MIN_SECRET_LENGTH} random characters"
            )
        http_host = get("HTTP_HOST") or "127.0.0.1"
        http_port = parse_int("HTTP_PORT", get("HTTP_PORT") or "8080")
        return cls(
            data_dir=data_dir,
            bot_database_url=get("BOT_DATABASE_URL")
            or f"sqlite+aiosqlite:///{data_dir / 'bot.sqlite3'}",
            bot_secret_key=bot_secret_key,
            telegram_token=get("TELEGRAM_TOKEN"),
            telegram_api_url=(get("TELEGRAM_API_URL") or "https://api.telegram.org").rstrip("/"),
            telegram_mode=parse_choice(
                "TELEGRAM_MODE", get("TELEGRAM_MODE") or "polling", ("polling", "webhook")
            ),
            telegram_rate_limit=_parse_amount(
                "TELEGRAM_RATE_LIMIT",
                get("TELEGRAM_RATE_LIMIT") or "30",
                "calls per second (0 for no limit)",
            ),
            webhook_url=get("WEBHOOK_URL"),
            webhook_secret=get("WEBHOOK_SECRET"),
            webhook_port=_parse_port(get("WEBHOOK_PORT")),
            webhook_order_wait=_parse_amount(
                "WEBHOOK_ORDER_WAIT",
                get("WEBHOOK_ORDER_WAIT") or "0.2",
                "seconds from 0 to 5 (0 for no wait)",
                most=5,
            ),
            http_host=http_host,
            backend_url=(get("BACKEND_URL") or f"http://{http_host}:{http_port}").rstrip("/"),
            service_token=get("SERVICE_TOKEN") or "",
            dialogs_dir=Path(get("DIALOGS_DIR") or shipped_dir("dialogs")).resolve(),
            locales_dir=Path(get("LOCALES_DIR") or shipped_dir("locales")).resolve(),
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
            log_format=parse_choice("LOG_FORMAT", get("LOG_FORMAT") or "text", LOG_FORMATS),
            metrics_port=parse_port("BOT_METRICS_PORT", get("BOT_METRICS_PORT")),
        )

    def check_channel(self) -> str:
        """The Telegram token, if the channel can run (a token; a URL for webhooks); else SettingsError."""
        if not self.telegram_token:
            raise SettingsError(f"{PREFIX}TELEGRAM_TOKEN is not set; there is no Telegram channel")
        if self.telegram_mode == "webhook" and not self.webhook_url:
            raise SettingsError(f"{PREFIX}TELEGRAM_MODE=webhook needs {PREFIX}WEBHOOK_URL")
        return self.telegram_token

    def with_service_token(self) -> BotSettings:
        """Settings whose service token is set, or SettingsError saying how to set it.

        The backend owns the token: ``DATADESK_SERVICE_TOKEN`` when the
        operator sets one (at scale, on every process), otherwise the one the
        backend generated into its ``DATA_DIR/service-token`` on first start,
        which a bot sharing that ``DATA_DIR`` reads (the embedded default and
        one-host set-ups). The bot never makes one up: the backend would
        refuse it.
        """
        if self.service_token:
            return self
        token = read_secret(self.data_dir / SERVICE_TOKEN_FILE)
        if token is None:
            raise SettingsError(
                f"{PREFIX}SERVICE_TOKEN is not set and {self.data_dir / SERVICE_TOKEN_FILE} "
                "does not exist: set the backend's service token, or start the backend "
                "with the same DATA_DIR first"
            )
        return replace(self, service_token=token)
