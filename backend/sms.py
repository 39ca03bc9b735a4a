"""Sending one-time codes by SMS: a console gateway for the demo, an HTTP gateway for banks.

HTTP contract (DESIGN.md): ``POST {SMS_GATEWAY_URL}`` with ``Authorization:
Bearer {SMS_GATEWAY_TOKEN}`` and JSON ``{"to", "text", "reference"}``; any 2xx
is accepted; anything else, or no answer, is retried with exponential
back-off, then reported as ``SmsDeliveryError`` carrying the reference only.
The number and the text never reach a log line.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Protocol, TextIO

import aiohttp

from common.errors import DatadeskError
from common.masking import mask_phone

log = logging.getLogger(__name__)


class SmsDeliveryError(DatadeskError):
    """The gateway did not accept a message after every attempt; ``reference`` names it."""

    def __init__(self, reference: str, attempts: int) -> None:
        super().__init__(f"SMS {reference} not accepted after {attempts} attempts")
        self.reference = reference
        self.attempts = attempts


class SmsGateway(Protocol):
    async def send(self, to: str, text: str, reference: str) -> None:
        """Deliver ``text`` to the E.164 number ``to``; raise ``SmsDeliveryError``."""
        ...


class ConsoleSmsGateway:
    """Prints ``[SMS to +371 2••••••01] text`` so the demo shows the code on the console.

    It writes to a stream, never through ``logging``: log files must not hold
    codes, and the demo's console is the phone.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, to: str, text: str, reference: str) -> None:
        """Print the message with the number masked."""
        stream = self._stream or sys.stdout
        print(f"[SMS to {mask_phone(to)}] {text}", file=stream, flush=True)


class HttpSmsGateway:
    """Posts to the bank's SMS gateway, retrying non-2xx answers with back-off."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._token = token
        self._attempts = attempts
        self._backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, to: str, text: str, reference: str) -> None:
        """Post once per attempt until a 2xx; raise ``SmsDeliveryError`` after the last."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        payload = {"to": to, "text": text, "reference": reference}
        async with aiohttp.ClientSession(timeout=self._timeout) as client:
            for attempt in range(1, self._attempts + 1):
                try:
                    async with client.post(self._url, json=payload, headers=headers) as resp:
                        if 200 <= resp.status < 300:
                            return
                        outcome = f"HTTP {resp.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    outcome = type(exc).__name__
                log.warning(
                    "SMS %s attempt %d/%d failed: %s", reference, attempt, self._attempts, outcome
                )
                if attempt < self._attempts:
                    await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
        raise SmsDeliveryError(reference, self._attempts)
