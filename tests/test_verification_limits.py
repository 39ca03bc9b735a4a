"""Every verification limit, through the real HTTP API: expiry, checks, cooldown, hourly caps."""

from __future__ import annotations

from fakes.verification_world import ANNA, ANNA_REF, DMITRY, UNKNOWN, World, world

from common.masking import mask_phone

__all__ = ["world"]


async def test_the_right_code_gives_a_session_for_that_customer(world: World):
    status, started = await world.start(ANNA)
    assert status == 202
    assert started["expires_in"] == 300
    assert started["resend_after"] == 30
    code = await world.code_for(ANNA)
    assert len(code) == 6
    assert code.isdigit()
    status, body = await world.check(started["verification_id"], code)
    assert status == 200
    assert body["expires_in"] == 900
    assert body["customer"] == {"language": "lv"}
    status, me = await world.call("GET", "/api/v1/me", session=body["session_token"])
    assert status == 200
    assert me["phones"] == [{"masked": mask_phone(ANNA), "primary": True}]


async def test_a_wrong_code_leaves_attempts_and_says_so(world: World):
    _, started = await world.start(ANNA)
    vid = started["verification_id"]
    code = await world.code_for(ANNA)
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1, 0):
        status, body = await world.check(vid, wrong)
        assert status == 422
        assert body["error"]["code"] == "wrong_code"
        assert body["error"]["attempts_left"] == left
    status, body = await world.check(vid, code)
    assert status == 429
    assert body["error"]["code"] == "too_many_attempts"


async def test_a_wrong_code_then_the_right_one_verifies(world: World):
    _, started = await world.start(ANNA)
    code = await world.code_for(ANNA)
    wrong = "000000" if code != "000000" else "111111"
    assert (await world.check(started["verification_id"], wrong))[0] == 422
    status, body = await world.check(started["verification_id"], code)
    assert status == 200
    assert body["session_token"]


async def test_a_code_expires_after_five_minutes(world: World):
    _, started = await world.start(ANNA)
    code = await world.code_for(ANNA)
    world.clock.advance(300)
    status, body = await world.check(started["verification_id"], code)
    assert status == 410
    assert body["error"]["code"] == "expired"


async def test_a_code_still_works_just_before_five_minutes(world: World):
    _, started = await world.start(ANNA)
    code = await world.code_for(ANNA)
    world.clock.advance(299)
    assert (await world.check(started["verification_id"], code))[0] == 200


async def test_a_new_code_waits_thirty_seconds_and_replaces_the_old_one(world: World):
    _, started = await world.start(ANNA)
    vid = started["verification_id"]
    first = await world.code_for(ANNA)
    world.clock.advance(10)
    status, body = await world.resend(vid)
    assert status == 429
    assert body["error"]["code"] == "resend_cooldown"
    assert body["error"]["retry_after"] == 20
    world.clock.advance(20)
    status, body = await world.resend(vid)
    assert status == 202
    assert body["verification_id"] == vid
    second = await world.code_for(ANNA, 2)
    if second != first:
        assert (await world.check(vid, first))[0] == 422
    assert (await world.check(vid, second))[0] == 200


async def test_a_resend_gives_five_fresh_checks_and_five_fresh_minutes(world: World):
    _, started = await world.start(ANNA)
    vid = started["verification_id"]
    code = await world.code_for(ANNA)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        await world.check(vid, wrong)
    world.clock.advance(280)
    assert (await world.resend(vid))[0] == 202
    code = await world.code_for(ANNA, 2)
    world.clock.advance(200)
    assert (await world.check(vid, code))[0] == 200


async def test_five_codes_an_hour_per_chat_then_locked_out_with_an_agent_offered(world: World):
    for phone in (ANNA, DMITRY, UNKNOWN, ANNA, DMITRY):
        assert (await world.start(phone, chat="tg:7"))[0] == 202
        world.clock.advance(60)
    status, body = await world.start("+37120000003", chat="tg:7")
    assert status == 429
    assert body["error"]["code"] == "locked_out"
    assert body["error"]["offer_agent"] is True
    # The first code leaves the rolling hour 3600 s after it was sent, 300 s ago.
    assert body["error"]["retry_after"] == 3300
    assert (await world.start("+37120000003", chat="tg:8"))[0] == 202
    world.clock.advance(3300)
    assert (await world.start("+37120000003", chat="tg:7"))[0] == 202


