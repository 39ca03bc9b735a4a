"""The bot's side of ``docs/backend-api.md``: one aiohttp session, the service token, timeouts.

Every call answers with the backend's JSON or raises one of::

    BackendError            the backend could not be used for this call
    ├── BackendUnavailable  no answer: connection refused, timeout, a 5xx, not JSON
    └── BackendRefused      a 4xx with the contract's stable ``code`` and its extra fields

Callers (``bot.actions``) turn these into outcomes the dialog engine
understands; nothing here ever lets an aiohttp exception escape. Bodies are
never logged: they carry phone numbers and codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
# How long the channels codes can go by are trusted before they are asked again,
# in the background: mail is switched on or off rarely, and a customer's update
# must not pay a request for a menu (issue 11).
CHANNELS_FRESH_FOR = 60.0
# How long opening the bot waits for the first answer about channels.
CHANNELS_FIRST_WAIT = 3.0


class BackendError(Exception):
    """The backend could not be used for this call."""

    # Messages name the route and the status, never a body: safe for the logs.
    loggable_message: ClassVar[bool] = True


class BackendUnavailable(BackendError):
    """No usable answer: the backend is down, slow, failing (5xx) or not speaking JSON."""


class BackendRefused(BackendError):
    """A 4xx answer; ``code`` is the contract's stable error code, ``details`` its extra fields."""

    def __init__(self, status: int, code: str, details: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.details = details

    @property
    def fields(self) -> dict[str, str]:
        """Per-field codes of a ``422 invalid`` answer."""
        raw = self.details.get("fields")
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def idempotency_key(chat: str, instance: str, kind: str, payload: dict[str, Any]) -> str:
    """A submit's key: the same chat, flow instance, kind and payload always give the same key.

    So "confirm" pressed twice, or a submit retried after a timeout, makes one
    request; a different payload (another request) gets another key.
    """
    body = json.dumps([chat, instance, kind, payload], sort_keys=True, ensure_ascii=False)
    return "bot-" + hashlib.sha256(body.encode()).hexdigest()[:40]


class BackendClient:
    """Every bot → backend call of ``docs/backend-api.md`` over one HTTP session."""

    def __init__(
        self, base_url: str, service_token: str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {service_token}"}
        self._session: aiohttp.ClientSession | None = None
        self._channels: list[str] | None = None
        self._channels_at = -CHANNELS_FRESH_FOR
        self._channels_task: asyncio.Task[None] | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Made on first use so the session belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    async def close(self) -> None:
        """Close the HTTP session (and stop asking about channels)."""
        if self._channels_task is not None:
            self._channels_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._channels_task
            self._channels_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        """One API call; the JSON answer, or BackendRefused / BackendUnavailable."""
        url = f"{self.base_url}{path}"
        limit = aiohttp.ClientTimeout(total=seconds or self.timeout)
        # UTF-8 as it is, not \u escapes: a line in Chinese stays well under the body limit.
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        if data is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        try:
            async with self._http().request(
                method, url, data=data, params=params, headers=headers, timeout=limit
            ) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # Debug only: the caller says what could not be done (one line, not two).
            log.debug("backend %s %s unreachable: %s", method, _route(path), type(exc).__name__)
            raise BackendUnavailable(f"{method} {_route(path)}: {type(exc).__name__}") from exc
        if status == 204 or not raw:
            if status >= 400:
                raise self._error(method, path, status, {})
            return {}
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BackendUnavailable(
                f"{method} {_route(path)}: {status} answer is not JSON"
            ) from exc
        if not isinstance(data, dict):
            raise BackendUnavailable(
                f"{method} {_route(path)}: {status} answer is not a JSON object"
            )
        if status >= 400:
            raise self._error(method, path, status, data)
        return data

    def _error(self, method: str, path: str, status: int, data: dict[str, Any]) -> BackendError:
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        assert isinstance(error, dict)
        code = str(error.get("code") or f"http_{status}")
        if status >= 500 or status in (408,):
            log.warning("backend %s %s failed: %s %s", method, _route(path), status, code)
            return BackendUnavailable(f"{method} {_route(path)}: {status} {code}")
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        return BackendRefused(status, code, details)

    # Verification

    async def ready(self, seconds: float = 2.0) -> bool:
        """Whether the backend answers its ``/readyz`` with 200 within ``seconds``."""
        try:
            await self._call("GET", "/readyz", seconds=seconds)
        except BackendError:
            return False
        return True

    async def start_verification(
        self,
        chat: str,
        phone: str,
        *,
        locale: str,
        channel: str = "sms",
        shared_contact: bool = False,
    ) -> dict[str, Any]:
        """POST /verifications: send a code to the contact on file for ``phone``."""
        body = {
            "chat": chat,
            "phone": phone,
            "channel": channel,
            "locale": locale,
            "shared_contact": shared_contact,
        }
        return await self._call("POST", "/api/v1/verifications", body=body)

    async def resend_code(self, verification_id: str, *, locale: str) -> dict[str, Any]:
        """POST /verifications/{id}/resend."""
        path = f"/api/v1/verifications/{quote(verification_id, safe='')}/resend"
        return await self._call("POST", path, body={"locale": locale})

    async def check_code(self, verification_id: str, code: str) -> dict[str, Any]:
        """POST /verifications/{id}/check: a session token, a proof token, or a refusal."""
        path = f"/api/v1/verifications/{quote(verification_id, safe='')}/check"
        return await self._call("POST", path, body={"code": code})

    async def start_contact_proof(
        self, session_token: str, *, chat: str, kind: str, value: str, locale: str
    ) -> dict[str, Any]:
        """POST /contact-proofs: send a code to a new phone or email."""
        body = {"kind": kind, "value": value, "locale": locale}
        return await self._call(
            "POST", "/api/v1/contact-proofs", body=body, headers=_session(session_token, chat)
        )

    # The verified customer and the ledger

    async def verification_channels(self) -> list[str]:
        """GET /verifications/channels: where codes can go now (no email without a mail server)."""
        data = await self._call("GET", "/api/v1/verifications/channels")
        found = data.get("channels")
        return [str(c) for c in found] if isinstance(found, list) else []

    def known_channels(self) -> list[str] | None:
        """Where codes can go as last heard, without a request (None before any answer).

        An answer older than ``CHANNELS_FRESH_FOR`` is still given, and a new
        one is asked for in the background, off the customer's path.
        """
        if time.monotonic() - self._channels_at >= CHANNELS_FRESH_FOR:
            self.refresh_channels()
        return self._channels

    def refresh_channels(self) -> None:
        """Ask where codes can go, in the background (once at a time)."""
        if self._channels_task is None or self._channels_task.done():
            self._channels_task = asyncio.create_task(self._refresh_channels())

    async def load_channels(self, seconds: float = CHANNELS_FIRST_WAIT) -> None:
        """Ask where codes can go and wait up to ``seconds`` for the answer (on opening)."""
        self.refresh_channels()
        assert self._channels_task is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._channels_task), seconds)

    async def _refresh_channels(self) -> None:
        try:
            self._channels = await self.verification_channels()
        except BackendError as err:
            # Kept as it was; asked again on the next look.
            log.warning("verification channels not refreshed: %s", err)
            return
        self._channels_at = time.monotonic()

    async def me(self, session_token: str, *, chat: str) -> dict[str, Any]:
        """GET /me: masked contacts, consent state, open products."""
        return await self._call("GET", "/api/v1/me", headers=_session(session_token, chat))

    async def erasure_preview(
        self, session_token: str, scope: list[str], *, chat: str
    ) -> dict[str, Any]:
        """POST /erasure-preview: what would be erased and what kept, with basis and end date."""
        return await self._call(
            "POST",
            "/api/v1/erasure-preview",
            body={"scope": scope},
            headers=_session(session_token, chat),
        )

    async def submit_request(
        self,
        session_token: str,
        *,
        chat: str,
        kind: str,
        locale: str,
        payload: dict[str, Any],
        key: str,
    ) -> dict[str, Any]:
        """POST /requests with an Idempotency-Key: a replay answers the same request."""
        body = {"kind": kind, "chat": chat, "locale": locale, "payload": payload}
        headers = {**_session(session_token, chat), "Idempotency-Key": key}
        return await self._call("POST", "/api/v1/requests", body=body, headers=headers)

    async def request_copy(
        self, session_token: str, *, chat: str, locale: str, key: str
    ) -> dict[str, Any]:
        """POST /access with an Idempotency-Key: the access request and, once done, the copy."""
        body = {"chat": chat, "locale": locale}
        headers = {**_session(session_token, chat), "Idempotency-Key": key}
        return await self._call("POST", "/api/v1/access", body=body, headers=headers)

    async def list_requests(self, session_token: str, *, chat: str) -> list[dict[str, Any]]:
        """GET /requests?chat=…: the open requests of the customer verified in ``chat``."""
        data = await self._call(
            "GET", "/api/v1/requests", params={"chat": chat}, headers=_session(session_token, chat)
        )
        requests = data.get("requests")
        return [r for r in requests if isinstance(r, dict)] if isinstance(requests, list) else []

    # Notifications, agents, transcript

    async def poll_notifications(
        self, *, prefix: str, wait: float = 30, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Long-poll GET /notifications for chats starting with ``prefix``."""
        params = {"wait": str(int(wait)), "limit": str(limit), "prefix": prefix}
        data = await self._call(
            "GET", "/api/v1/notifications", params=params, seconds=wait + self.timeout
        )
        found = data.get("notifications")
        return [n for n in found if isinstance(n, dict)] if isinstance(found, list) else []

    async def ack_notifications(self, ids: list[int]) -> None:
        """POST /notifications/ack: these were shown; do not hand them out again."""
        if ids:
            await self._call("POST", "/api/v1/notifications/ack", body={"ids": ids})

    async def escalate(
        self, chat: str, *, reason: str, locale: str, verified: bool, session_token: str | None
    ) -> dict[str, Any]:
        """POST /escalations: put the chat in the agents' queue (an open one is reused)."""
        body = {
            "chat": chat,
            "reason": reason,
            "locale": locale,
            "verified": verified,
            "session_token": session_token,
        }
        return await self._call("POST", "/api/v1/escalations", body=body)

    async def file_transcript(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /transcript: lines ``{chat, seq, direction, text}``; each (chat, seq) kept once."""
        return await self._call("POST", "/api/v1/transcript", body={"lines": lines})

    async def withdraw_escalation(self, chat: str) -> bool:
        """POST /escalations/withdraw: close the chat's waiting escalation; True if one was."""
        data = await self._call("POST", "/api/v1/escalations/withdraw", body={"chat": chat})
        return bool(data.get("withdrawn", False))

    async def append_message(self, chat: str, *, direction: str, text: str) -> bool:
        """POST /chats/{chat}/messages (already masked); True while an agent holds the chat."""
        path = f"/api/v1/chats/{quote(chat, safe='')}/messages"
        data = await self._call("POST", path, body={"direction": direction, "text": text})
        return bool(data.get("agent_active", False))


def _session(token: str, chat: str) -> dict[str, str]:
    # A session is tied to the chat it was issued in; the backend refuses it from any other.
    return {"X-Customer-Session": token, "X-Customer-Chat": chat}


def _route(path: str) -> str:
    # Ids in paths (verification ids, chat ids) stay out of the logs.
    parts = path.split("?")[0].split("/")
    return "/".join(p if p in _ROUTE_WORDS else "…" for p in parts)


_ROUTE_WORDS = frozenset(
    {"", "api", "v1", "verifications", "resend", "check", "contact-proofs", "me",
     "erasure-preview", "requests", "notifications", "ack", "escalations", "chats", "messages",
     "transcript", "readyz"}
)  # fmt: skip
