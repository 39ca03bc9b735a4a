"""The built-in CRM's batch changes leave the records its one-at-a-time methods leave."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.ledger import add_customers, customer

from backend.crm import builtin_bulk
from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import Address
from backend.services import Services

NEW_ADDRESS = Address(
    line1="Elizabetes iela 2", line2=None, city="Rīga", postcode="LV-1010", country="LV"
)


def _with_secondary(ref: str, phone: str) -> dict[str, Any]:
    record = customer(ref, phone=phone)
    record["emails"][0]["address"] = "old@example.lv"
    # A secondary phone and email that the change makes primary.
    record["phones"].append({"number": "+37129990000", "primary": False})
    record["emails"].append({"address": "new@example.lv", "primary": False})
    record["marketing"] = {"email": True, "sms": True, "phone": True, "post": True}
    return record


CHANGES: list[tuple[builtin_bulk.Operation, Any]] = [
    ("update_phone", "+37129990000"),
    ("update_phone", "+37129990001"),
    ("update_email", "new@example.lv"),
    ("update_email", "other@example.lv"),
    ("update_address", NEW_ADDRESS),
    ("set_marketing", {"sms": False, "post": False}),
]


@pytest.mark.parametrize(("operation", "value"), CHANGES)
async def test_a_batch_change_leaves_the_record_a_single_change_leaves(
    services: Services, operation: builtin_bulk.Operation, value: Any
) -> None:
    await add_customers(
        services, _with_secondary("C-1", "+37120000001"), _with_secondary("C-2", "+37120000001")
    )
    crm = BuiltinCrm(services.sessions, services.clock)
    if operation == "set_marketing":
        await crm.set_marketing("C-1", value, idempotency_key="R-1")
    else:
        await getattr(crm, operation)("C-1", value, idempotency_key="R-1")
    async with services.sessions() as session, session.begin():
        ids = await builtin_bulk.customers(session, ["C-2", "C-9"])
        assert list(ids) == ["C-2"]  # no C-9 on file
        change = builtin_bulk.Change("R-2", "C-2", ids["C-2"], operation, value)
        await builtin_bulk.apply(session, [change], services.clock.now())
    one, batch = await crm.export("C-1"), await crm.export("C-2")
    assert one is not None
    assert batch is not None
    assert {**batch, "ref": "C-1"} == one
    # Both keyed: a second try of either is a no-op.
    async with services.sessions() as session:
        assert await builtin_bulk.applied(session, ["R-1", "R-2", "R-3"]) == {"R-1", "R-2"}


async def test_a_batch_that_names_a_customer_twice_is_refused_before_it_writes(
    services: Services,
) -> None:
    await add_customers(services, customer("C-1"))
    crm = BuiltinCrm(services.sessions, services.clock)
    before = await crm.export("C-1")
    async with services.sessions() as session, session.begin():
        cid = (await builtin_bulk.customers(session, ["C-1"]))["C-1"]
        changes = [
            builtin_bulk.Change("R-1", "C-1", cid, "update_address", NEW_ADDRESS),
            builtin_bulk.Change("R-2", "C-1", cid, "update_email", "x@example.lv"),
        ]
        with pytest.raises(ValueError, match="at most once"):
            await builtin_bulk.apply(session, changes, services.clock.now())
    assert await crm.export("C-1") == before
