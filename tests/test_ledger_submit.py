"""Submitting requests over HTTP: references, due dates, idempotency, bad input, review."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace

from conftest import LiveBackend
from fakes.ledger import (
    add_customers,
    customer,
    preview,
    proof_token,
    session_headers,
    session_token,
    submit,
)
from sqlalchemy import func, select

from backend import ledger
from backend.crm.builtin import BuiltinCrm
from backend.ledger.worker import run_one
from backend.models.audit import AuditEntry
from backend.models.ledger import Notification, Request
from common.clock import FakeClock


async def _count(backend: LiveBackend, model: type) -> int:
    async with backend.services.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_a_submitted_request_gets_a_reference_and_a_one_month_due_date(
    backend: LiveBackend,
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    status, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": address}
    )
    assert status == 201, body
    assert re.fullmatch(r"DD-[0-9A-HJKMNP-TV-Z]{6}", body["reference"])
    assert body == {
        "reference": body["reference"],
        "kind": "update_contact",
        "state": "queued",
        "due_date": "2026-12-22",
        "received_at": "2026-11-22T12:00:00Z",
    }


async def test_a_retried_submit_answers_the_same_and_makes_one_request(
    backend: LiveBackend,
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    proof = await proof_token(backend.services, "C-1", "email", "new@example.lv")
    payload = {"field": "email", "proof_token": proof}
    first = await submit(backend, token, "update_contact", payload, key="k-1")
    again = await submit(backend, token, "update_contact", payload, key="k-1")
    assert first[0] == 201
    assert again[0] == 200
    assert again[1] == first[1]
    assert await _count(backend, Request) == 1


async def test_the_same_key_with_a_different_body_is_refused(backend: LiveBackend) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    await submit(backend, token, "marketing_opt_out", {"channels": ["sms"]}, key="k-2")
    status, body = await submit(
        backend, token, "marketing_opt_out", {"channels": ["email"]}, key="k-2"
    )
    assert status == 409
    assert body["error"]["code"] == "idempotency_mismatch"
    assert await _count(backend, Request) == 1


async def test_an_opt_out_is_applied_before_the_answer_and_reported_done(
    backend: LiveBackend,
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    status, body = await submit(backend, token, "marketing_opt_out", {"channels": ["all"]})
    assert status == 201
    assert body["state"] == "done"
    record = await BuiltinCrm(backend.services.sessions, backend.services.clock).get("C-1")
    assert record is not None
    assert record.marketing == {"email": False, "sms": False, "phone": False, "post": False}
    async with backend.services.sessions() as session:
        outcome = (await session.execute(select(Notification))).scalar_one()
        actions = (
            (await session.execute(select(AuditEntry.action).order_by(AuditEntry.id)))
            .scalars()
            .all()
        )
    assert (outcome.reference, outcome.outcome, outcome.chat) == (
        body["reference"],
        "done",
        "tg:42",
    )
    assert list(actions) == ["request_submitted", "request_done"]


async def test_an_unknown_kind_is_a_400_and_stores_nothing(backend: LiveBackend) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    status, body = await submit(backend, token, "close_account", {})
    assert (status, body["error"]["code"]) == (400, "unknown_kind")
    assert await _count(backend, Request) == 0


async def test_invalid_fields_are_named_one_code_each(backend: LiveBackend) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    status, body = await submit(
        backend,
        token,
        "update_contact",
        {
            "field": "address",
            "address": {"line1": "", "city": "Rīga", "postcode": "??", "country": "LV"},
        },
    )
    assert status == 422
    assert body["error"]["fields"] == {"line1": "invalid_address", "postcode": "invalid_address"}
    status, body = await submit(
        backend, token, "update_contact", {"field": "phone", "proof_token": "forged"}
    )
    assert (status, body["error"]["fields"]) == (422, {"proof_token": "invalid_proof"})
    status, body = await submit(backend, token, "marketing_opt_out", {"channels": ["pigeon"]})
    assert (status, body["error"]["fields"]) == (422, {"channels": "invalid_channels"})
    status, body = await submit(backend, token, "erasure", {"preview_id": "pv_nope"})
    assert (status, body["error"]["fields"]) == (422, {"preview_id": "unknown_preview"})
    assert await _count(backend, Request) == 0


async def test_a_missing_key_an_expired_session_and_no_token_are_refused(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    url = backend.api("/api/v1/requests")
    body = {
        "kind": "marketing_opt_out",
        "chat": "tg:42",
        "locale": "lv",
        "payload": {"channels": ["sms"]},
    }
    async with backend.client.post(
        url, json=body, headers={"X-Customer-Session": token, "X-Customer-Chat": "tg:42"}
    ) as r:
        assert (r.status, (await r.json())["error"]["code"]) == (400, "missing_idempotency_key")
    async with backend.client.post(
        url,
        json=body,
        headers={
            "X-Customer-Session": token,
            "X-Customer-Chat": "tg:42",
            "Idempotency-Key": "k",
            "Authorization": "Bearer wrong",
        },
    ) as r:
        assert (r.status, (await r.json())["error"]["code"]) == (401, "unauthorized")
    clock.advance(minutes=16)
    status, answer = await submit(backend, token, "marketing_opt_out", {"channels": ["sms"]})
    assert (status, answer["error"]["code"]) == (401, "session_expired")
    assert await _count(backend, Request) == 0


async def test_an_oversized_body_is_a_413_and_the_backend_keeps_serving(
    backend: LiveBackend,
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    huge = {
        "kind": "marketing_opt_out",
        "chat": "tg:42",
        "locale": "lv",
        "payload": {"pad": "x" * 70_000},
    }
    headers = {"X-Customer-Session": token, "X-Customer-Chat": "tg:42", "Idempotency-Key": "big"}
    async with backend.client.post(
        backend.api("/api/v1/requests"), data=json.dumps(huge), headers=headers
    ) as r:
        assert (r.status, (await r.json())["error"]["code"]) == (413, "payload_too_large")
    status, _ = await submit(backend, token, "marketing_opt_out", {"channels": ["sms"]})
    assert status == 201


async def test_status_lists_the_requests_of_the_year_newest_first_finished_ones_with_their_date(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    _, first = await submit(
        backend, token, "update_contact", {"field": "address", "address": address}
    )
    clock.advance(days=1)
    token = await session_token(backend.services, "C-1")
    _, done = await submit(backend, token, "marketing_opt_out", {"channels": ["post"]})
    _, second = await submit(
        backend,
        token,
        "update_contact",
        {"field": "address", "address": address | {"line1": "Cits 3"}},
    )
    async with backend.client.get(
        backend.api("/api/v1/requests"), params={"chat": "tg:42"}, headers=session_headers(token)
    ) as r:
        listed = (await r.json())["requests"]
    assert [(x["reference"], x["due_date"], x["finished_at"]) for x in listed] == [
        (second["reference"], "2026-12-23", None),
        (done["reference"], "2026-12-23", "2026-11-23T12:00:00Z"),
        (first["reference"], "2026-12-22", None),
    ]
    assert listed[1]["state"] == "done"
    # A year on, they are no longer "the last 12 months".
    clock.advance(days=367)
    token = await session_token(backend.services, "C-1")
    async with backend.client.get(
        backend.api("/api/v1/requests"), params={"chat": "tg:42"}, headers=session_headers(token)
    ) as r:
        assert (await r.json())["requests"] == []


async def test_a_review_kind_waits_and_a_rejection_reaches_the_customer(
    backend: LiveBackend,
) -> None:
    backend.services.settings = replace(
        backend.services.settings, review_kinds=frozenset({"erasure"})
    )
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    _, shown = await preview(backend, token, ["marketing"])
    status, body = await submit(backend, token, "erasure", {"preview_id": shown["preview_id"]})
    assert (status, body["state"]) == (201, "awaiting_review")
    async with backend.services.sessions() as session:
        waiting = await ledger.awaiting_review(session)
        assert [(w.reference, w.preview["categories"]) for w in waiting] == [
            (body["reference"], [{"category": "marketing", "action": "erase"}])
        ]
        await ledger.reject(
            session,
            body["reference"],
            agent="agent:7",
            reason_code="duplicate",
            at=backend.services.clock.now(),
        )
        await session.commit()
        told = (await session.execute(select(Notification))).scalar_one()
        state = (await session.execute(select(Request.state))).scalar_one()
    assert (told.outcome, told.reason) == ("rejected", "review_rejected:duplicate")
    assert state == "rejected"


async def test_simultaneous_retries_of_one_submit_make_one_request(backend: LiveBackend) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    payload = {"field": "address", "address": address}
    answers = await asyncio.gather(
        *(submit(backend, token, "update_contact", payload, key="same") for _ in range(6))
    )
    assert sorted(status for status, _ in answers) == [200, 200, 200, 200, 200, 201]
    assert len({body["reference"] for _, body in answers}) == 1
    assert await _count(backend, Request) == 1


async def test_an_approved_request_joins_the_queue_and_is_carried_out(backend: LiveBackend) -> None:
    backend.services.settings = replace(
        backend.services.settings, review_kinds=frozenset({"update_contact"})
    )
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    _, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": address}
    )
    crm = backend.services.crm
    assert await run_one(backend.services, crm, "w1") is False  # held for review
    async with backend.services.sessions() as session:
        [waiting] = await ledger.awaiting_review(session)
        assert waiting.preview["new"]["line1"] == "E••••••••• i••• •"
        await ledger.approve(
            session, body["reference"], agent="agent:7", at=backend.services.clock.now()
        )
        await session.commit()
    assert await run_one(backend.services, crm, "w1") is True
    async with backend.services.sessions() as session:
        state = (await session.execute(select(Request.state))).scalar_one()
        actions = (
            (await session.execute(select(AuditEntry.action).order_by(AuditEntry.id)))
            .scalars()
            .all()
        )
    assert state == "done"
    assert list(actions) == [
        "request_submitted",
        "request_approved",
        "request_claimed",
        "request_done",
    ]
