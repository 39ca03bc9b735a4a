"""The built-in CRM: look-ups, changes applied once per key, erasure with holds, export shape."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import Address, CustomerNotFound, Hold
from backend.crm.demo import well_known
from backend.crm.importer import apply, validate
from backend.models.crm import Customer, Phone
from backend.services import Services


@pytest.fixture
async def crm(services: Services) -> BuiltinCrm:
    customers, problems = validate({"customers": well_known()})
    assert problems == []
    await apply(services.sessions, customers, services.clock)
    return BuiltinCrm(services.sessions, services.clock)


async def test_a_customer_is_found_by_any_phone_on_file(crm: BuiltinCrm):
    assert await crm.find_by_phone("+37120000001") == "C-1001"
    assert await crm.find_by_phone("+37120000002") == "C-1002"
    assert await crm.find_by_phone("+37129999999") is None


async def test_personal_fields_are_encrypted_at_rest(crm: BuiltinCrm, services: Services):
    async with services.engine.connect() as conn:
        raw_name = (
            await conn.exec_driver_sql("SELECT name FROM crm_customers WHERE ref='C-1001'")
        ).scalar()
        raw_phones = (
            await conn.exec_driver_sql("SELECT number, number_index FROM crm_phones")
        ).all()
    assert "Anna" not in str(raw_name)
    assert str(raw_name).startswith("v2.")
    assert all("2000000" not in str(row) for row in raw_phones)


async def test_contact_on_file_gives_the_primary_phone_email_and_language(crm: BuiltinCrm):
    contact = await crm.contact_on_file("C-1001")
    assert (contact.phone, contact.email, contact.language) == (
        "+37120000001",
        "anna@example.lv",
        "lv",
    )
    dmitry = await crm.contact_on_file("C-1002")
    assert dmitry.email is None
    with pytest.raises(CustomerNotFound):
        await crm.contact_on_file("C-9999")


async def test_the_export_has_the_design_shape_plus_holds_and_erased_categories(crm: BuiltinCrm):
    exported = await crm.export("C-1001")
    assert exported == {
        "ref": "C-1001",
        "name": "Anna Bērziņa",
        "language": "lv",
        "phones": [{"number": "+37120000001", "primary": True}],
        "emails": [{"address": "anna@example.lv", "primary": True}],
        "address": {
            "line1": "Brīvības iela 1",
            "city": "Rīga",
            "postcode": "LV-1010",
            "country": "LV",
        },
        "marketing": {"email": True, "sms": True, "phone": False, "post": True},
        "products": [
            {
                "kind": "current_account",
                "id": "LV80BANK0000435195001",
                "opened": "2015-03-01",
                "closed": None,
            },
            {"kind": "loan", "id": "L-77", "opened": "2020-01-10", "closed": "2024-06-30"},
        ],
        "transactions": [
            {
                "date": "2015-03-01",
                "amount": "100.00",
                "currency": "EUR",
                "product": "LV80BANK0000435195001",
            },
            {
                "date": "2024-05-02",
                "amount": "-12.50",
                "currency": "EUR",
                "product": "LV80BANK0000435195001",
            },
        ],
        "documents": [{"kind": "passport_copy", "collected": "2015-03-01"}],
        "holds": [],
        "erased_categories": [],
    }
    assert await crm.export("C-9999") is None


async def test_get_reasons_about_products_and_the_last_transaction(crm: BuiltinCrm):
    record = await crm.get("C-1001")
    assert record is not None
    assert [p.closed for p in record.products] == [None, date(2024, 6, 30)]
    assert record.last_transaction == date(2024, 5, 2)
    assert await crm.get("C-9999") is None


async def test_a_change_applies_once_per_idempotency_key(crm: BuiltinCrm):
    await crm.update_phone("C-1001", "+37129999999", idempotency_key="DD-AAAAAA")
    # A worker that died after the change runs it again: nothing more happens.
    await crm.update_phone("C-1001", "+37128888888", idempotency_key="DD-AAAAAA")
    exported = await crm.export("C-1001")
    assert exported is not None
    assert exported["phones"] == [{"number": "+37129999999", "primary": True}]
    assert await crm.find_by_phone("+37120000001") is None
    assert await crm.find_by_phone("+37129999999") == "C-1001"


async def test_email_address_and_marketing_changes(crm: BuiltinCrm):
    await crm.update_email("C-1002", "dmitry@example.lv", idempotency_key="k1")
    await crm.update_address(
        "C-1002",
        Address("Ausekļa iela 3", "Rīga", "LV-1010", "LV", line2="dz. 4"),
        idempotency_key="k2",
    )
    await crm.set_marketing("C-1002", {"sms": False}, idempotency_key="k3")
    exported = await crm.export("C-1002")
    assert exported is not None
    assert exported["emails"] == [{"address": "dmitry@example.lv", "primary": True}]
    assert exported["address"] == {
        "line1": "Ausekļa iela 3", "line2": "dz. 4", "city": "Rīga", "postcode": "LV-1010", "country": "LV",
    }  # fmt: skip
    assert exported["marketing"] == {"email": False, "sms": False, "phone": True, "post": False}
    with pytest.raises(CustomerNotFound):
        await crm.set_marketing("C-9999", {"sms": False}, idempotency_key="k4")


async def test_an_erasure_removes_what_may_go_and_records_holds(crm: BuiltinCrm):
    erased_chats: list[str] = []

    async def forget_chats(ref: str) -> None:
        erased_chats.append(ref)

    crm.on_erase_chat_history = forget_chats
    holds = (
        Hold("transactions", "eu_aml_records", date(2029, 6, 30)),
        Hold("products", "product_open", None, while_open="LV80BANK0000435195001"),
    )
    erase = frozenset({"contact", "marketing", "chat_history", "identity"})
    await crm.erase("C-1001", erase, holds, idempotency_key="DD-ERASE1")
    await crm.erase("C-1001", erase, holds, idempotency_key="DD-ERASE1")
    assert erased_chats == ["C-1001"]
    exported = await crm.export("C-1001")
    assert exported is not None
    assert exported["name"] == ""
    assert exported["phones"] == exported["emails"] == exported["documents"] == []
    assert exported["address"] is None
    assert exported["marketing"] == {"email": False, "sms": False, "phone": False, "post": False}
    assert len(exported["transactions"]) == 2  # type: ignore[arg-type]
    assert exported["erased_categories"] == ["chat_history", "contact", "identity", "marketing"]
    assert exported["holds"] == [
        {
            "category": "products",
            "basis": "product_open",
            "until": None,
            "while_open": "LV80BANK0000435195001",
        },
        {
            "category": "transactions",
            "basis": "eu_aml_records",
            "until": "2029-06-30",
            "while_open": None,
        },
    ]
    assert await crm.find_by_phone("+37120000001") is None


async def test_a_hold_is_purged_only_once_its_end_date_has_passed(crm: BuiltinCrm):
    holds = (Hold("transactions", "eu_aml_records", date(2029, 6, 30)),)
    await crm.erase("C-1006", frozenset({"marketing"}), holds, idempotency_key="DD-ERASE2")
    assert await crm.purge_expired_holds(date(2029, 6, 30)) == []
    assert await crm.purge_expired_holds(date(2029, 7, 1)) == [("C-1006", "transactions")]
    exported = await crm.export("C-1006")
    assert exported is not None
    assert exported["transactions"] == []
    assert exported["holds"] == []
    assert exported["erased_categories"] == ["marketing", "transactions"]
    assert await crm.purge_expired_holds(date(2030, 1, 1)) == []


async def test_two_workers_applying_one_key_leave_one_effect(crm: BuiltinCrm, services: Services):
    import asyncio

    await asyncio.gather(
        crm.update_phone("C-1003", "+37129999991", idempotency_key="DD-RACE01"),
        crm.update_phone("C-1003", "+37129999992", idempotency_key="DD-RACE01"),
    )
    async with services.sessions() as session:
        customer = (
            await session.execute(select(Customer).where(Customer.ref == "C-1003"))
        ).scalar_one()
        phones = (
            (await session.execute(select(Phone).where(Phone.customer_id == customer.id)))
            .scalars()
            .all()
        )
    assert len(phones) == 1
    assert phones[0].number in {"+37129999991", "+37129999992"}
