"""``GET /api/v1/me``: what the bot may show a verified customer, masked."""

from __future__ import annotations

from fakes.verification_world import ANNA, DMITRY, World, world

from common.masking import mask_phone

__all__ = ["world"]


async def test_me_shows_masked_contacts_consent_and_open_products(world: World):
    token = await world.verify(ANNA)
    status, me = await world.call("GET", "/api/v1/me", session=token)
    assert status == 200
    assert me == {
        "language": "lv",
        "phones": [{"masked": mask_phone(ANNA), "primary": True}],
        "emails": [{"masked": "a•••@example.lv", "primary": True}],
        "address": {"masked": "Brīvības iela •, Rīga, LV-1010, LV"},
        "marketing": {"email": True, "sms": True, "phone": False, "post": True},
        "open_products": 1,
    }
    assert "anna@example.lv" not in str(me)
    assert ANNA not in str(me)


async def test_me_for_a_customer_without_email_lists_none(world: World):
    token = await world.verify(DMITRY)
    _, me = await world.call("GET", "/api/v1/me", session=token)
    assert me["emails"] == []
    assert me["address"] == {"masked": "Dzirnavu iela •-•, Rīga, LV-1010, LV"}
    assert me["marketing"] == {"email": False, "sms": True, "phone": True, "post": False}
    assert me["open_products"] == 2


async def test_me_without_a_session_is_refused(world: World):
    for session in (None, "", "x" * 500, "forged"):
        status, body = await world.call("GET", "/api/v1/me", session=session)
        assert status == 401
        assert body["error"]["code"] == "session_expired"


async def test_me_needs_the_service_token_too(world: World):
    import aiohttp

    token = await world.verify(ANNA)
    async with aiohttp.ClientSession() as anonymous:
        headers = {"X-Customer-Session": token}
        async with anonymous.get(world.backend.api("/api/v1/me"), headers=headers) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "unauthorized"


def test_the_openapi_fragments_describe_these_routes_and_every_reference_resolves():
    import json
    import re
    from pathlib import Path

    import yaml

    from backend.api.openapi import assemble

    folder = Path(__file__).resolve().parent.parent / "backend" / "api" / "openapi"
    mine = {}
    for name in ("verification.yaml", "customer.yaml"):
        mine.update(yaml.safe_load((folder / name).read_text(encoding="utf-8"))["paths"])
    assert set(mine) == {
        "/api/v1/verifications",
        "/api/v1/verifications/channels",
        "/api/v1/verifications/{id}/resend",
        "/api/v1/verifications/{id}/check",
        "/api/v1/me",
        "/api/v1/contact-proofs",
    }
    document = assemble()
    for ref in re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', json.dumps(mine)):
        assert ref[1] in document["components"][ref[0]], ref


async def test_bad_bodies_get_stable_codes_never_a_server_error(world: World):
    token = await world.verify(ANNA)
    _, started = await world.start(DMITRY)
    vid = started["verification_id"]
    odd_values = [None, 42, 4.2, True, [], {}, "", "x" * 5000, "\x00\x01", "😀" * 10]
    for value in odd_values:
        bodies = [
            (
                "/api/v1/verifications",
                {"chat": value, "phone": value, "channel": value, "locale": value},
            ),
            (
                "/api/v1/verifications",
                {"chat": "tg:9", "phone": DMITRY, "locale": value, "shared_contact": value},
            ),
            (f"/api/v1/verifications/{vid}/resend", {"locale": value}),
            (f"/api/v1/verifications/{vid}/check", {"code": value}),
            ("/api/v1/contact-proofs", {"kind": "phone", "value": value, "locale": value}),
            ("/api/v1/contact-proofs", {"kind": value, "value": value}),
        ]
        for path, body in bodies:
            status, answer = await world.call("POST", path, body, session=token)
            assert status < 500, (path, body, answer)
            if status >= 400:
                assert answer["error"]["code"]
    for raw in (b"", b"{", b"[1]", b"null", b"\xff\xfe"):
        async with world.backend.client.post(
            world.backend.api("/api/v1/verifications"), data=raw
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "malformed_json"
    status, answer = await world.call(
        "POST", "/api/v1/verifications/" + "v" * 300 + "/check", {"code": "123456"}
    )
    assert status == 404
