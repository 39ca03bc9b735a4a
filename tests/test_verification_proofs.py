"""Proving a new phone or email: a code sent to the new contact, a proof token redeemed once."""

from __future__ import annotations

import pytest
from fakes.smtp import running_smtp
from fakes.verification_world import ANNA, ANNA_REF, DMITRY, DMITRY_REF, World, world

from backend.errors import Invalid
from backend.mailer import SmtpMailer
from backend.verification import redeem_proof

__all__ = ["world"]

NEW_PHONE = "+37129999999"


async def _prove(world: World, session: str, kind: str, value: str) -> tuple[int, dict]:
    body = {"kind": kind, "value": value, "locale": "lv"}
    return await world.call("POST", "/api/v1/contact-proofs", body, session=session)


async def _redeem(world: World, token: str, ref: str) -> tuple[str, str]:
    async with world.services.sessions() as session, session.begin():
        return await redeem_proof(session, world.services.keyring, token, ref, world.clock.now())


async def test_a_new_phone_is_proven_by_a_code_sent_to_it(world: World):
    anna = await world.verify(ANNA)
    status, started = await _prove(world, anna, "phone", "+371 2999 9999")
    assert status == 202
    assert started["channel"] == "sms"
    assert started["masked"] == "+371 2•••••99"
    assert set(started) == {"verification_id", "channel", "expires_in", "resend_after", "masked"}
    code = await world.code_for(NEW_PHONE)
    status, body = await world.check(started["verification_id"], code)
    assert status == 200
    assert body["kind"] == "phone"
    assert body["masked"] == "+371 2•••••99"
    assert await _redeem(world, body["proof_token"], ANNA_REF) == ("phone", NEW_PHONE)


async def test_a_proof_token_is_spent_once_and_only_by_its_customer(world: World):
    anna = await world.verify(ANNA)
    _, started = await _prove(world, anna, "phone", NEW_PHONE)
    code = await world.code_for(NEW_PHONE)
    _, body = await world.check(started["verification_id"], code)
    token = body["proof_token"]
    with pytest.raises(Invalid) as other:
        await _redeem(world, token, DMITRY_REF)
    assert other.value.fields == {"proof_token": "invalid_proof"}
    await _redeem(world, token, ANNA_REF)
    with pytest.raises(Invalid):
        await _redeem(world, token, ANNA_REF)
    with pytest.raises(Invalid):
        await _redeem(world, "made-up", ANNA_REF)


async def test_a_proof_token_expires_after_fifteen_minutes(world: World):
    anna = await world.verify(ANNA)
    _, started = await _prove(world, anna, "phone", NEW_PHONE)
    code = await world.code_for(NEW_PHONE)
    _, body = await world.check(started["verification_id"], code)
    world.clock.advance(900)
    with pytest.raises(Invalid):
        await _redeem(world, body["proof_token"], ANNA_REF)


async def test_bad_new_contacts_get_a_code_per_field(world: World):
    anna = await world.verify(ANNA)
    cases = [
        ("phone", "12", "invalid_phone"),
        ("phone", ANNA, "same_as_current"),
        ("email", "not-an-email", "invalid_email"),
        ("email", "new@example.lv", "email_unavailable"),
    ]
    for kind, value, code in cases:
        status, body = await _prove(world, anna, kind, value)
        assert status == 422, (kind, value)
        assert body["error"]["code"] == "invalid"
        assert body["error"]["fields"] == {"value": code}
    status, body = await _prove(world, anna, "pigeon", "x")
    assert body["error"]["fields"] == {"kind": "invalid_kind"}


async def test_a_contact_proof_needs_a_customer_session(world: World):
    status, body = await _prove(world, "", "phone", NEW_PHONE)
    assert status == 401
    assert body["error"]["code"] == "session_expired"
    status, body = await _prove(world, "forged", "phone", NEW_PHONE)
    assert status == 401


async def test_a_new_email_is_proven_by_a_code_mailed_to_it(world: World):
    with running_smtp() as smtp:
        world.services.mailer = SmtpMailer(smtp.host, smtp.port, "bank@example.lv")
        anna = await world.verify(ANNA)
        status, body = await _prove(world, anna, "email", "ANNA@example.lv")
        assert body["error"]["fields"] == {"value": "same_as_current"}
        status, started = await _prove(world, anna, "email", "anna.new@example.lv")
        assert status == 202
        assert started == {**started, "channel": "email", "masked": "a•••@example.lv"}
        await smtp.wait_for(1)
        [code] = smtp.codes_for("anna.new@example.lv")
        _, proof = await world.check(started["verification_id"], code)
        assert await _redeem(world, proof["proof_token"], ANNA_REF) == (
            "email",
            "anna.new@example.lv",
        )


async def test_contact_proofs_count_towards_the_customers_hourly_limit(world: World):
    dmitry = await world.verify(DMITRY)
    for n in range(4):
        assert (await _prove(world, dmitry, "phone", f"+3712999990{n}"))[0] == 202
    status, body = await _prove(world, dmitry, "phone", "+37129999909")
    assert status == 429
    assert body["error"]["code"] == "locked_out"
    assert body["error"]["offer_agent"] is True
