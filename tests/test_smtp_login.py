"""SMTP login sends a password: never unencrypted unless the operator says so.

``SMTP_USER`` and ``SMTP_PASSWORD`` without ``SMTP_STARTTLS`` stop the backend
at start with a message naming the way out; ``SMTP_ALLOW_PLAIN_LOGIN=true``
(a relay on the same host) lets it log in, and codes are mailed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fakes.smtp import SmtpCapture, _free_port

from backend.mailer import SmtpMailer
from backend.settings import Settings
from common.settings import SettingsError

ROOT = Path(__file__).resolve().parent.parent
LOGIN = {
    "DATADESK_SMTP_HOST": "127.0.0.1",
    "DATADESK_SMTP_USER": "datadesk",
    "DATADESK_SMTP_PASSWORD": "relay-password",
}


def test_login_without_starttls_is_refused_naming_the_setting_that_allows_it() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(LOGIN)
    message = str(refused.value)
    assert "DATADESK_SMTP_STARTTLS" in message
    assert "DATADESK_SMTP_ALLOW_PLAIN_LOGIN=true" in message
    assert "relay-password" not in message


@pytest.mark.parametrize(
    "extra",
    [
        {"DATADESK_SMTP_STARTTLS": "true"},
        {"DATADESK_SMTP_ALLOW_PLAIN_LOGIN": "true"},
        {"DATADESK_SMTP_PASSWORD": ""},
    ],
)
def test_starttls_an_explicit_allowance_or_no_login_are_accepted(extra: dict[str, str]) -> None:
    settings = Settings.from_env({**LOGIN, **extra})
    assert settings.smtp_host == "127.0.0.1"


def test_a_mailer_built_from_settings_that_bypassed_the_environment_refuses_too() -> None:
    settings = replace(
        Settings(), smtp_host="127.0.0.1", smtp_user="datadesk", smtp_password="relay-password"
    )
    with pytest.raises(SettingsError, match="SMTP_ALLOW_PLAIN_LOGIN"):
        SmtpMailer.from_settings(settings)


def test_datadesk_backend_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATADESK_DATA_DIR": str(tmp_path / "var"),
        "DATADESK_HTTP_PORT": str(_free_port()),
        **LOGIN,
    }
    done = subprocess.run(
        [sys.executable, "-m", "datadesk.cli", "backend"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "DATADESK_SMTP_ALLOW_PLAIN_LOGIN=true" in done.stderr
    assert "relay-password" not in done.stderr + done.stdout


class _Logins:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.seen.append(login)
        return AuthResult(success=login == ("datadesk", "relay-password"))


@pytest.fixture
def relay() -> Iterator[tuple[SmtpCapture, _Logins]]:
    """An SMTP relay on loopback that offers AUTH without TLS, as a local relay may."""
    capture, logins = SmtpCapture(), _Logins()
    capture.port = _free_port()
    controller = Controller(
        capture,
        hostname=capture.host,
        port=capture.port,
        authenticator=logins,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        yield capture, logins
    finally:
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_with_plain_login_allowed_the_backend_logs_in_and_the_mail_arrives(
    relay: tuple[SmtpCapture, _Logins],
) -> None:
    capture, logins = relay
    settings = Settings.from_env(
        {**LOGIN, "DATADESK_SMTP_PORT": str(capture.port), "DATADESK_SMTP_ALLOW_PLAIN_LOGIN": "1"}
    )
    mailer = SmtpMailer.from_settings(settings)
    assert mailer is not None
    await mailer.send("anna@example.lv", "Your code", "Your code is 123456", "ref-1")
    await capture.wait_for(1)
    assert logins.seen == [("datadesk", "relay-password")]
    assert capture.codes_for("anna@example.lv") == ["123456"]
