"""An SMTP server on loopback (aiosmtpd) that keeps every message it is given.

``with running_smtp() as smtp:`` listens on ``smtp.host``/``smtp.port``;
``smtp.messages`` holds parsed ``email.message.EmailMessage`` objects;
``await smtp.wait_for(n)`` waits until ``n`` arrived; ``smtp.codes_for(address)``
lists the 6-digit codes mailed to an address, oldest first.
``running_smtp(refuse_recipients=True)`` is a server that refuses every
recipient the way real ones do, quoting the address in its reply (smtplib
then raises ``SMTPRecipientsRefused``); ``smtp.refused`` lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

# aiosmtpd logs every connection at INFO from its own thread, which can outlive
# pytest's capture of a test and then writes to a closed stream: keep its warnings only.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class SmtpCapture:
    """The aiosmtpd handler: records each message's envelope recipients and content."""

    def __init__(self, refuse_recipients: bool = False) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.refused: list[str] = []
        self.refuse_recipients = refuse_recipients
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.refuse_recipients:
            with self._lock:
                self.refused.append(address)
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def codes_for(self, address: str) -> list[str]:
        """The one-time codes mailed to ``address``, oldest first."""
        codes = []
        with self._lock:
            pairs = list(zip(self.messages, self.recipients, strict=True))
        for message, rcpts in pairs:
            if address in rcpts:
                body = message.get_body(preferencelist=("plain",))
                text = body.get_content() if body is not None else ""
                found = re.search(r"\b(\d{6})\b", text)
                if found:
                    codes.append(found.group(1))
        return codes

    async def wait_for(self, count: int = 1, within: float = 10.0) -> list[EmailMessage]:
        """Wait until ``count`` messages arrived (the server runs in its own thread)."""
        async with asyncio.timeout(within):
            while True:
                with self._lock:
                    if len(self.messages) >= count:
                        return list(self.messages)
                await asyncio.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_smtp(*, refuse_recipients: bool = False) -> Iterator[SmtpCapture]:
    """Serve SMTP on a free loopback port for the duration of the block."""
    capture = SmtpCapture(refuse_recipients)
    capture.port = _free_port()
    controller = Controller(capture, hostname=capture.host, port=capture.port)
    controller.start()
    try:
        yield capture
    finally:
        controller.stop()
