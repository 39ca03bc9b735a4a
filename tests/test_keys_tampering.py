"""Every stored ciphertext names its key and is bound to its table, column and row.

Someone with write access to the database moves a ciphertext to another row,
column or table, flips a bit, or rewrites its key id. Each time the value no
longer decrypts: the customer's own call answers ``503 stored_data_unreadable``
(never a 500, never the value), and the log names the column, not the person.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import aiohttp
import pytest
from conftest import SERVICE_TOKEN, LiveBackend, start_app
from fakes.ledger import add_customers, customer, session_headers, session_token
from fakes.personal import OLGA, PERSONAL, Logged, logged  # noqa: F401  (a fixture)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import crypto
from backend.api.app import create_app
from backend.crypto import Key, TamperedValue, UnknownKey
from backend.services import open_services
from backend.settings import Settings
from common.clock import FakeClock
from datadesk.cli import main

OTHER = customer("C-9")

Tamper = Callable[[AsyncConnection], Awaitable[None]]


async def _me(backend: LiveBackend, ref: str) -> tuple[int, dict[str, object]]:
    token = await session_token(backend.services, ref)
    async with backend.client.get(
        backend.api("/api/v1/me"), headers=session_headers(token)
    ) as response:
        return response.status, await response.json()


async def _scalar(conn: AsyncConnection, sql: str) -> str:
    return str((await conn.execute(text(sql))).scalar_one())


async def _set(conn: AsyncConnection, sql: str, value: str) -> None:
    await conn.execute(text(sql), {"v": value})


OLGA_ID = "(SELECT id FROM crm_customers WHERE ref = 'C-2001')"


async def _name_moved_from_another_customer(conn: AsyncConnection) -> None:
    other = await _scalar(conn, "SELECT name FROM crm_customers WHERE ref = 'C-9'")
    await _set(conn, "UPDATE crm_customers SET name = :v WHERE ref = 'C-2001'", other)


async def _phone_moved_from_another_customers_phone(conn: AsyncConnection) -> None:
    other = await _scalar(
        conn,
        "SELECT number FROM crm_phones WHERE customer_id = "
        "(SELECT id FROM crm_customers WHERE ref = 'C-9')",
    )
    await _set(conn, f"UPDATE crm_phones SET number = :v WHERE customer_id = {OLGA_ID}", other)


async def _line1_moved_to_city(conn: AsyncConnection) -> None:
    line1 = await _scalar(conn, f"SELECT line1 FROM crm_addresses WHERE customer_id = {OLGA_ID}")
    await _set(conn, f"UPDATE crm_addresses SET city = :v WHERE customer_id = {OLGA_ID}", line1)


async def _name_moved_into_the_email_table(conn: AsyncConnection) -> None:
    name = await _scalar(conn, "SELECT name FROM crm_customers WHERE ref = 'C-2001'")
    await _set(conn, f"UPDATE crm_emails SET address = :v WHERE customer_id = {OLGA_ID}", name)


async def _one_bit_flipped(conn: AsyncConnection) -> None:
    token = await _scalar(conn, "SELECT name FROM crm_customers WHERE ref = 'C-2001'")
    head, _, body = token.rpartition(".")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[20] ^= 0x01
    flipped = f"{head}.{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    await _set(conn, "UPDATE crm_customers SET name = :v WHERE ref = 'C-2001'", flipped)


def _key_id_changed_to(key_id: str) -> Tamper:
    async def tamper(conn: AsyncConnection) -> None:
        token = await _scalar(conn, "SELECT name FROM crm_customers WHERE ref = 'C-2001'")
        version, _, rest = token.partition(".")
        _, _, body = rest.partition(".")
        changed = f"{version}.{key_id}.{body}"
        await _set(conn, "UPDATE crm_customers SET name = :v WHERE ref = 'C-2001'", changed)

    return tamper


OLD_SECRET = "an-old-key-this-database-still-reads"
OLD_KEY_ID = Key.from_secret(OLD_SECRET).id


@pytest.fixture
def settings_with_old_key(settings: Settings) -> Settings:
    """The test's settings, with a second key still readable (a rotation in progress)."""
    return replace(settings, old_secret_keys=(OLD_SECRET,))


@pytest.fixture
async def live(settings_with_old_key: Settings, clock: FakeClock) -> AsyncIterator[LiveBackend]:
    """A live backend reading two keys, with Olga and another customer on file."""
    svc = await open_services(settings_with_old_key, clock=clock)
    runner, url = await start_app(create_app(svc))
    client = aiohttp.ClientSession(headers={"Authorization": f"Bearer {SERVICE_TOKEN}"})
    try:
        await add_customers(svc, OLGA, OTHER)
        yield LiveBackend(url=url, services=svc, client=client)
    finally:
        await client.close()
        await runner.cleanup()
        await svc.close()


