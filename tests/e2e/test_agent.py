"""Talking to a person: the bot hands the chat to an agent and takes it back, in Telegram.

The agent's side is the backend's own escalation functions (what the console
calls); the customer's side is the chat. Joins, replies and the hand-back
reach the customer through the notifications outbox the bot long-polls.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from backend import escalations
from backend.console.cli import add_agent
from backend.models.console import Escalation
from e2e.conftest import Stack
from e2e.steps import AGENT_WAITING, MENU, choose, start, transcript_of

CHAT = 8001
JOINED = "A colleague from our team has joined the chat."
LEFT = "Our colleague has left the chat. I'm back to help you; here is where we were."


@pytest.mark.parametrize("locale", ["lv", "en"])
async def test_an_agent_takes_over_replies_and_hands_the_chat_back_to_the_bot(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "agent")
    waiting = await api.wait_for_message(CHAT, stack.t(locale, AGENT_WAITING))
    agent_id, _ = await add_agent(stack.settings, "ruta", "agent", "correct horse battery")
    async with stack.services.sessions() as session, session.begin():
        escalation = await session.scalar(select(Escalation).where(Escalation.chat == f"tg:{CHAT}"))
        assert escalation is not None
        assert escalation.reason == "asked"
        await escalations.take_over(session, escalation.id, agent_id=agent_id, at=stack.clock.now())
    joined = (
        stack.says(locale, JOINED),
        stack.says(locale, "{name} from our team has joined the chat.", name="ruta"),
    )
    await api.wait_until(lambda: any(m.text in joined for m in api.messages(CHAT)), timeout=15)
    assert waiting in api.messages(CHAT)
    # While the agent holds the chat, the customer's words go to the agent, not the dialogs.
    await api.send_text(CHAT, "I moved house last week")
    async with stack.services.sessions() as session, session.begin():
        await escalations.reply(
            session,
            escalation.id,
            agent_id=agent_id,
            text="Hello! I can help with that.",
            at=stack.clock.now(),
        )
    await api.wait_for_message(CHAT, "Hello! I can help with that.", timeout=15)
    assert [m.text for m in api.since_last_action(CHAT)] == ["Hello! I can help with that."]
    assert "I moved house last week" in await transcript_of(stack, CHAT)
    async with stack.services.sessions() as session, session.begin():
        await escalations.hand_back(
            session, escalation.id, agent_id=agent_id, resume="menu", at=stack.clock.now()
        )
    await api.wait_for_message(CHAT, stack.t(locale, LEFT), timeout=15)
    await api.wait_for_message(CHAT, stack.t(locale, MENU), buttons="update_contact")
