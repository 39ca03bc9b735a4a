"""The rules of ``backend.console.agents`` where two changes meet at once."""

from __future__ import annotations

import asyncio

from fakes.console import add_agent
from sqlalchemy import select

from backend.console import agents
from backend.models.console import Agent
from backend.services import Services


async def _disable(services: Services, name: str) -> str:
    try:
        async with services.sessions() as session, session.begin():
            await agents.disable(session, name, actor="test", at=services.clock.now())
    except agents.LastSupervisor:
        return "refused"
    return "disabled"


async def test_two_supervisors_disabling_each_other_at_once_leave_one_enabled(
    services: Services,
) -> None:
    await add_agent(services, "sam", "supervisor")
    await add_agent(services, "tess", "supervisor")
    for _ in range(3):
        outcomes = await asyncio.gather(_disable(services, "sam"), _disable(services, "tess"))
        assert sorted(outcomes) == ["disabled", "refused"]
        async with services.sessions() as session:
            enabled = list(
                await session.scalars(
                    select(Agent.name).where(Agent.active, Agent.role == "supervisor")
                )
            )
        assert len(enabled) == 1
        async with services.sessions() as session, session.begin():
            for name in ("sam", "tess"):
                await agents.enable(session, name, actor="test", at=services.clock.now())


async def test_the_same_name_added_twice_at_once_is_added_once(services: Services) -> None:
    async def add() -> str:
        try:
            async with services.sessions() as session, session.begin():
                await agents.add(
                    session,
                    "ruta",
                    "agent",
                    "a long password",
                    actor="test",
                    at=services.clock.now(),
                )
        except agents.NameTaken:
            return "taken"
        return "added"

    assert sorted(await asyncio.gather(add(), add())) == ["added", "taken"]