async def test_a_stored_value_names_the_primary_key_and_reads_back(live: LiveBackend) -> None:
    async with live.services.engine.connect() as conn:
        raw = await _scalar(conn, "SELECT name FROM crm_customers WHERE ref = 'C-2001'")
    assert raw.startswith(f"v2.{live.services.keyring.primary_id}.")
    assert "Olga" not in raw
    status, body = await _me(live, "C-2001")
    assert status == 200, body


TAMPERINGS: dict[str, Tamper] = {
    "a name moved from another customer's row": _name_moved_from_another_customer,
    "a phone moved from another customer's phone row": _phone_moved_from_another_customers_phone,
    "an address line moved to another column of its row": _line1_moved_to_city,
    "a name moved into another table": _name_moved_into_the_email_table,
    "one bit flipped": _one_bit_flipped,
    "the key id changed to another configured key": _key_id_changed_to(OLD_KEY_ID),
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS), ids=list(TAMPERINGS))
async def test_every_tampering_is_detected_and_answered_without_the_value(
    live: LiveBackend,
    tampering: str,
    logged: Logged,  # noqa: F811  (the fixture)
) -> None:
    async with live.services.engine.begin() as conn:
        await TAMPERINGS[tampering](conn)
    status, body = await _me(live, "C-2001")
    assert status == 503
    assert body["error"]["code"] == "stored_data_unreadable"  # type: ignore[index]
    assert "stored data unreadable in GET /api/v1/me" in logged.written
    assert logged.leaks(PERSONAL) == []
    # The other customer, untouched, is served as before.
    assert (await _me(live, "C-9"))[0] == 200


async def test_a_key_id_no_configured_key_has_is_named_as_unknown(live: LiveBackend) -> None:
    async with live.services.engine.begin() as conn:
        await _key_id_changed_to("0123456789ab")(conn)
    with pytest.raises(UnknownKey, match=r"crm_customers\.name: key id '0123456789ab'"):
        await live.services.crm.export("C-2001")


async def test_a_moved_value_raises_tampered_value_naming_the_column_only(
    live: LiveBackend,
) -> None:
    async with live.services.engine.begin() as conn:
        await _name_moved_from_another_customer(conn)
    with pytest.raises(TamperedValue) as raised:
        await live.services.crm.export("C-2001")
    assert str(raised.value).startswith("crm_customers.name: the value does not decrypt")
    assert "C-2001" not in str(raised.value)
    assert "C-9" not in str(raised.value)


async def test_a_v1_value_written_before_key_ids_is_still_read(live: LiveBackend) -> None:
    old = Key.from_secret(OLD_SECRET)
    nonce = os.urandom(12)
    legacy = (
        "v1."
        + base64.urlsafe_b64encode(nonce + old.aead.encrypt(nonce, b"Olga Legacy", None)).decode()
    )
    async with live.services.engine.begin() as conn:
        await _set(conn, "UPDATE crm_customers SET name = :v WHERE ref = 'C-2001'", legacy)
    exported = await live.services.crm.export("C-2001")
    assert exported is not None
    assert exported["name"] == "Olga Legacy"


def test_a_keyring_decrypts_only_with_the_associated_data_it_was_sealed_with() -> None:
    keyring = crypto.Keyring.from_secret("a-test-key-long-enough")
    sealed = keyring.encrypt("Anna", "crm_customers|name|C-1")
    assert keyring.decrypt(sealed, "crm_customers|name|C-1") == "Anna"
    for elsewhere in ("crm_customers|name|C-2", "crm_customers|line1|C-1", "crm_emails|name|C-1"):
        with pytest.raises(TamperedValue):
            keyring.decrypt(sealed, elsewhere)


def test_crm_export_of_a_tampered_record_says_so_in_one_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def seed_and_tamper() -> None:
        svc = await open_services(settings)
        try:
            await add_customers(svc, OLGA, OTHER)
            async with svc.engine.begin() as conn:
                await _name_moved_from_another_customer(conn)
        finally:
            await svc.close()

    asyncio.run(seed_and_tamper())
    monkeypatch.setenv("DATADESK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DATADESK_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATADESK_SECRET_KEY", settings.secret_key or "")
    assert main(["crm", "export", "C-2001"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "datadesk crm export: C-2001: crm_customers.name: the value does not decrypt under key id "
        f"{Key.from_secret(settings.secret_key or '').id}: it was altered, or belongs to another "
        "row, column or table"
    ]
