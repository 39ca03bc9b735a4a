"""The HTTP CRM connector against a bank CRM stand-in: same answers as the built-in one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
from fakes.crm_server import CrmServer, running_crm_server

from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import Address, CustomerNotFound, Hold
from backend.crm.demo import well_known
from backend.crm.http import HttpCrm
from backend.crm.importer import apply, validate
from backend.errors import ConnectorError
from backend.services import Services


@pytest.fixture
async def server(services: Services) -> AsyncIterator[CrmServer]:
    customers, problems = validate({"customers": well_known()})
    assert problems == []
    await apply(services.sessions, customers, services.clock)
    async with running_crm_server(BuiltinCrm(services.sessions, services.clock)) as server:
        yield server


@pytest.fixture
def remote(server: CrmServer) -> HttpCrm:
    return HttpCrm(server.url, server.token, timeout=5)


async def test_look_ups_match_the_builtin_crm(server: CrmServer, remote: HttpCrm):
    assert await remote.find_by_phone("+37120000001") == "C-1001"
    assert await remote.find_by_phone("+37129999999") is None
    contact = await remote.contact_on_file("C-1001")
    assert (contact.phone, contact.email, contact.language) == (
        "+37120000001",
        "anna@example.lv",
        "lv",
    )
    assert await remote.export("C-1001") == await server.crm.export("C-1001")
    assert await remote.get("C-1001") == await server.crm.get("C-1001")
    assert await remote.get("C-9999") is None
    with pytest.raises(CustomerNotFound):
        await remote.contact_on_file("C-9999")
    # Phones travel in bodies, never in paths (which end up in access logs).
    assert all("+371" not in path for _, path in server.calls)


async def test_changes_go_through_once_per_key(server: CrmServer, remote: HttpCrm):
    await remote.update_phone("C-1002", "+37129999999", idempotency_key="DD-1")
    await remote.update_phone("C-1002", "+37128888888", idempotency_key="DD-1")
    await remote.update_email("C-1002", "d@example.lv", idempotency_key="DD-2")
    await remote.update_address(
        "C-1002", Address("Ausekļa iela 3", "Rīga", "LV-1010", "LV"), idempotency_key="DD-3"
    )
    await remote.set_marketing("C-1002", {"phone": False}, idempotency_key="DD-4")
    record = await remote.get("C-1002")
    assert record is not None
    assert record.phones == (("+37129999999", True),)
    assert record.emails == (("d@example.lv", True),)
    assert record.address == Address("Ausekļa iela 3", "Rīga", "LV-1010", "LV")
    assert record.marketing["phone"] is False
    with pytest.raises(CustomerNotFound):
        await remote.update_phone("C-9999", "+37129999999", idempotency_key="DD-5")


async def test_erasure_and_purge_over_http(remote: HttpCrm):
    holds = (Hold("transactions", "eu_aml_records", date(2029, 6, 30)),)
    await remote.erase(
        "C-1001", frozenset({"marketing", "identity"}), holds, idempotency_key="DD-6"
    )
    record = await remote.get("C-1001")
    assert record is not None
    assert record.erased_categories == {"marketing", "identity"}
    assert record.holds == holds
    assert await remote.purge_expired_holds(date(2029, 7, 1)) == [("C-1001", "transactions")]


async def test_a_failing_or_unreachable_crm_is_a_connector_error(
    server: CrmServer, remote: HttpCrm
):
    server.fail_next(1, status=503)
    with pytest.raises(ConnectorError, match="HTTP 503"):
        await remote.find_by_phone("+37120000001")
    with pytest.raises(ConnectorError, match="HTTP 401"):
        await HttpCrm(server.url, "wrong").find_by_phone("+37120000001")
    with pytest.raises(ConnectorError, match="HTTP 404"):
        await HttpCrm(server.url + "/wrong", server.token).find_by_phone("+37120000001")
    with pytest.raises(ConnectorError) as unreachable:
        await HttpCrm("http://127.0.0.1:9", "t", timeout=2).get("C-1001")
    assert unreachable.value.__cause__ is not None


async def test_verification_works_over_the_http_crm(server: CrmServer, backend):  # type: ignore[no-untyped-def]
    from fakes.sms_sink import running_sms_sink

    from backend.sms import HttpSmsGateway

    backend.services.crm = HttpCrm(server.url, server.token)
    async with running_sms_sink() as sink:
        backend.services.sms = HttpSmsGateway(sink.url, sink.token, backoff=0.01)
        body = {"chat": "tg:1", "phone": "+37120000005", "locale": "zh_Hant"}
        async with backend.client.post(backend.api("/api/v1/verifications"), json=body) as resp:
            assert resp.status == 202
            vid = (await resp.json())["verification_id"]
        await sink.wait_for(1)
        [code] = sink.codes_for("+37120000005")
        url = backend.api(f"/api/v1/verifications/{vid}/check")
        async with backend.client.post(url, json={"code": code}) as resp:
            assert resp.status == 200
            assert (await resp.json())["customer"] == {"language": "zh_Hant"}
        server.fail_next(1)
        async with backend.client.post(backend.api("/api/v1/verifications"), json=body) as resp:
            assert resp.status == 503
            assert (await resp.json())["error"]["code"] == "crm_unavailable"


async def test_an_erasure_preview_while_the_http_crm_fails_answers_503_not_500(
    server: CrmServer,
    backend,  # type: ignore[no-untyped-def]
):
    from fakes.ledger import session_token

    backend.services.crm = HttpCrm(server.url, server.token)
    token = await session_token(backend.services, "C-1001")
    server.fail_next(1)
    async with backend.client.post(
        backend.api("/api/v1/erasure-preview"),
        json={"scope": ["marketing"]},
        headers={"X-Customer-Session": token, "X-Customer-Chat": "tg:42"},
    ) as resp:
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "crm_unavailable"