async def test_five_codes_an_hour_per_customer_across_chats(world: World):
    for n in range(5):
        assert (await world.start(ANNA, chat=f"tg:{100 + n}"))[0] == 202
    status, body = await world.start(ANNA, chat="tg:200")
    assert status == 429
    assert body["error"]["code"] == "locked_out"
    assert body["error"]["offer_agent"] is True
    assert (await world.start(DMITRY, chat="tg:200"))[0] == 202


async def test_resends_count_towards_the_hourly_limit(world: World):
    _, started = await world.start(ANNA)
    vid = started["verification_id"]
    for _ in range(4):
        world.clock.advance(30)
        assert (await world.resend(vid))[0] == 202
    world.clock.advance(30)
    status, body = await world.resend(vid)
    assert status == 429
    assert body["error"]["code"] == "locked_out"
    assert body["error"]["offer_agent"] is True


async def test_a_spent_code_during_a_lockout_answers_locked_out(world: World):
    vid = ""
    for n in range(5):
        _, started = await world.start(ANNA, chat=f"tg:{n}")
        vid = started["verification_id"]
    code = await world.code_for(ANNA, 5)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        await world.check(vid, wrong)
    status, body = await world.check(vid, code)
    assert status == 429
    assert body["error"]["code"] == "locked_out"
    assert body["error"]["offer_agent"] is True
    assert body["error"]["retry_after"] > 0


async def test_a_session_expires_after_fifteen_minutes(world: World):
    token = await world.verify(ANNA)
    world.clock.advance(899)
    assert (await world.call("GET", "/api/v1/me", session=token))[0] == 200
    world.clock.advance(1)
    status, body = await world.call("GET", "/api/v1/me", session=token)
    assert status == 401
    assert body["error"]["code"] == "session_expired"


async def test_a_session_is_scoped_to_the_customer_who_verified(world: World):
    anna = await world.verify(ANNA, chat="tg:1")
    dmitry = await world.verify(DMITRY, chat="tg:2")
    _, me_anna = await world.call("GET", "/api/v1/me", session=anna)
    _, me_dmitry = await world.call("GET", "/api/v1/me", session=dmitry)
    assert me_anna["language"] == "lv"
    assert me_dmitry["language"] == "ru"
    async with world.services.sessions() as session:
        from backend.verification import customer_for_session

        now = world.clock.now()
        keyring = world.services.keyring
        assert await customer_for_session(session, keyring, anna, now, "tg:1") == ANNA_REF
        assert await customer_for_session(session, keyring, anna, now, "tg:2") is None
        assert await customer_for_session(session, keyring, "forged", now, "tg:1") is None


async def test_a_verified_challenge_cannot_be_checked_again(world: World):
    _, started = await world.start(ANNA)
    code = await world.code_for(ANNA)
    assert (await world.check(started["verification_id"], code))[0] == 200
    status, body = await world.check(started["verification_id"], code)
    assert status == 404
    assert body["error"]["code"] == "not_found"


async def test_unknown_ids_and_bad_fields_get_codes_not_crashes(world: World):
    assert (await world.check("vf_nope", "123456"))[0] == 404
    assert (await world.resend("vf_nope"))[0] == 404
    status, body = await world.start("12345")
    assert status == 422
    assert body["error"]["fields"] == {"phone": "invalid_phone"}
    status, body = await world.start(ANNA, channel="pigeon")
    assert body["error"]["fields"] == {"channel": "invalid_channel"}
    status, body = await world.start(ANNA, channel="email")
    assert status == 422
    assert body["error"]["fields"] == {"channel": "email_unavailable"}
    _, started = await world.start(ANNA)
    status, body = await world.check(started["verification_id"], 123456)  # type: ignore[arg-type]
    assert status == 422
    assert body["error"]["fields"] == {"code": "invalid_code"}


async def test_parallel_requests_cannot_slip_past_the_hourly_limit(world: World):
    import asyncio

    starts = await asyncio.gather(*(world.start(ANNA, chat=f"tg:p{n}") for n in range(12)))
    assert sorted(status for status, _ in starts) == [202] * 5 + [429] * 7
    _, started = await world.start(DMITRY, chat="tg:q")
    code = await world.code_for(DMITRY)
    wrong = "000000" if code != "000000" else "111111"
    checks = await asyncio.gather(
        *(world.check(started["verification_id"], wrong) for _ in range(8))
    )
    assert sorted(status for status, _ in checks) == [422] * 5 + [429] * 3
    left = sorted(body["error"].get("attempts_left", -1) for _, body in checks)
    assert left == [-1, -1, -1, 0, 1, 2, 3, 4]
