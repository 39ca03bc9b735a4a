"""One-time codes: verifying a chat as a customer, and proving a new phone or email.

Limits (issue 2, ``docs/backend-api.md``): 6-digit codes from pyotp, valid
5 minutes; 5 checks per code; 30 s between codes of one challenge; at most 5
codes per rolling hour per chat and per customer, then ``locked_out`` with an
agent offered. A code is never stored: only ``keyring.mac(challenge_id,
code)``, compared in constant time. A successful check yields a session token
(15 minutes, one customer) or a proof token (15 minutes, redeemable once).

Anti-enumeration: a number that is not on file gets the same challenge row,
the same rate-limit rows and the same audit entry as a known one, and the
same answer; only the delivery differs, and delivery runs after the answer
(``Delivery`` handed to a background task), so timing does not tell either.
Per-customer limits key on ``subject``: ``mac("customer", ref)`` for a known
customer, ``mac("phone", e164)`` for a number not on file, so both lock out
alike.

What is kept, and for how long (``purge_spent``, run by ``datadesk purge`` and
the workers' daily purge; ``docs/operators.md``): a verified challenge has
served its purpose and goes at the next purge; an unverified one, an expired
session or proof, and a spent proof go ``GRACE`` (a day) after they expired or
were spent; a sent code's rate-limit row goes ``GRACE`` after the hour it
counts in. A day, because a customer who leaves a verification half done can
still ask for a new code on it later the same day, and an operator looking into
a complaint the same day still finds the rows; nothing here is needed after
that, and the audit log keeps what happened without the phone or email.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend import audit
from backend.codes import (
    CODE_TTL,
    MAX_CHECKS,
    PROOF_TTL,
    RESEND_AFTER,
    SESSION_TTL,
    WINDOW,
    Delivery,
    Started,
    deliver,
    lock_limits,
    locked_out,
    lockout_retry_after,
    mask_contact,
    new_code,
    seconds_until,
)
from backend.crypto import Keyring, constant_time_equal
from backend.errors import (
    ApiError,
    ConnectorError,
    Expired,
    Invalid,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    WrongCode,
)
from backend.metrics import VERIFICATIONS
from backend.models.verification import Challenge, CodeIssue, ContactProof, CustomerSession
from backend.services import Services
from backend.validation import (
    INVALID_CHAT,
    INVALID_EMAIL,
    INVALID_PHONE,
    SAME_AS_CURRENT,
    email_key,
    normalize_email,
    normalize_phone,
    valid_chat,
)
from common.vocabulary.contact_kinds import PROVEN_CONTACT_KINDS
from common.vocabulary.locales import SHIPPED_LOCALES
from common.vocabulary.verification_channels import VERIFICATION_CHANNELS

log = logging.getLogger(__name__)

__all__ = [
    "GRACE",
    "Verifier",
    "customer_for_session",
    "purge_spent",
    "purge_verification",
    "redeem_proof",
]

# How long verification rows outlive their purpose; see the module docstring.
GRACE = timedelta(days=1)


_CODE = re.compile(r"[0-9]{6}")


def typed_code(code: str) -> str:
    """A code as people type it (``123 456``, ``123-456``) in its plain form."""
    return "".join(c for c in code if c not in " -\t")


def audit_actor(chat: str | None, customer_ref: str | None) -> str:
    """Who acted, as the audit log's short actor field; ``data`` carries the full ids."""
    actor = f"chat:{chat}" if chat else f"customer:{customer_ref}"
    return actor if len(actor) <= 64 else actor.split(":", 1)[0]


async def customer_for_session(
    session: AsyncSession, keyring: Keyring, session_token: str, now: datetime, chat: str
) -> str | None:
    """The customer ref a session token is scoped to, or None when wrong, expired or not ``chat``'s.

    A session belongs to the chat it was issued in: the same token from any
    other chat is no session at all.
    """
    if not session_token or len(session_token) > 200:
        return None
    row = await session.get(CustomerSession, keyring.mac("session", session_token))
    if row is None or row.expires_at <= now or row.chat is None or row.chat != chat:
        return None
    return row.customer_ref


async def issued_session_customer(
    session: AsyncSession, keyring: Keyring, session_token: str, now: datetime
) -> str | None:
    """The customer of a session token this very request issued, whichever chat it is tied to."""
    row = await session.get(CustomerSession, keyring.mac("session", session_token))
    if row is None or row.expires_at <= now or row.chat is None:
        return None
    return await customer_for_session(session, keyring, session_token, now, row.chat)


