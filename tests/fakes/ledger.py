"""Helpers for the ledger, worker, retention and notification tests: customers, tokens, a CRM.

Customers go into the real built-in CRM through its importer; session and proof
tokens are written as verification would write them after a correct code, so
these tests need not replay the code exchange that the verification tests cover.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from backend.crm import importer
from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import Address
from backend.errors import ConnectorError
from backend.models.verification import ContactProof, CustomerSession
from backend.services import Services

if TYPE_CHECKING:
    from conftest import LiveBackend


def customer(
    ref: str,
    *,
    products: list[dict[str, Any]] | None = None,
    transactions: list[dict[str, Any]] | None = None,
    phone: str = "+37120000001",
) -> dict[str, Any]:
    """A customer in the CRM JSON shape, with an open current account unless told otherwise."""
    if products is None:
        products = [
            {
                "kind": "current_account",
                "id": "LV80BANK0000435195001",
                "opened": "2015-03-01",
                "closed": None,
            }
        ]
    return {
        "ref": ref,
        "name": "Test Customer",
        "language": "en",
        "phones": [{"number": phone, "primary": True}],
        "emails": [{"address": f"{ref.lower()}@example.lv", "primary": True}],
        "address": {
            "line1": "Brīvības iela 1",
            "city": "Rīga",
            "postcode": "LV-1010",
            "country": "LV",
        },
        "marketing": {"email": True, "sms": True, "phone": True, "post": True},
        "products": products,
        "transactions": transactions if transactions is not None else [],
        "documents": [{"kind": "passport_copy", "collected": "2015-03-01"}],
    }


async def add_customers(services: Services, *customers: dict[str, Any]) -> None:
    """Import customers into the built-in CRM, failing loudly on a bad fixture."""
    valid, problems = importer.validate({"customers": list(customers)})
    assert not problems, problems
    await importer.apply(services.sessions, valid, services.clock)


# The chat each session token was issued in: the backend refuses a token from any other.
SESSION_CHATS: dict[str, str] = {}


def session_headers(token: str) -> dict[str, str]:
    """The headers that carry a session: the token and the chat it was issued in."""
    return {"X-Customer-Session": token, "X-Customer-Chat": SESSION_CHATS.get(token, "tg:42")}


async def session_token(services: Services, ref: str, chat: str = "tg:42") -> str:
    """A customer session token for ``ref`` in ``chat``, valid 15 minutes from the clock's now."""
    token = secrets.token_urlsafe(32)
    SESSION_CHATS[token] = chat
    now = services.clock.now()
    async with services.sessions() as session:
        session.add(
            CustomerSession(
                token_mac=services.keyring.mac("session", token),
                customer_ref=ref,
                chat=chat,
                challenge_id="vf_test",
                created_at=now,
                expires_at=now + timedelta(minutes=15),
            )
        )
        await session.commit()
    return token


async def proof_token(services: Services, ref: str, kind: str, value: str) -> str:
    """A proof that ``ref`` controls the new phone or email ``value``."""
    token = secrets.token_urlsafe(32)
    now = services.clock.now()
    async with services.sessions() as session:
        session.add(
            ContactProof(
                token_mac=services.keyring.mac("proof", token),
                customer_ref=ref,
                kind=kind,
                value=value,
                challenge_id="vf_test",
                created_at=now,
                expires_at=now + timedelta(minutes=15),
                redeemed_at=None,
            )
        )
        await session.commit()
    return token


async def submit(
    backend: LiveBackend,
    token: str,
    kind: str,
    payload: dict[str, Any],
    *,
    key: str | None = None,
    chat: str | None = None,
    locale: str = "lv",
) -> tuple[int, dict[str, Any]]:
    """POST a request (for the session's chat unless ``chat`` says otherwise); status and JSON."""
    chat = chat or SESSION_CHATS.get(token, "tg:42")
    async with backend.client.post(
        backend.api("/api/v1/requests"),
        json={"kind": kind, "chat": chat, "locale": locale, "payload": payload},
        headers={**session_headers(token), "Idempotency-Key": key or uuid.uuid4().hex},
    ) as response:
        return response.status, await response.json()


async def preview(backend: LiveBackend, token: str, scope: list[str]) -> tuple[int, dict[str, Any]]:
    """POST an erasure preview; return the status and the JSON body."""
    async with backend.client.post(
        backend.api("/api/v1/erasure-preview"),
        json={"scope": scope},
        headers=session_headers(token),
    ) as response:
        return response.status, await response.json()


class FlakyCrm(BuiltinCrm):
    """The built-in CRM, unreachable for the first ``failures`` address updates."""

    def __init__(self, *args: object, failures: int) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.failures = failures
        self.calls = 0

    async def update_address(self, ref: str, address: Address, *, idempotency_key: str) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectorError("CRM timed out")
        await super().update_address(ref, address, idempotency_key=idempotency_key)
