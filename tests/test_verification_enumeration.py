"""A number that is not on file looks, to the caller, exactly like one that is."""

from __future__ import annotations

import logging
import statistics
import time

import pytest
from fakes.verification_world import ANNA, DMITRY, UNKNOWN, World, world

__all__ = ["world"]


def _shape(body: dict[str, object]) -> dict[str, type]:
    return {key: type(value) for key, value in body.items()}


async def test_known_and_unknown_numbers_get_the_same_answer_and_only_known_get_a_code(
    world: World,
):
    status_unknown, unknown = await world.start(UNKNOWN, chat="tg:1")
    status_known, known = await world.start(ANNA, chat="tg:2")
    assert status_unknown == status_known == 202
    assert _shape(unknown) == _shape(known)
    assert unknown["expires_in"] == known["expires_in"]
    assert unknown["resend_after"] == known["resend_after"]
    assert unknown["channel"] == known["channel"]
    assert len(str(unknown["verification_id"])) == len(str(known["verification_id"]))
    # Deliveries run in order; once Anna's code is in, any code for the unknown
    # number would have arrived before it.
    await world.sink.wait_for(1)
    assert [m.to for m in world.sink.messages] == [ANNA]
    assert world.sink.codes_for(UNKNOWN) == []


async def test_checks_on_an_unknown_number_say_wrong_code_and_count_attempts_alike(world: World):
    _, unknown = await world.start(UNKNOWN, chat="tg:1")
    _, known = await world.start(ANNA, chat="tg:2")
    code = await world.code_for(ANNA)
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1, 0):
        status_u, body_u = await world.check(unknown["verification_id"], "123456")
        status_k, body_k = await world.check(known["verification_id"], wrong)
        assert status_u == status_k == 422
        assert body_u == body_k
        assert body_u["error"]["attempts_left"] == left
    status_u, body_u = await world.check(unknown["verification_id"], "123456")
    status_k, body_k = await world.check(known["verification_id"], "123456")
    assert status_u == status_k == 429
    assert body_u == body_k


async def test_resends_and_lockouts_of_an_unknown_number_behave_alike(world: World):
    _, unknown = await world.start(UNKNOWN, chat="tg:1")
    _, known = await world.start(DMITRY, chat="tg:2")
    assert (await world.resend(unknown["verification_id"])) == (
        429,
        {
            "error": {
                "code": "resend_cooldown",
                "message": "a code was sent less than 30 s ago",
                "retry_after": 30,
            }
        },
    )
    assert (await world.resend(known["verification_id"]))[1]["error"]["retry_after"] == 30
    for n in range(4):
        await world.start(UNKNOWN, chat=f"tg:u{n}")
        await world.start(DMITRY, chat=f"tg:k{n}")
    status_u, body_u = await world.start(UNKNOWN, chat="tg:u9")
    status_k, body_k = await world.start(DMITRY, chat="tg:k9")
    assert status_u == status_k == 429
    assert body_u == body_k


async def _timed_start(world: World, phone: str, chat: str) -> float:
    began = time.perf_counter()
    status, _ = await world.start(phone, chat=chat)
    elapsed = time.perf_counter() - began
    assert status == 202
    return elapsed


async def test_known_and_unknown_numbers_take_the_same_time_to_answer(world: World):
    known: list[float] = []
    unknown: list[float] = []
    for n in range(45):
        # A fresh chat and an hour later each time, so no limit is reached; the
        # two kinds alternate so that machine noise falls on both alike.
        world.clock.advance(3601)
        first, second = (ANNA, UNKNOWN) if n % 2 else (UNKNOWN, ANNA)
        timings = {first: await _timed_start(world, first, f"tg:a{n}")}
        timings[second] = await _timed_start(world, second, f"tg:b{n}")
        if n >= 5:  # the first calls warm caches and connections
            known.append(timings[ANNA])
            unknown.append(timings[UNKNOWN])
    ratio = statistics.median(known) / statistics.median(unknown)
    assert 0.5 < ratio < 2.0, (statistics.median(known), statistics.median(unknown))


async def test_the_answer_does_not_wait_for_the_sms_gateway(world: World):
    world.sink.hold()
    status, _ = await world.start(ANNA)
    assert status == 202
    assert world.sink.messages == []
    world.sink.release()
    await world.sink.wait_for(1)
    assert world.sink.messages[0].to == ANNA


async def test_no_code_or_phone_reaches_the_logs(world: World, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    world.sink.fail_next(2)
    _, started = await world.start(ANNA, chat="tg:1")
    await world.start(UNKNOWN, chat="tg:2")
    code = await world.code_for(ANNA)
    await world.check(started["verification_id"], "000000" if code != "000000" else "111111")
    await world.check(started["verification_id"], code)
    text = caplog.text
    assert started["verification_id"] in text  # the retries were logged, by reference
    for secret in (code, ANNA, ANNA[1:], "20000001", UNKNOWN, UNKNOWN[1:]):
        assert secret not in text
