"""The dialog engine's named actions, carried out against the backend.

Each handler takes the call's arguments and answers ``(outcome, data)`` with
an outcome declared for that action in ``bot/engine/registry.py``. Nothing
raises: a backend that is down, slow or refusing becomes an outcome the
dialogs branch on (``error`` at worst, and the customer is told to try later).

Secrets the engine never needs stay in the chat's ``memory`` (kept encrypted
by ``bot.state``): the customer session token, the pending verification id,
the proof token and preview id (also returned as data, so dialogs can name
them in a later payload).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.backend_client import (
    BackendClient,
    BackendError,
    BackendRefused,
    BackendUnavailable,
    idempotency_key,
)
from common.vocabulary.contact_kinds import PROVEN_CONTACT_KINDS
from common.vocabulary.request_kinds import ACCESS, ERASURE, UPDATE_CONTACT

log = logging.getLogger(__name__)

# The profile a code check answered with; it lives only as long as the update
# (``bot.stepping`` drops it), so a later step never shows a stale one.
FRESH_PROFILE = "fresh_profile"

Outcome = tuple[str, dict[str, Any]]


@dataclass
class ActionContext:
    """What a handler knows beyond its arguments: the chat, its locale and its memory."""

    chat: str
    locale: str
    memory: dict[str, Any] = field(default_factory=dict)
    # The phone number the platform vouched for in the event being handled, if any.
    shared_phone: str | None = None
    # A copy of the customer's data (``request_copy``): kept here, never in ``memory``,
    # so it is sent and forgotten, not saved with the chat.
    copy: dict[str, Any] | None = None

    @property
    def session_token(self) -> str | None:
        """The verified customer's session, if there is one."""
        token = self.memory.get("session_token")
        return token if isinstance(token, str) and token else None


Handler = Callable[[BackendClient, ActionContext, dict[str, Any]], Awaitable[Outcome]]


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _retry(err: BackendRefused) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if isinstance(err.details.get("retry_after"), int | float):
        data["retry_after"] = int(err.details["retry_after"])
    if err.details.get("offer_agent"):
        data["offer_agent"] = True
    return data


async def start_verification(
    backend: BackendClient, ctx: ActionContext, args: dict[str, Any]
) -> Outcome:
    """Ask the backend to send a code to the contact on file for the given phone."""
    phone = str(args.get("phone") or "")
    channel = str(args.get("channel") or "sms")
    shared = bool(args.get("shared_contact")) or (
        ctx.shared_phone is not None and _digits(ctx.shared_phone) == _digits(phone)
    )
    try:
        answer = await backend.start_verification(
            ctx.chat, phone, locale=ctx.locale, channel=channel, shared_contact=shared
        )
    except BackendRefused as err:
        if err.code == "locked_out":
            return "locked_out", _retry(err)
        if err.fields.get("channel") == "email_unavailable":
            return "email_unavailable", {}
        if err.code == "invalid":
            return "invalid_phone", {}
        return "error", {}
    ctx.memory["verification_id"] = answer.get("verification_id")
    ctx.memory["pending"] = "verify"
    return "sent", {
        "expires_in": answer.get("expires_in"),
        "resend_after": answer.get("resend_after"),
    }


async def verification_channels(
    backend: BackendClient, ctx: ActionContext, args: dict[str, Any]
) -> Outcome:
    """Whether codes can go by email now (the backend has a mail server).

    Answered from what the bot last heard, without a request on the customer's
    path; ``error`` (both channels offered) before the backend has ever said.
    """
    found = backend.known_channels()
    if found is None:
        return "error", {}
    return "ok", {"email_codes": "email" in found}


async def resend_code(backend: BackendClient, ctx: ActionContext, args: dict[str, Any]) -> Outcome:
    """Send a new code for the verification (or contact proof) started last."""
    key = "proof_verification_id" if ctx.memory.get("pending") == "proof" else "verification_id"
    verification_id = ctx.memory.get(key)
    if not isinstance(verification_id, str):
        return "error", {}
    try:
        await backend.resend_code(verification_id, locale=ctx.locale)
    except BackendRefused as err:
        if err.code == "resend_cooldown":
            return "cooldown", _retry(err)
        if err.code == "locked_out":
            return "locked_out", _retry(err)
        return "error", {}
    return "sent", {}


async def _check(
    backend: BackendClient, verification_id: Any, code: str
) -> dict[str, Any] | Outcome:
    """The check's answer, or the outcome (with attempts left) a refusal maps to."""
    if not isinstance(verification_id, str):
        return "expired", {}
    try:
        return await backend.check_code(verification_id, code)
    except BackendRefused as err:
        if err.code == "wrong_code":
            left = err.details.get("attempts_left")
            return "wrong_code", ({"attempts_left": left} if isinstance(left, int) else {})
        if err.code in ("expired", "too_many_attempts"):
            return err.code, {}
        if err.code == "locked_out":
            return "locked_out", _retry(err)
        if err.code == "not_found":
            return "expired", {}
        return "error", {}


