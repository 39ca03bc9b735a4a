"""The worker carries out exactly the previewed erasure plan, and the purge ends holds on time."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from conftest import LiveBackend
from fakes.ledger import FlakyCrm, add_customers, customer, preview, session_token, submit
from sqlalchemy import select, update

from backend.crm.builtin import BuiltinCrm
from backend.errors import Conflict
from backend.ledger import interventions
from backend.ledger.previews import mask_product_id
from backend.ledger.purge import (
    drop_failed_payloads,
    drop_stale_previews,
    purge_daily,
    purge_once,
)
from backend.ledger.worker import run_one
from backend.models.audit import AuditEntry
from backend.models.crm import ProductRow
from backend.models.ledger import ErasurePreview, Notification, Request
from backend.retention import purge_command
from common.clock import FakeClock
from common.vocabulary.categories import Category

OPEN = [
    {
        "kind": "current_account",
        "id": "LV80BANK0000435195001",
        "opened": "2015-03-01",
        "closed": None,
    },
    {"kind": "loan", "id": "L-77", "opened": "2020-01-10", "closed": "2024-06-30"},
]
CLOSED = [{"kind": "loan", "id": "L-77", "opened": "2020-01-10", "closed": "2024-06-30"}]
TRANSACTIONS = [{"date": "2024-05-02", "amount": "-12.50", "currency": "EUR", "product": "L-77"}]


def _expected(
    shown: dict[str, Any],
) -> tuple[set[str], set[tuple[str, str, str | None, str | None]]]:
    erased = {c["category"] for c in shown["categories"] if c["action"] == "erase"}
    kept = {
        (c["category"], c["basis"], c["until"], c.get("while_open", {}).get("masked"))
        for c in shown["categories"]
        if c["action"] == "keep"
    }
    return erased, kept


@pytest.mark.parametrize("jurisdiction", ["EU-LV", "CN"])
@pytest.mark.parametrize(
    ("products", "scope"),
    [
        (OPEN, ["all"]),
        (CLOSED, ["all"]),
        (OPEN, ["marketing", "identity"]),
        (CLOSED, ["contact", "transactions"]),
    ],
)
async def test_the_erasure_carried_out_is_the_one_previewed(
    backend: LiveBackend, jurisdiction: str, products: list[dict[str, Any]], scope: list[str]
) -> None:
    backend.services.settings = replace(backend.services.settings, jurisdiction=jurisdiction)
    await add_customers(
        backend.services, customer("C-1", products=products, transactions=TRANSACTIONS)
    )
    token = await session_token(backend.services, "C-1")
    status, shown = await preview(backend, token, scope)
    assert status == 201, shown
    assert shown["jurisdiction"] == jurisdiction
    _, body = await submit(backend, token, "erasure", {"preview_id": shown["preview_id"]})
    crm = BuiltinCrm(backend.services.sessions, backend.services.clock)
    assert await run_one(backend.services, crm, "w1") is True
    record = await crm.get("C-1")
    assert record is not None
    erased, kept = _expected(shown)
    assert set(record.erased_categories) == erased
    assert {
        (
            h.category,
            h.basis,
            h.until.isoformat() if h.until else None,
            mask_product_id(h.while_open) if h.while_open else None,
        )
        for h in record.holds
    } == kept
    async with backend.services.sessions() as session:
        told = (await session.execute(select(Notification))).scalar_one()
    assert told.reference == body["reference"]
    assert told.outcome == ("partly_done" if kept else "done")


async def test_an_erasure_preview_is_used_once(backend: LiveBackend) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    _, shown = await preview(backend, token, ["marketing"])
    first, _ = await submit(backend, token, "erasure", {"preview_id": shown["preview_id"]})
    second, body = await submit(backend, token, "erasure", {"preview_id": shown["preview_id"]})
    assert (first, second) == (201, 422)
    assert body["error"]["fields"] == {"preview_id": "preview_used"}


async def test_another_customers_preview_cannot_be_carried_out(backend: LiveBackend) -> None:
    await add_customers(backend.services, customer("C-1"), customer("C-2", phone="+37120000002"))
    _, shown = await preview(backend, await session_token(backend.services, "C-1"), ["all"])
    status, body = await submit(
        backend,
        await session_token(backend.services, "C-2"),
        "erasure",
        {"preview_id": shown["preview_id"]},
    )
    assert (status, body["error"]["fields"]) == (422, {"preview_id": "unknown_preview"})


async def test_held_identity_data_is_purged_the_day_after_its_hold_ends(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(
        backend.services, customer("C-1", products=CLOSED, transactions=TRANSACTIONS)
    )
    token = await session_token(backend.services, "C-1")
    _, shown = await preview(backend, token, ["identity"])
    assert shown["categories"] == [
        {"category": "identity", "action": "keep", "basis": "eu_aml_records", "until": "2029-06-30"}
    ]
    await submit(backend, token, "erasure", {"preview_id": shown["preview_id"]})
    crm = BuiltinCrm(backend.services.sessions, clock)
    await run_one(backend.services, crm, "w1")
    clock.set(clock.now().replace(year=2029, month=6, day=30))
    assert await purge_once(backend.services, crm) == []
    clock.set(clock.now().replace(day=1, month=7))
    assert await purge_once(backend.services, crm) == [("C-1", "identity")]
    record = await crm.get("C-1")
    assert record is not None
    assert "identity" in record.erased_categories
    assert record.holds == ()
    async with backend.services.sessions() as session:
        purged = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "hold_purged"))
        ).scalar_one()
    assert (purged.subject, purged.data) == ("C-1", '{"category":"identity"}')


async def test_the_purge_command_reports_how_much_it_erased(
    backend: LiveBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    status = await asyncio.to_thread(purge_command, argparse.Namespace(), backend.services.settings)
    assert status == 0
    assert capsys.readouterr().out == (
        "purge: 0 held categories erased\npurge: 0 spent verification rows deleted\n"
    )


def test_product_ids_are_masked_the_way_customers_recognise_them() -> None:
    assert mask_product_id("LV80BANK0000435195001") == "LV80 •••• 5001"
    assert mask_product_id("411111••••••1111").endswith("1111")
    assert mask_product_id("L-77") == "••••"


async def test_when_the_open_account_closes_its_holds_get_statutory_end_dates(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1", products=OPEN, transactions=TRANSACTIONS))
    token = await session_token(backend.services, "C-1")
    _, shown = await preview(backend, token, ["all"])
    await submit(backend, token, "erasure", {"preview_id": shown["preview_id"]})
    crm = BuiltinCrm(backend.services.sessions, clock)
    await run_one(backend.services, crm, "w1")
    before = await crm.get("C-1")
    assert before is not None
    assert {h.category for h in before.holds if h.while_open} == {
        "contact",
        "identity",
        "products",
        "transactions",
    }
    async with backend.services.sessions() as session:
        await session.execute(
            update(ProductRow).where(ProductRow.closed.is_(None)).values(closed=date(2026, 12, 1))
        )
        await session.commit()
    clock.set(clock.now().replace(month=12, day=2))
    await purge_once(backend.services, crm)
    after = await crm.get("C-1")
    assert after is not None
    assert {(h.category, h.basis, h.until, h.while_open) for h in after.holds} == {
        ("identity", "eu_aml_records", date(2031, 12, 1), None),
        ("products", "lv_accounting_registers", date(2036, 12, 1), None),
        ("transactions", "lv_accounting_registers", date(2034, 5, 2), None),
    }
    assert "contact" in after.erased_categories


async def test_a_worker_runs_the_purge_when_it_starts(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(
        backend.services, customer("C-1", products=CLOSED, transactions=TRANSACTIONS)
    )
    token = await session_token(backend.services, "C-1")
    _, shown = await preview(backend, token, ["identity"])
    await submit(backend, token, "erasure", {"preview_id": shown["preview_id"]})
    stop = asyncio.Event()

    class StopAfterPurge(BuiltinCrm):
        async def purge_expired_holds(self, today: date) -> list[tuple[str, Category]]:
            try:
                return await super().purge_expired_holds(today)
            finally:
                stop.set()

    crm = StopAfterPurge(backend.services.sessions, clock)
    await run_one(backend.services, crm, "w1")
    clock.set(clock.now().replace(year=2030))
    await asyncio.wait_for(purge_daily(backend.services, crm, stop), timeout=30)
    record = await crm.get("C-1")
    assert record is not None
    assert "identity" in record.erased_categories


async def test_an_unused_preview_is_dropped_a_day_later_and_a_used_one_kept(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    _, unused = await preview(backend, token, ["all"])
    _, used = await preview(backend, token, ["marketing"])
    await submit(backend, token, "erasure", {"preview_id": used["preview_id"]})
    clock.advance(hours=23)
    assert await drop_stale_previews(backend.services) == 0
    clock.advance(hours=2)
    assert await drop_stale_previews(backend.services) == 1
    async with backend.services.sessions() as session:
        left = (await session.execute(select(ErasurePreview.id))).scalars().all()
    assert left == [used["preview_id"]]
    assert unused["preview_id"] not in left


async def test_a_failed_request_keeps_its_details_for_a_retry_then_loses_them(
    backend: LiveBackend, clock: FakeClock
) -> None:
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    address = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
    _, body = await submit(
        backend, token, "update_contact", {"field": "address", "address": address}
    )
    crm = FlakyCrm(backend.services.sessions, backend.services.clock, failures=100)
    for _ in range(5):
        await run_one(backend.services, crm, "w1")
        clock.advance(hours=2)
    clock.advance(days=29)
    assert await drop_failed_payloads(backend.services) == 0
    async with backend.services.sessions() as session:
        row = (await session.execute(select(Request))).scalar_one()
    assert (row.state, json.loads(row.payload)["address"]["city"]) == ("failed", "Rīga")

    clock.advance(days=1)
    assert await drop_failed_payloads(backend.services) == 1
    assert await drop_failed_payloads(backend.services) == 0
    async with backend.services.sessions() as session:
        row = (await session.execute(select(Request))).scalar_one()
        purged = (
            await session.scalars(
                select(AuditEntry.subject).where(AuditEntry.action == "request_details_purged")
            )
        ).all()
    assert (row.state, row.payload) == ("failed", "{}")
    assert purged == [body["reference"]]
    # The console's retry now says there is nothing left to carry out.
    async with backend.services.sessions() as session:
        with pytest.raises(Conflict) as refused:
            await interventions.retry(
                session, body["reference"], actor="agent:s", reason="customer asked", at=clock.now()
            )
    assert refused.value.code == "payload_gone"
