"""Sending one-time codes by email over SMTP (``DATADESK_SMTP_*``).

``smtplib`` runs in a worker thread so the event loop never waits on the
mail server. STARTTLS and login are used when the settings ask for them; a
login without STARTTLS needs ``SMTP_ALLOW_PLAIN_LOGIN`` (``Settings.check_smtp_login``).
Failures raise ``MailDeliveryError`` naming the reference and what went wrong
(the exception's type and the server's reply code), never an address.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from backend.settings import Settings
from common.errors import DatadeskError


class MailDeliveryError(DatadeskError):
    """The SMTP server did not take a message; ``reference`` names it."""

    def __init__(self, reference: str, reason: str) -> None:
        super().__init__(f"email {reference} not accepted: {reason}")
        self.reference = reference


def _reason(exc: Exception) -> str:
    """The failure as the exception's type and SMTP reply codes, without addresses or replies."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({str(code) for code, _ in exc.recipients.values()})
        return f"SMTPRecipientsRefused {'/'.join(codes)}".rstrip()
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__} {code}" if isinstance(code, int) else type(exc).__name__


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str, reference: str) -> None:
        """Deliver a plain-text message; raise ``MailDeliveryError``."""
        ...


class SmtpMailer:
    """An SMTP client configured from settings."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 15.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._user = user
        self._password = password
        self._starttls = starttls
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer | None:
        """A mailer when ``SMTP_HOST`` is set, else None (the email channel is off).

        SettingsError when it would log in without STARTTLS and that is not allowed.
        """
        if settings.smtp_host is None:
            return None
        settings.check_smtp_login()
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            user=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )

    async def send(self, to: str, subject: str, body: str, reference: str) -> None:
        """Send in a thread; the message carries ``reference`` in an ``X-Datadesk-Reference`` header."""
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message["X-Datadesk-Reference"] = reference
        message.set_content(body)
        try:
            await asyncio.to_thread(self._deliver, message)
        except (OSError, smtplib.SMTPException) as exc:
            # Not chained: smtplib's errors carry the recipient's address
            # (SMTPRecipientsRefused is a dict keyed by it) and the server's
            # reply, which often quotes it; a logged traceback would print both.
            raise MailDeliveryError(reference, _reason(exc)) from None

    def _deliver(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as client:
            if self._starttls:
                client.starttls(context=ssl.create_default_context())
            if self._user and self._password:
                client.login(self._user, self._password)
            client.send_message(message)