async def check_code(backend: BackendClient, ctx: ActionContext, args: dict[str, Any]) -> Outcome:
    """Check the customer's code; on success keep the session token, never hand it on."""
    code = _digits(str(args.get("code") or ""))
    answer = await _check(backend, ctx.memory.get("verification_id"), code)
    if isinstance(answer, tuple):
        return answer
    token = answer.get("session_token")
    if not isinstance(token, str):
        return "error", {}
    ctx.memory["session_token"] = token
    ctx.memory["verified"] = True
    ctx.memory.pop("verification_id", None)
    profile = answer.get("profile")
    if isinstance(profile, dict):
        # For the step after this one, in the same update (see ``load_profile``).
        ctx.memory[FRESH_PROFILE] = profile
    customer = answer.get("customer")
    language = customer.get("language") if isinstance(customer, dict) else None
    return "verified", {"language": language}


async def load_profile(backend: BackendClient, ctx: ActionContext, args: dict[str, Any]) -> Outcome:
    """What the bank holds about the verified customer, masked.

    Right after a code check the check's answer carried it: no second round trip.
    """
    token = ctx.session_token
    if token is None:
        return "session_expired", {}
    fresh = ctx.memory.pop(FRESH_PROFILE, None)
    if isinstance(fresh, dict):
        return "ok", fresh
    try:
        return "ok", await backend.me(token, chat=ctx.chat)
    except BackendRefused as err:
        return _session_or_error(ctx, err)


def _session_or_error(ctx: ActionContext, err: BackendRefused) -> Outcome:
    if err.code == "session_expired":
        ctx.memory.pop("session_token", None)
        ctx.memory["verified"] = False
        return "session_expired", {}
    return "error", {}


async def start_contact_proof(
    backend: BackendClient, ctx: ActionContext, args: dict[str, Any]
) -> Outcome:
    """Send a code to a new phone or email, to prove the customer holds it."""
    token = ctx.session_token
    if token is None:
        return "session_expired", {}
    kind, value = str(args.get("kind") or ""), str(args.get("value") or "")
    try:
        answer = await backend.start_contact_proof(
            token, chat=ctx.chat, kind=kind, value=value, locale=ctx.locale
        )
    except BackendRefused as err:
        if err.code == "invalid":
            for reason in ("same_as_current", "email_unavailable"):
                if reason in err.fields.values():
                    return reason, {}
            return "invalid", {}
        return _session_or_error(ctx, err)
    ctx.memory["proof_verification_id"] = answer.get("verification_id")
    ctx.memory["pending"] = "proof"
    ctx.memory.pop("proof_token", None)
    return "sent", {"masked": answer.get("masked")}


async def check_proof_code(
    backend: BackendClient, ctx: ActionContext, args: dict[str, Any]
) -> Outcome:
    """Check the code sent to the new contact; on success keep the proof token."""
    code = _digits(str(args.get("code") or ""))
    answer = await _check(backend, ctx.memory.get("proof_verification_id"), code)
    if isinstance(answer, tuple):
        outcome, data = answer
        return ("too_many_attempts" if outcome == "locked_out" else outcome), data
    token = answer.get("proof_token")
    if not isinstance(token, str):
        return "error", {}
    ctx.memory["proof_token"] = token
    ctx.memory.pop("proof_verification_id", None)
    ctx.memory["pending"] = "verify"
    return "proved", {"proof_token": token, "masked": answer.get("masked")}


async def preview_erasure(
    backend: BackendClient, ctx: ActionContext, args: dict[str, Any]
) -> Outcome:
    """What an erasure of the chosen scope would erase and keep, with basis and end date."""
    token = ctx.session_token
    if token is None:
        return "session_expired", {}
    raw = args.get("scope") or ["all"]
    scope = [str(s) for s in (raw if isinstance(raw, list) else [raw]) if s]
    try:
        answer = await backend.erasure_preview(token, scope or ["all"], chat=ctx.chat)
    except BackendRefused as err:
        return _session_or_error(ctx, err)
    ctx.memory["preview_id"] = answer.get("preview_id")
    return "ok", answer


async def submit_request(
    backend: BackendClient, ctx: ActionContext, args: dict[str, Any]
) -> Outcome:
    """Submit a confirmed request once, however often confirm is pressed."""
    token = ctx.session_token
    if token is None:
        return "session_expired", {}
    kind = str(args.get("kind") or "")
    raw = args.get("payload")
    payload: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    # Dialogs may leave out what only this side remembers.
    if kind == UPDATE_CONTACT and payload.get("field") in PROVEN_CONTACT_KINDS:
        payload["proof_token"] = payload.get("proof_token") or ctx.memory.get("proof_token")
    if kind == ERASURE:
        payload["preview_id"] = payload.get("preview_id") or ctx.memory.get("preview_id")
    # The session is the flow instance: a new verification is a new instance.
    key = idempotency_key(ctx.chat, token, kind, payload)
    try:
        answer = await backend.submit_request(
            token, chat=ctx.chat, kind=kind, locale=ctx.locale, payload=payload, key=key
        )
    except BackendRefused as err:
        if err.code == "invalid":
            return "invalid", {"fields": err.fields}
        return _session_or_error(ctx, err)
    return "submitted", {
        "reference": answer.get("reference"),
        "due_date": answer.get("due_date"),
        "state": answer.get("state"),
    }


