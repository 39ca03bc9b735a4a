"""The backend's settings, read from the ``DATADESK_*`` environment (see ``docs/operators.md``).

The names and defaults are a contract shared with operators and other tools:
add settings, never rename them. ``Settings.from_env`` is the only place in
``backend/`` that reads the environment; everything else is handed a
``Settings``. The bot's variables (Telegram, ``BACKEND_URL``, its database
and key, dialogs and catalogs) are ``bot/settings.py``'s; ``datadesk run``
reads both from the same environment and hands each side its own.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from common.db import pool_limits
from common.logs import LOG_FORMATS
from common.private_files import ensure_private_dir, read_or_create_secret
from common.settings import (
    PREFIX,
    SERVICE_TOKEN_FILE,
    SettingsError,
    lookup,
    parse_bool,
    parse_choice,
    parse_int,
    parse_port,
)
from common.vocabulary.request_kinds import REQUEST_KINDS


def _networks(name: str, raw: str) -> tuple[str, ...]:
    found = []
    for item in raw.replace(",", " ").split():
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(
                f"{PREFIX}{name}: {item!r} is not an IP address or network "
                "(expected e.g. 10.0.0.5, 10.0.0.0/24 or fd00::/8, comma-separated)"
            ) from None
    return tuple(found)


def _public_url(raw: str | None, host: str, port: int) -> str:
    """``PUBLIC_URL`` without a trailing slash; unset: the address the backend listens on."""
    if not raw:
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"
    url = raw.strip().rstrip("/")
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest or any(c in rest for c in "?# "):
        raise SettingsError(
            f"{PREFIX}PUBLIC_URL: {raw!r} is not an http(s) address "
            "(expected e.g. https://datadesk.bank.example or https://bank.example/datadesk)"
        )
    return url


def _optional_path(raw: str | None) -> Path | None:
    return Path(raw).resolve() if raw else None


@dataclass(frozen=True)
class Settings:
    """Everything an operator can set. Paths are absolute once loaded."""

    data_dir: Path = Path("var")
    database_url: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    service_token: str = ""
    sms_gateway: str = "console"
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "datadesk@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    # Logging in to the SMTP server over a connection that is not encrypted
    # sends the password in clear: only when the operator says so.
    smtp_allow_plain_login: bool = False
    # How SMS and email name the sender; unset: "Your bank" in the customer's language.
    bank_name: str | None = None
    # The backend's address as customers reach it (the "Was this you?" undo links);
    # unset: http://{HTTP_HOST}:{HTTP_PORT}.
    public_url: str = ""
    secret_key: str | None = None
    # Keys a rotation is moving values off: still read, never written (docs/operators.md).
    old_secret_keys: tuple[str, ...] = ()
    jurisdiction: str = "EU-LV"
    # Request kinds that wait in the back-office review queue before running.
    review_kinds: frozenset[str] = field(default_factory=frozenset)
    crm: str = "builtin"
    crm_url: str | None = None
    crm_token: str | None = None
    log_level: str = "INFO"
    # ``text`` or ``json`` (one JSON object a line); see common/logs.py.
    log_format: str = "text"
    # Where ``datadesk worker`` serves /metrics, /livez and /readyz (on HTTP_HOST); 0: nowhere.
    worker_metrics_port: int = 0
    # Reverse proxies whose X-Forwarded-For names the console's clients (CIDRs).
    trusted_proxies: tuple[str, ...] = ()
    # The audit chain's HMAC key and checkpoint signing key (hex Ed25519 seed);
    # unset: generated into DATA_DIR. See docs/audit.md.
    audit_key: str | None = None
    audit_signing_key: str | None = None
    # Where signed checkpoints are appended; None: DATA_DIR/audit-checkpoints.
    audit_checkpoint_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``); raise SettingsError."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return lookup(env, name)

        data_dir = Path(get("DATA_DIR") or "var").resolve()
        http_host = get("HTTP_HOST") or "127.0.0.1"
        http_port = parse_int("HTTP_PORT", get("HTTP_PORT") or "8080")
        review = get("REVIEW_KINDS") or ""
        review_kinds = frozenset(k.strip() for k in review.split(",") if k.strip())
        for kind in review_kinds:
            if kind not in REQUEST_KINDS:
                raise SettingsError(
                    f"{PREFIX}REVIEW_KINDS: unknown request kind {kind!r}; "
                    f"expected any of {', '.join(REQUEST_KINDS)}"
                )
        settings = cls(
            data_dir=data_dir,
            database_url=get("DATABASE_URL")
            or f"sqlite+aiosqlite:///{data_dir / 'backend.sqlite3'}",
            http_host=http_host,
            http_port=http_port,
            service_token=get("SERVICE_TOKEN") or "",
            sms_gateway=parse_choice(
                "SMS_GATEWAY", get("SMS_GATEWAY") or "console", ("console", "http")
            ),
            sms_gateway_url=get("SMS_GATEWAY_URL"),
            sms_gateway_token=get("SMS_GATEWAY_TOKEN"),
            smtp_host=get("SMTP_HOST"),
            smtp_port=parse_int("SMTP_PORT", get("SMTP_PORT") or "25"),
            smtp_from=get("SMTP_FROM") or "datadesk@localhost",
            smtp_user=get("SMTP_USER"),
            smtp_password=get("SMTP_PASSWORD"),
            smtp_starttls=parse_bool("SMTP_STARTTLS", get("SMTP_STARTTLS") or "false"),
            smtp_allow_plain_login=parse_bool(
                "SMTP_ALLOW_PLAIN_LOGIN", get("SMTP_ALLOW_PLAIN_LOGIN") or "false"
            ),
            bank_name=get("BANK_NAME"),
            public_url=_public_url(get("PUBLIC_URL"), http_host, http_port),
            secret_key=get("SECRET_KEY"),
            old_secret_keys=tuple((get("OLD_SECRET_KEYS") or "").split()),
            jurisdiction=get("JURISDICTION") or "EU-LV",
            review_kinds=review_kinds,
            crm=parse_choice("CRM", get("CRM") or "builtin", ("builtin", "http")),
            crm_url=get("CRM_URL"),
            crm_token=get("CRM_TOKEN"),
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
            log_format=parse_choice("LOG_FORMAT", get("LOG_FORMAT") or "text", LOG_FORMATS),
            worker_metrics_port=parse_port("WORKER_METRICS_PORT", get("WORKER_METRICS_PORT")),
            trusted_proxies=_networks("TRUSTED_PROXIES", get("TRUSTED_PROXIES") or ""),
            audit_key=get("AUDIT_KEY"),
            audit_signing_key=get("AUDIT_SIGNING_KEY"),
            audit_checkpoint_dir=_optional_path(get("AUDIT_CHECKPOINT_DIR")),
        )
        if settings.sms_gateway == "http" and not settings.sms_gateway_url:
            raise SettingsError(f"{PREFIX}SMS_GATEWAY=http needs {PREFIX}SMS_GATEWAY_URL")
        if settings.crm == "http" and not settings.crm_url:
            raise SettingsError(f"{PREFIX}CRM=http needs {PREFIX}CRM_URL")
        # Read again by every engine (``common.db.make_engine``); a bad one stops the start here.
        pool_limits(env)
        settings.check_smtp_login()
        return settings

    def check_smtp_login(self) -> None:
        """Raise SettingsError when SMTP would log in over a connection that is not encrypted."""
        if (
            self.smtp_host is not None
            and self.smtp_user
            and self.smtp_password
            and not self.smtp_starttls
            and not self.smtp_allow_plain_login
        ):
            raise SettingsError(
                f"{PREFIX}SMTP_USER and {PREFIX}SMTP_PASSWORD are set but {PREFIX}SMTP_STARTTLS "
                "is not: the password would cross the network in clear. Set "
                f"{PREFIX}SMTP_STARTTLS=true, or {PREFIX}SMTP_ALLOW_PLAIN_LOGIN=true when the "
                "mail server is on this host or a trusted network"
            )

    def with_service_token(self) -> Settings:
        """Return settings whose service token is set, generating one into DATA_DIR once.

        The embedded default runs bot and backend in one process, so a token
        generated on first start and kept beside the data (``DATA_DIR/service-token``,
        ``0600`` from creation, one token however many processes start at once)
        is enough; a bot sharing the ``DATA_DIR`` reads it there. At scale the
        operator sets ``DATADESK_SERVICE_TOKEN`` on every process.
        """
        if self.service_token:
            return self
        ensure_private_dir(self.data_dir)
        token = read_or_create_secret(self.data_dir / SERVICE_TOKEN_FILE)
        return replace(self, service_token=token)

    @property
    def checkpoint_dir(self) -> Path:
        """Where the audit log's signed checkpoints go (``AUDIT_CHECKPOINT_DIR``)."""
        return self.audit_checkpoint_dir or self.data_dir / "audit-checkpoints"

    @property
    def undo_base_url(self) -> str:
        """``PUBLIC_URL``, or the address the backend listens on when settings were built by hand."""
        return self.public_url or _public_url(None, self.http_host, self.http_port)

    @property
    def email_enabled(self) -> bool:
        """Whether one-time codes can go out by email (an SMTP host is set)."""
        return self.smtp_host is not None
