"""What verification leaves behind: audit entries with internal ids only, no code or token in clear."""

from __future__ import annotations

from fakes.verification_world import ANNA, ANNA_REF, UNKNOWN, World, world
from sqlalchemy import select

from backend.models.audit import AuditEntry

__all__ = ["world"]

LONG_CHAT = "term:" + "x" * 123


async def test_every_attempt_is_audited_with_internal_ids_only(world: World):
    _, known = await world.start(ANNA, chat=LONG_CHAT)
    _, unknown = await world.start(UNKNOWN, chat="tg:2")
    code = await world.code_for(ANNA)
    await world.check(known["verification_id"], "000000" if code != "000000" else "111111")
    await world.check(unknown["verification_id"], code)
    await world.check(known["verification_id"], code[:3] + " " + code[3:])
    async with world.services.sessions() as session:
        entries = (
            (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().all()
        )
    trail = [(e.action, e.subject, e.outcome) for e in entries]
    assert trail == [
        ("verification.start", known["verification_id"], "sent"),
        ("verification.start", unknown["verification_id"], "sent"),
        ("verification.check", known["verification_id"], "wrong_code"),
        ("verification.check", unknown["verification_id"], "wrong_code"),
        ("verification.check", known["verification_id"], "verified"),
    ]
    assert ANNA_REF in entries[0].data
    assert LONG_CHAT in entries[0].data
    for entry in entries:
        text = f"{entry.actor} {entry.subject} {entry.data}"
        for secret in (ANNA, ANNA[1:], UNKNOWN[1:], code):
            assert secret not in text


async def test_neither_the_code_nor_the_session_token_is_stored(world: World):
    token = await world.verify(ANNA)
    code = world.sink.codes_for(ANNA)[0]
    async with world.services.engine.connect() as conn:
        # Raw SQL: what is on disk, without the column types decrypting it.
        challenges = (await conn.exec_driver_sql("SELECT * FROM verification_challenges")).all()
        sessions = (await conn.exec_driver_sql("SELECT * FROM verification_sessions")).all()
    stored = str(challenges) + str(sessions)
    assert code not in stored
    assert token not in stored
    assert ANNA not in stored  # the number kept for resends is encrypted