async def list_requests(
    backend: BackendClient, ctx: ActionContext, args: dict[str, Any]
) -> Outcome:
    """The verified customer's open requests with reference, state and due date."""
    token = ctx.session_token
    if token is None:
        return "session_expired", {}
    try:
        return "ok", {"requests": await backend.list_requests(token, chat=ctx.chat)}
    except BackendRefused as err:
        return _session_or_error(ctx, err)


async def request_copy(backend: BackendClient, ctx: ActionContext, args: dict[str, Any]) -> Outcome:
    """Ask for a copy of the verified customer's data; the documents follow the summary."""
    token = ctx.session_token
    if token is None:
        return "session_expired", {}
    # One request per verified session: a retry after a lost answer gets the same one.
    key = idempotency_key(ctx.chat, token, ACCESS, {})
    try:
        answer = await backend.request_copy(token, chat=ctx.chat, locale=ctx.locale, key=key)
    except BackendRefused as err:
        return _session_or_error(ctx, err)
    data = {
        "reference": answer.get("reference"),
        "due_date": answer.get("due_date"),
        "state": answer.get("state"),
    }
    if answer.get("state") != "done" or not isinstance(answer.get("copy"), dict):
        # The CRM cannot export, or could not be reached: the request failed and an agent
        # has it (the backend escalated the chat).
        return "unavailable", {**data, "reason": answer.get("reason")}
    ctx.copy = answer
    return "sent", {**data, "summary": answer.get("summary")}


ESCALATION_REASONS = ("asked", "lockout", "misunderstanding", "failed_request")


async def escalate(backend: BackendClient, ctx: ActionContext, args: dict[str, Any]) -> Outcome:
    """Put the chat in the agents' queue with why."""
    reason = str(args.get("reason") or "asked")
    if reason not in ESCALATION_REASONS:
        reason = "asked"
    try:
        answer = await backend.escalate(
            ctx.chat,
            reason=reason,
            locale=ctx.locale,
            verified=ctx.session_token is not None,
            session_token=ctx.session_token,
        )
    except BackendRefused:
        return "error", {}
    return "ok", {"escalation_id": answer.get("escalation_id")}


async def withdraw_escalation(
    backend: BackendClient, ctx: ActionContext, args: dict[str, Any]
) -> Outcome:
    """Take the chat out of the agents' queue: the customer no longer waits for a person."""
    try:
        await backend.withdraw_escalation(ctx.chat)
    except BackendRefused:
        return "error", {}
    return "ok", {}


async def forget_session(
    backend: BackendClient, ctx: ActionContext, args: dict[str, Any]
) -> Outcome:
    """/logout: drop the verified session and any code or proof under way from this chat."""
    for key in ("session_token", "verification_id", "proof_verification_id", "proof_token"):
        ctx.memory.pop(key, None)
    for key in ("pending", "preview_id"):
        ctx.memory.pop(key, None)
    ctx.memory["verified"] = False
    return "ok", {}


HANDLERS: dict[str, Handler] = {
    "start_verification": start_verification,
    "verification_channels": verification_channels,
    "resend_code": resend_code,
    "check_code": check_code,
    "load_profile": load_profile,
    "start_contact_proof": start_contact_proof,
    "check_proof_code": check_proof_code,
    "preview_erasure": preview_erasure,
    "submit_request": submit_request,
    "list_requests": list_requests,
    "request_copy": request_copy,
    "escalate": escalate,
    "withdraw_escalation": withdraw_escalation,
    "forget_session": forget_session,
}


async def run_action(
    backend: BackendClient, ctx: ActionContext, name: str, args: dict[str, Any]
) -> Outcome:
    """Carry out one named action; any failure is the outcome ``error``, never an exception."""
    handler = HANDLERS.get(name)
    if handler is None:
        log.error("chat %s: no handler for action %r", ctx.chat, name)
        return "error", {}
    try:
        return await handler(backend, ctx, args)
    except BackendUnavailable as exc:
        log.warning("chat %s: action %s: backend unavailable (%s)", ctx.chat, name, exc)
        return "error", {"backend": "unavailable"}
    except BackendError:
        return "error", {}
    except Exception:
        log.exception("chat %s: action %s failed", ctx.chat, name)
        return "error", {}
