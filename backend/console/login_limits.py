"""Which limits one console login attempt counts against (argued in docs/console-login-limits.md).

An attempt from a browser without a device cookie for the typed name counts on:

- ``pair``: this name from this client, refused after 5 failures for 15 minutes;
- ``client``: any name from this client, refused after 20 failures for 15 minutes;
- ``name``: this name from anywhere, never refused but slowed: 5 failures at
  once, then each next attempt waits 1 s, 2 s, 4 s … up to 5 minutes after the
  previous one, for a day after the first failure.

A browser where the agent logged in before carries a device cookie (OWASP's
"device cookies"): a random nonce and an issue date, signed with the deployment's
key together with the agent's name, good for 30 days. Its attempts count only
on ``device`` (5 failures in 15 minutes), so a stranger who guesses at a name
from elsewhere slows down the strangers, not the agent at their own desk. A
device cookie past its limit counts as none (it may have been stolen): its
browser falls back to the limits above.

Keys are keyed digests (``keyring.mac``) of the typed name and the client
address, never the text: people type passwords into the name field.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from backend.console import limits
from backend.console.limits import Rule
from backend.crypto import Keyring, constant_time_equal

WINDOW = timedelta(minutes=15)
PAIR = Rule(window=WINDOW, limit=5)
CLIENT = Rule(window=WINDOW, limit=20)
NAME = Rule(window=timedelta(hours=24), free=5, max_delay=timedelta(minutes=5))
DEVICE = Rule(window=WINDOW, limit=5)
# The longest window above: counters older than this are swept away.
LONGEST = NAME.window

DEVICE_COOKIE = "datadesk_console_device"
DEVICE_LIFETIME = timedelta(days=30)
# Limits that, once reached, refuse (the others only slow down).
REFUSING = frozenset({"pair", "client", "device"})


@dataclass(frozen=True)
class Attempt:
    """The counters one login attempt takes a slot on."""

    slots: tuple[tuple[str, Rule], ...]
    # What the attempt counts on should its device cookie be locked.
    fallback: tuple[tuple[str, Rule], ...] = ()

    @property
    def trusted_device(self) -> bool:
        return any(key.startswith("device:") for key, _ in self.slots)

    @property
    def without_device(self) -> Attempt:
        return Attempt(self.fallback)

    def keys(self, *kinds: str) -> list[str]:
        return [key for key, _ in self.slots if key.partition(":")[0] in kinds]


def _stamp(when: datetime) -> str:
    return str(int(when.timestamp()))


def new_device_cookie(keyring: Keyring, name: str, now: datetime) -> str:
    """A device cookie for ``name``: ``nonce.issued.signature``, good for DEVICE_LIFETIME."""
    nonce, issued = secrets.token_urlsafe(16), _stamp(now)
    return f"{nonce}.{issued}.{keyring.mac('console-device', name, nonce, issued)}"


def _device_nonce(keyring: Keyring, name: str, cookie: str | None, now: datetime) -> str | None:
    """The nonce of ``cookie`` when it is a live device cookie issued for ``name``."""
    if not cookie or cookie.count(".") != 2:
        return None
    nonce, issued, signature = cookie.split(".")
    if not issued.isdigit() or not constant_time_equal(
        signature, keyring.mac("console-device", name, nonce, issued)
    ):
        return None
    if datetime.fromtimestamp(int(issued), UTC) + DEVICE_LIFETIME <= now:
        return None
    return nonce


def attempt(
    keyring: Keyring, name: str, client: str, device_cookie: str | None, now: datetime
) -> Attempt:
    """The slots a login for ``name`` from ``client`` (with its browser's device cookie) takes."""
    untrusted = (
        (f"pair:{keyring.mac('console-login-pair', name, client)}", PAIR),
        (f"client:{keyring.mac('console-login-client', client)}", CLIENT),
        (f"name:{keyring.mac('console-login-name', name)}", NAME),
    )
    nonce = _device_nonce(keyring, name, device_cookie, now)
    if nonce is None:
        return Attempt(untrusted)
    device = f"device:{keyring.mac('console-login-device', nonce)}"
    return Attempt(((device, DEVICE),), fallback=untrusted)


async def succeeded(session: AsyncSession, tried: Attempt) -> None:
    """Settle a right password: this name from this client (or device) starts afresh.

    The client's and the name's counts only give back this attempt's slot:
    failures a stranger caused there stay counted.
    """
    await limits.settle(
        session, give_back=tried.keys("client", "name"), forget=tried.keys("pair", "device")
    )