async def redeem_proof(
    session: AsyncSession, keyring: Keyring, proof_token: str, customer_ref: str, now: datetime
) -> tuple[str, str]:
    """Spend a proof token of ``customer_ref``: (kind, value); else ``Invalid`` on proof_token.

    Runs in the caller's transaction, so the token is spent only if the request
    that carries it is stored.
    """
    invalid = Invalid({"proof_token": "invalid_proof"}, "proof token unknown, spent or expired")
    if not isinstance(proof_token, str) or not proof_token or len(proof_token) > 200:
        raise invalid
    token_mac = keyring.mac("proof", proof_token)
    spent = await session.execute(
        update(ContactProof)
        .where(
            ContactProof.token_mac == token_mac,
            ContactProof.customer_ref == customer_ref,
            ContactProof.redeemed_at.is_(None),
            ContactProof.expires_at > now,
        )
        .values(redeemed_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise invalid
    proof = await session.get(ContactProof, token_mac)
    assert proof is not None
    return proof.kind, proof.value


class Verifier:
    """The verification operations over the process's services; see the module docstring."""

    def __init__(self, services: Services) -> None:
        self._s = services

    def _now(self) -> datetime:
        return self._s.clock.now()

    async def start(
        self, chat: Any, phone: Any, channel: Any, locale: Any, shared_contact: bool
    ) -> Started:
        """Issue a code for ``phone`` to the customer on file, or pretend to when there is none."""
        fields = {}
        if valid_chat(chat) is None:
            fields["chat"] = INVALID_CHAT
        e164 = normalize_phone(phone)
        if e164 is None:
            fields["phone"] = INVALID_PHONE
        channel = channel or "sms"
        if channel not in VERIFICATION_CHANNELS:
            fields["channel"] = "invalid_channel"
        elif channel == "email" and self._s.mailer is None:
            fields["channel"] = "email_unavailable"
        if fields:
            raise Invalid(fields)
        assert e164 is not None
        try:
            ref = await self._s.crm.find_by_phone(e164)
        except ConnectorError as exc:
            raise ServiceUnavailable("the CRM is not reachable", code="crm_unavailable") from exc
        keyring = self._s.keyring
        subject = keyring.mac("customer", ref) if ref else keyring.mac("phone", e164)
        return await self._issue(
            purpose="customer",
            chat=chat,
            customer_ref=ref,
            subject=subject,
            channel=channel,
            locale=locale if locale in SHIPPED_LOCALES else "en",
            # Kept (encrypted) only for a customer on file, so a resend reaches the same phone.
            target_kind="phone",
            target=e164 if ref else None,
            template=f"{channel}_code",
            action="verification.start",
            extra={"shared_contact": bool(shared_contact)},
        )

    async def start_proof(self, customer_ref: str, kind: Any, value: Any, locale: Any) -> Started:
        """Issue a code to a new phone or email the verified customer wants on file."""
        if kind not in PROVEN_CONTACT_KINDS:
            raise Invalid({"kind": "invalid_kind"})
        normalized = normalize_phone(value) if kind == "phone" else normalize_email(value)
        if normalized is None:
            raise Invalid({"value": INVALID_PHONE if kind == "phone" else INVALID_EMAIL})
        if kind == "email" and self._s.mailer is None:
            raise Invalid({"value": "email_unavailable"})
        try:
            on_file = await self._s.crm.contact_on_file(customer_ref)
        except ConnectorError as exc:
            raise ServiceUnavailable("the CRM is not reachable", code="crm_unavailable") from exc
        current = on_file.phone if kind == "phone" else on_file.email
        if current is not None and email_key(current) == email_key(normalized):
            raise Invalid({"value": SAME_AS_CURRENT})
        channel = "sms" if kind == "phone" else "email"
        return await self._issue(
            purpose="proof",
            chat=None,
            customer_ref=customer_ref,
            subject=self._s.keyring.mac("customer", customer_ref),
            channel=channel,
            locale=locale if locale in SHIPPED_LOCALES else on_file.language,
            target_kind=kind,
            target=normalized,
            template=f"{channel}_proof_code",
            action="contact_proof.start",
            extra={"kind": kind},
            masked=mask_contact(kind, normalized),
        )

    async def _issue(
        self,
        *,
        purpose: str,
        chat: str | None,
        customer_ref: str | None,
        subject: str,
        channel: str,
        locale: str,
        target_kind: str | None,
        target: str | None,
        template: str,
        action: str,
        extra: dict[str, str | bool],
        masked: str | None = None,
    ) -> Started:
        now = self._now()
        vid = "vf_" + secrets.token_urlsafe(18)
        code = new_code()
        async with self._s.sessions() as session, session.begin():
            await lock_limits(session, [chat, subject])
            wait = await lockout_retry_after(session, chat, subject, now)
            outcome = "locked_out" if wait is not None else "sent"
            if wait is None:
                session.add(
                    Challenge(
                        id=vid,
                        purpose=purpose,
                        chat=chat,
                        customer_ref=customer_ref,
                        subject=subject,
                        channel=channel,
                        target_kind=target_kind,
                        target=target,
                        locale=locale,
                        code_mac=self._s.keyring.mac(vid, code),
                        attempts=0,
                        sent_at=now,
                        expires_at=now + timedelta(seconds=CODE_TTL),
                        verified_at=None,
                        created_at=now,
                    )
                )
                session.add(CodeIssue(challenge_id=vid, chat=chat, subject=subject, issued_at=now))
            await audit.record(
                session,
                action=action,
                actor=audit_actor(chat, customer_ref),
                subject=vid if wait is None else None,
                outcome=outcome,
                data={"chat": chat, "customer": customer_ref, "channel": channel, **extra},
                at=now,
            )
        VERIFICATIONS.labels(step=action, outcome=outcome).inc()
        if wait is not None:
            raise locked_out(wait)
        delivery = None
        if customer_ref is not None:
            delivery = Delivery(
                reference=vid,
                channel=channel,
                locale=locale,
                template=template,
                code=code,
                customer_ref=customer_ref,
                to=target if purpose == "proof" or channel == "sms" else None,
            )
        return Started(vid, channel, delivery, masked)

    async def resend(self, vid: str, locale: Any) -> Started:
        """A new code for the same challenge, after the cooldown and within the hourly limits."""
        now = self._now()
        code = new_code()
        async with self._s.sessions() as session, session.begin():
            await lock_limits(session, [])
            challenge = (
                await session.execute(
                    select(Challenge).where(Challenge.id == vid).with_for_update()
                )
            ).scalar_one_or_none()
            if challenge is None or challenge.verified_at is not None:
                raise NotFound("no such verification", code="not_found")
            await lock_limits(session, [challenge.chat, challenge.subject])
            if locale in SHIPPED_LOCALES:
                challenge.locale = locale
            ready_at = challenge.sent_at + timedelta(seconds=RESEND_AFTER)
            wait = await lockout_retry_after(session, challenge.chat, challenge.subject, now)
            outcome = "sent"
            if now < ready_at:
                outcome = "resend_cooldown"
            elif wait is not None:
                outcome = "locked_out"
            else:
                challenge.code_mac = self._s.keyring.mac(vid, code)
                challenge.sent_at = now
                challenge.expires_at = now + timedelta(seconds=CODE_TTL)
                challenge.attempts = 0
                session.add(
                    CodeIssue(
                        challenge_id=vid,
                        chat=challenge.chat,
                        subject=challenge.subject,
                        issued_at=now,
                    )
                )
            await audit.record(
                session,
                action="verification.resend",
                actor=audit_actor(challenge.chat, challenge.customer_ref),
                subject=vid,
                outcome=outcome,
                data={
                    "chat": challenge.chat,
                    "customer": challenge.customer_ref,
                    "channel": challenge.channel,
                },
                at=now,
            )
        VERIFICATIONS.labels(step="verification.resend", outcome=outcome).inc()
        if outcome == "resend_cooldown":
            raise TooManyRequests(
                "a code was sent less than 30 s ago",
                code="resend_cooldown",
                details={"retry_after": seconds_until(ready_at - now)},
            )
        if wait is not None:
            raise locked_out(wait)
        masked = None
        if challenge.purpose == "proof" and challenge.target is not None:
            masked = mask_contact(challenge.target_kind, challenge.target)
        delivery = None
        if challenge.customer_ref is not None:
            prefix = (
                f"{challenge.channel}_proof" if challenge.purpose == "proof" else challenge.channel
            )
            delivery = Delivery(
                reference=vid,
                channel=challenge.channel,
                locale=challenge.locale,
                template=f"{prefix}_code",
                code=code,
                customer_ref=challenge.customer_ref,
                to=challenge.target
                if challenge.purpose == "proof" or challenge.channel == "sms"
                else None,
            )
        return Started(vid, challenge.channel, delivery, masked)

    async def check(self, vid: str, code: Any) -> dict[str, Any]:
        """Check a code: a session or proof token, or the error that says why not.

        Something that is not 6 digits (once spaces and dashes are dropped) is
        ``invalid_code`` and spends no attempt: it cannot be anyone's code.
        """
        if not isinstance(code, str) or len(code) > 32 or not _CODE.fullmatch(typed_code(code)):
            raise Invalid({"code": "invalid_code"})
        now = self._now()
        keyring = self._s.keyring
        async with self._s.sessions() as session, session.begin():
            challenge = await session.get(Challenge, vid)
            if challenge is None or challenge.verified_at is not None:
                raise NotFound("no such verification", code="not_found")
            error: ApiError | None = None
            body: dict[str, Any] = {}
            if now >= challenge.expires_at:
                outcome = "expired"
                error = Expired("the code has expired")
            else:
                # One atomic step both counts the attempt and refuses a spent code.
                counted = await session.execute(
                    update(Challenge)
                    .where(Challenge.id == vid, Challenge.attempts < MAX_CHECKS)
                    .values(attempts=Challenge.attempts + 1)
                    .returning(Challenge.attempts)
                )
                attempts = counted.scalar_one_or_none()
                if attempts is None:
                    wait = await lockout_retry_after(
                        session, challenge.chat, challenge.subject, now
                    )
                    outcome = "locked_out" if wait is not None else "too_many_attempts"
                    error = (
                        locked_out(wait)
                        if wait is not None
                        else TooManyRequests("this code is spent", code="too_many_attempts")
                    )
                elif (
                    constant_time_equal(keyring.mac(vid, typed_code(code)), challenge.code_mac)
                    and challenge.customer_ref is not None
                ):
                    outcome = "verified"
                    challenge.verified_at = now
                    body = await self._grant(session, challenge, now)
                else:
                    outcome = "wrong_code"
                    error = WrongCode(
                        "wrong code", details={"attempts_left": MAX_CHECKS - attempts}
                    )
            await audit.record(
                session,
                action="verification.check",
                actor=audit_actor(challenge.chat, challenge.customer_ref),
                subject=vid,
                outcome=outcome,
                data={
                    "chat": challenge.chat,
                    "customer": challenge.customer_ref,
                    "purpose": challenge.purpose,
                },
                at=now,
            )
        VERIFICATIONS.labels(step="verification.check", outcome=outcome).inc()
        if error is not None:
            raise error
        if challenge.purpose == "customer":
            assert challenge.customer_ref is not None
            try:
                language = (await self._s.crm.contact_on_file(challenge.customer_ref)).language
            except ConnectorError:
                language = challenge.locale
            body["customer"] = {"language": language}
        return body

    async def _grant(
        self, session: AsyncSession, challenge: Challenge, now: datetime
    ) -> dict[str, Any]:
        """Store the token a correct code earns; return the answer's body."""
        assert challenge.customer_ref is not None
        token = secrets.token_urlsafe(32)
        if challenge.purpose == "customer":
            session.add(
                CustomerSession(
                    token_mac=self._s.keyring.mac("session", token),
                    customer_ref=challenge.customer_ref,
                    chat=challenge.chat,
                    challenge_id=challenge.id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=SESSION_TTL),
                )
            )
            return {"session_token": token, "expires_in": SESSION_TTL}
        assert challenge.target is not None
        assert challenge.target_kind is not None
        session.add(
            ContactProof(
                token_mac=self._s.keyring.mac("proof", token),
                customer_ref=challenge.customer_ref,
                kind=challenge.target_kind,
                value=challenge.target,
                challenge_id=challenge.id,
                created_at=now,
                expires_at=now + timedelta(seconds=PROOF_TTL),
                redeemed_at=None,
            )
        )
        masked = mask_contact(challenge.target_kind, challenge.target)
        return {"proof_token": token, "kind": challenge.target_kind, "masked": masked}

    async def deliver(self, delivery: Delivery) -> None:
        """Send a code; failures are logged with the reference only, never raised."""
        await deliver(self._s, delivery)


async def purge_spent(session: AsyncSession, now: datetime) -> dict[str, int]:
    """Delete verification rows whose purpose is over (module docstring); rows deleted per table.

    Runs in the caller's transaction (the caller commits).
    """
    before = now - GRACE
    statements = {
        "challenges": delete(Challenge).where(
            or_(Challenge.verified_at.is_not(None), Challenge.expires_at < before)
        ),
        "code_issues": delete(CodeIssue).where(CodeIssue.issued_at < before - WINDOW),
        "sessions": delete(CustomerSession).where(CustomerSession.expires_at < before),
        "proofs": delete(ContactProof).where(
            or_(ContactProof.expires_at < before, ContactProof.redeemed_at < before)
        ),
    }
    deleted = {}
    for table, statement in statements.items():
        result = await session.execute(statement)
        deleted[table] = int(getattr(result, "rowcount", 0) or 0)
    return deleted


async def purge_verification(services: Services) -> int:
    """``purge_spent`` in its own transaction, audited when it deleted anything; rows deleted."""
    now = services.clock.now()
    async with services.sessions() as session, session.begin():
        deleted = await purge_spent(session, now)
        total = sum(deleted.values())
        if total:
            await audit.record(
                session,
                action="verification_purged",
                actor="system:purge",
                data=deleted,
                at=now,
            )
    log.info("purge: %d verification rows deleted", total)
    return total
