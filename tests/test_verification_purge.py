"""Verification rows go once their purpose is over: ``purge_spent`` in ``datadesk purge`` and daily.

A verified challenge at the next purge; expired sessions, proofs and
unverified challenges a day (``GRACE``) after they ended; rate-limit rows a
day after the hour they count in. Until then everything answers as before.
"""

from __future__ import annotations

import argparse
import asyncio

import pytest
from fakes.verification_world import ANNA, ANNA_REF, World, world
from sqlalchemy import func, select

from backend.codes import CODES_PER_HOUR
from backend.ledger.purge import purge_daily
from backend.models.audit import AuditEntry
from backend.models.verification import Challenge, CodeIssue, ContactProof, CustomerSession
from backend.retention import purge_command
from backend.verification import GRACE, purge_verification, redeem_proof

__all__ = ["world"]

NEW_PHONE = "+37129999999"
TABLES = {
    "challenges": Challenge,
    "code_issues": CodeIssue,
    "sessions": CustomerSession,
    "proofs": ContactProof,
}


async def rows(world: World) -> dict[str, int]:
    """How many rows each verification table holds."""
    async with world.services.sessions() as session:
        return {
            name: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in TABLES.items()
        }


async def test_a_verified_challenge_goes_at_once_and_its_session_a_day_after_it_expired(
    world: World,
) -> None:
    token = await world.verify(ANNA)
    assert (await rows(world))["challenges"] == 1
    await purge_verification(world.services)
    assert await rows(world) == {"challenges": 0, "code_issues": 1, "sessions": 1, "proofs": 0}
    # The session still works: purging took nothing in use.
    status, _ = await world.call("GET", "/api/v1/me", session=token)
    assert status == 200
    world.clock.advance(minutes=15)
    world.clock.advance(GRACE.total_seconds() - 1)
    await purge_verification(world.services)
    assert (await rows(world))["sessions"] == 1
    world.clock.advance(hours=1)
    await purge_verification(world.services)
    assert await rows(world) == {"challenges": 0, "code_issues": 0, "sessions": 0, "proofs": 0}


async def test_an_unverified_challenge_can_still_be_resent_within_the_grace_and_not_after(
    world: World,
) -> None:
    _, started = await world.start(ANNA)
    vid = started["verification_id"]
    world.clock.advance(hours=3)  # its code expired long ago
    await purge_verification(world.services)
    status, _ = await world.resend(vid)
    assert status == 202
    world.clock.advance(GRACE.total_seconds() + 301)
    await purge_verification(world.services)
    status, body = await world.resend(vid)
    assert (status, body["error"]["code"]) == (404, "not_found")
    # The resent code still counts towards its hour (and a day after), the challenge is gone.
    assert await rows(world) == {"challenges": 0, "code_issues": 1, "sessions": 0, "proofs": 0}


async def test_the_purge_never_lifts_a_lockout_within_its_hour(world: World) -> None:
    for n in range(CODES_PER_HOUR):
        status, _ = await world.start(ANNA, chat=f"tg:{n + 10}")
        assert status == 202
        world.clock.advance(seconds=31)
    await purge_verification(world.services)
    status, body = await world.start(ANNA, chat="tg:99")
    assert (status, body["error"]["code"]) == (429, "locked_out")


async def _proof(world: World, token: str, phone: str) -> str:
    body = {"kind": "phone", "value": phone, "locale": "lv"}
    status, started = await world.call("POST", "/api/v1/contact-proofs", body, session=token)
    assert status == 202
    code = await world.code_for(phone)
    status, proved = await world.check(started["verification_id"], code)
    assert status == 200
    return str(proved["proof_token"])


@pytest.mark.parametrize("redeemed", [True, False])
async def test_a_proof_goes_a_day_after_it_was_redeemed_or_expired(
    world: World, redeemed: bool
) -> None:
    token = await world.verify(ANNA)
    proof = await _proof(world, token, NEW_PHONE)
    if redeemed:
        async with world.services.sessions() as session, session.begin():
            now = world.clock.now()
            await redeem_proof(session, world.services.keyring, proof, ANNA_REF, now)
    await purge_verification(world.services)
    assert (await rows(world))["proofs"] == 1
    world.clock.advance(GRACE.total_seconds() + 1)
    await purge_verification(world.services)
    assert (await rows(world))["proofs"] == (0 if redeemed else 1)
    world.clock.advance(minutes=15)
    await purge_verification(world.services)
    assert (await rows(world))["proofs"] == 0


async def test_a_purge_that_deleted_rows_is_audited_with_counts_only(world: World) -> None:
    await world.verify(ANNA)
    assert await purge_verification(world.services) == 1
    assert await purge_verification(world.services) == 0
    async with world.services.sessions() as session:
        entries = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "verification_purged")
            )
        ).all()
    assert [(e.actor, e.data) for e in entries] == [
        ("system:purge", '{"challenges":1,"code_issues":0,"proofs":0,"sessions":0}')
    ]


async def test_datadesk_purge_deletes_spent_verification_rows_and_says_how_many(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    await world.verify(ANNA)
    world.clock.advance(GRACE.total_seconds() + 3600 * 2)
    settings = world.services.settings
    status = await asyncio.to_thread(purge_command, argparse.Namespace(), settings)
    assert status == 0
    assert capsys.readouterr().out.splitlines() == [
        "purge: 0 held categories erased",
        "purge: 3 spent verification rows deleted",
    ]
    assert await rows(world) == {"challenges": 0, "code_issues": 0, "sessions": 0, "proofs": 0}


async def test_the_workers_daily_purge_deletes_spent_verification_rows(world: World) -> None:
    await world.verify(ANNA)
    stop = asyncio.Event()
    services = world.services

    class StopAfterFirstRun:
        async def purge_expired_holds(self, today: object) -> list[object]:
            stop.set()
            return []

        def __getattr__(self, name: str) -> object:
            return getattr(services.crm, name)

    await asyncio.wait_for(purge_daily(services, StopAfterFirstRun(), stop), timeout=30)  # type: ignore[arg-type]
    assert (await rows(world))["challenges"] == 0
