"""The conversation service's plumbing, with a stand-in engine and the real backend and bot DB.

State, restarts, concurrency, hygiene, the transcript, agent hand-over and
notifications are the service's own work, so they are tested here with
``fakes.dialog_engine.FakeEngine``; the journeys with the real engine and
dialogs are in ``test_conversation_journeys.py``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import SERVICE_TOKEN, LiveBackend, bot_settings_for
from fakes.dialog_engine import FakeEngine

from backend import escalations
from backend.models.console import Agent
from bot.backend_client import BackendClient
from bot.channel import Command, Delete, Edited, Outgoing, Press, Reply, Start, Text
from bot.conversation import Conversations
from bot.engine import DialogErrors
from bot.engine_adapter import DialogEngine
from bot.i18n import Catalogs
from bot.settings import BotSettings
from common.clock import FakeClock
from common.settings import REPO_ROOT

Opener = Callable[[], Awaitable[Conversations]]
CARD = "4111 1111 1111 1111"


@pytest.fixture
def bot_settings(backend: LiveBackend, bot_db_url: str, tmp_path: Path) -> BotSettings:
    dialogs = tmp_path / "dialogs"
    dialogs.mkdir()
    return replace(bot_settings_for(tmp_path, backend.url, bot_db_url), dialogs_dir=dialogs)


@pytest.fixture
async def open_conversations(bot_settings: BotSettings) -> AsyncIterator[Opener]:
    """Opens Conversations like a (re)started bot process would; all are closed at the end."""
    opened: list[tuple[Conversations, BackendClient]] = []

    async def open_one() -> Conversations:
        client = BackendClient(bot_settings.backend_url, SERVICE_TOKEN)
        conversations = await Conversations.open(bot_settings, backend=client, engine=FakeEngine())
        opened.append((conversations, client))
        return conversations

    yield open_one
    for conversations, client in opened:
        await conversations.close()
        await client.close()


def texts(out: list[Any]) -> list[str]:
    return [o.text for o in out if isinstance(o, Reply)]


async def transcript(backend: LiveBackend, chat: str) -> list[tuple[str, str]]:
    async with backend.services.sessions() as session:
        return [(e.direction, e.text) for e in await escalations.transcript(session, chat)]


async def test_a_restarted_process_resumes_every_conversation_at_its_step(
    open_conversations: Opener,
) -> None:
    first = await open_conversations()
    await first.handle("term:a", Start(language_code="lv"))
    await first.handle("term:b", Start(language_code="ru"))
    await first.handle("term:a", Press("opt_out"))
    await first.close()

    second = await open_conversations()
    assert texts(await second.handle("term:a", Press("opt_out"))) == ["stale at ask_phone"]
    assert texts(await second.handle("term:b", Press("count"))) == ["count 1"]


async def test_events_for_one_chat_at_once_are_all_counted_even_across_processes(
    open_conversations: Opener,
) -> None:
    one, two = await open_conversations(), await open_conversations()
    await one.handle("term:c", Start())
    presses = [c.handle("term:c", Press("count")) for c in (one, two) for _ in range(5)]
    await asyncio.gather(*presses)
    assert texts(await one.handle("term:c", Press("count"))) == ["count 11"]


async def test_a_card_number_typed_mid_flow_is_deleted_explained_and_masked(
    open_conversations: Opener, backend: LiveBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    conversations = await open_conversations()
    await conversations.handle("term:d", Start(language_code="lv"))
    out = await conversations.handle("term:d", Text(f"my card is {CARD}", message_id=41))
    assert out[0] == Delete(41, "card")
    assert texts(out) == ["hygiene.card[lv]"]
    # The engine never saw it: the conversation is where it was.
    assert texts(await conversations.handle("term:d", Press("count"))) == ["count 1"]
    await conversations.flush()
    inbound = [t for d, t in await transcript(backend, "term:d") if d == "in"]
    assert "my card is 411111••••••1111" in inbound
    assert not any("1111 1111" in t for _, t in await transcript(backend, "term:d"))
    assert "1111 1111" not in caplog.text
    assert "4111111111111111" not in caplog.text


async def test_an_iban_or_national_id_is_deleted_and_kept_masked(
    open_conversations: Opener, backend: LiveBackend
) -> None:
    conversations = await open_conversations()
    await conversations.handle("term:e", Start(language_code="en"))
    iban = await conversations.handle("term:e", Text("LV80 BANK 0000 4351 9500 1", message_id=5))
    personal = await conversations.handle("term:e", Text("my code 161175-19997", message_id=6))
    assert iban[0] == Delete(5, "iban")
    assert texts(iban) == ["hygiene.iban[en]"]
    assert personal[0] == Delete(6, "national_id")
    await conversations.flush()
    inbound = [t for d, t in await transcript(backend, "term:e") if d == "in"]
    assert "LV80 •••• 5001" in inbound
    assert "my code ••••" in inbound


async def test_a_plain_message_is_kept_as_typed_in_the_transcript_with_the_answer(
    open_conversations: Opener, backend: LiveBackend
) -> None:
    conversations = await open_conversations()
    await conversations.handle("term:f", Start())
    await conversations.handle("term:f", Text("hello there", message_id=1))
    await conversations.flush("term:f")
    assert await transcript(backend, "term:f") == [
        ("in", "/start"),
        ("out", "menu"),
        ("in", "hello there"),
        ("out", "noted hello there"),
    ]


async def _agent(backend: LiveBackend) -> int:
    async with backend.services.sessions() as session, session.begin():
        agent = Agent(
            name="anna",
            password_hash="-",
            role="agent",
            created_at=backend.services.clock.now(),
        )
        session.add(agent)
    return agent.id


async def test_binary_or_huge_messages_are_answered_and_filed_without_failing(
    open_conversations: Opener, backend: LiveBackend
) -> None:
    conversations = await open_conversations()
    await conversations.handle("term:n", Start())
    binary = await conversations.handle("term:n", Text("\x00\x01\x02 PNG", message_id=1))
    huge = await conversations.handle("term:n", Text("a" * 100_000, message_id=2))
    assert texts(binary) == ["noted \x00\x01\x02 PNG"]
    assert len(texts(huge)) == 1
    await conversations.flush()
    inbound = [t for d, t in await transcript(backend, "term:n") if d == "in"]
    assert inbound[1] == "\x01\x02 PNG"
    assert len(inbound[2]) < 10_000


async def test_while_an_agent_holds_the_chat_messages_reach_the_agent_not_the_dialogs(
    open_conversations: Opener, backend: LiveBackend
) -> None:
    conversations = await open_conversations()
    await conversations.handle("term:g", Start(language_code="lv"))
    await conversations.handle("term:g", Command("agent"))
    agent_id, now = await _agent(backend), backend.services.clock.now()
    async with backend.services.sessions() as session, session.begin():
        found = await escalations.open_for_chat(session, "term:g")
        assert found is not None
        await escalations.take_over(session, found.id, agent_id=agent_id, at=now)
    joined = await conversations.notify(
        {"id": 1, "chat": "term:g", "locale": "lv", "type": "agent_joined", "details": {}}
    )
    assert texts(joined) == ["agent.joined_anonymous[lv]"]
    assert await conversations.handle("term:g", Text("is anyone there?", message_id=9)) == []
    said = await conversations.notify(
        {"id": 2, "chat": "term:g", "type": "agent_message", "details": {"text": "Labdien!"}}
    )
    assert texts(said) == ["Labdien!"]
    async with backend.services.sessions() as session, session.begin():
        await escalations.hand_back(
            session, found.id, agent_id=agent_id, resume="where_left_off", at=now
        )
    left = await conversations.notify(
        {"id": 3, "chat": "term:g", "type": "agent_left", "details": {"resume": "where_left_off"}}
    )
    assert texts(left) == ["agent.left[lv]", "at menu"]
    assert texts(await conversations.handle("term:g", Press("count"))) == ["count 1"]
    await conversations.flush()
    assert ("in", "is anyone there?") in await transcript(backend, "term:g")


async def test_a_notification_delivered_twice_is_shown_once(open_conversations: Opener) -> None:
    first = await open_conversations()
    note = {
        "id": 17,
        "chat": "term:h",
        "locale": "lv",
        "type": "request_outcome",
        "reference": "DD-7K2Q9M",
        "outcome": "done",
        "details": {},
    }
    assert texts(await first.notify(note)) == ["outcome.done[lv] reference=DD-7K2Q9M"]
    assert await first.notify(note) == []
    restarted = await open_conversations()
    assert await restarted.notify(note) == []


async def test_a_notification_whose_send_failed_is_shown_when_it_comes_again(
    open_conversations: Opener,
) -> None:
    conversations = await open_conversations()
    note = {
        "id": 18,
        "chat": "term:h",
        "locale": "lv",
        "type": "request_outcome",
        "reference": "DD-7K2Q9M",
        "outcome": "done",
        "details": {},
    }

    async def unreachable(replies: list[Outgoing]) -> None:
        raise ConnectionError("the chat platform is down")

    with pytest.raises(ConnectionError):
        await conversations.notify(note, unreachable)
    sent: list[Outgoing] = []

    async def delivered(replies: list[Outgoing]) -> None:
        sent.extend(replies)

    await conversations.notify(note, delivered)
    assert texts(sent) == ["outcome.done[lv] reference=DD-7K2Q9M"]
    assert await conversations.notify(note, delivered) == []


async def test_a_partly_done_erasure_says_what_was_kept_why_and_until_when_in_the_locale(
    open_conversations: Opener,
) -> None:
    conversations = await open_conversations()
    await conversations.handle("term:i", Start(language_code="lv"))
    out = await conversations.notify(
        {
            "id": 18,
            "chat": "term:i",
            "locale": "lv",
            "type": "request_outcome",
            "reference": "DD-7K2Q9M",
            "outcome": "partly_done",
            "details": {
                "erased": ["marketing"],
                "holds": [
                    {"category": "transactions", "basis": "eu_aml_records", "until": "2029-06-30"},
                    {"category": "products", "basis": "product_open", "until": None},
                ],
            },
        }
    )
    [text] = texts(out)
    assert "outcome.partly_done[lv] reference=DD-7K2Q9M" in text
    assert "until=2029. gada 30. jūnijs" in text
    # The product_open basis only repeats "while your product is open": not said again.
    assert "outcome.hold_while_open_plain[lv] category=" in text
    assert "basis=basis.product_open" not in text


async def test_a_notification_speaks_the_language_the_chat_speaks_now(
    open_conversations: Opener,
) -> None:
    conversations = await open_conversations()
    await conversations.handle("term:o", Start(language_code="ru"))
    out = await conversations.notify(
        {
            "id": 20,
            "chat": "term:o",
            "locale": "en",
            "type": "request_escalated",
            "reference": "DD-B",
        }
    )
    assert texts(out) == ["outcome.escalated[ru] reference=DD-B"]


async def test_a_rejection_names_its_reason(open_conversations: Opener) -> None:
    conversations = await open_conversations()
    out = await conversations.notify(
        {
            "id": 19,
            "chat": "term:j",
            "locale": "en",
            "type": "request_outcome",
            "reference": "DD-AAAAAA",
            "outcome": "rejected",
            "reason": "review_rejected:no_basis",
        }
    )
    assert texts(out) == [
        "outcome.rejected[en] reason=reason.review_rejected.no_basis[en] reference=DD-AAAAAA"
    ]


async def test_asking_for_an_agent_opens_an_escalation(
    open_conversations: Opener, backend: LiveBackend
) -> None:
    conversations = await open_conversations()
    await conversations.handle("term:k", Start(language_code="ru"))
    await conversations.handle("term:k", Command("agent"))
    async with backend.services.sessions() as session:
        found = await escalations.open_for_chat(session, "term:k")
    assert found is not None
    assert (found.reason, found.locale) == ("asked", "ru")


async def test_repeated_misunderstanding_puts_the_chat_in_the_agents_queue(
    open_conversations: Opener, backend: LiveBackend
) -> None:
    conversations = await open_conversations()
    await conversations.handle("term:m", Start(language_code="zh-TW"))
    assert texts(await conversations.handle("term:m", Command("confused"))) == ["offer a person"]
    async with backend.services.sessions() as session:
        found = await escalations.open_for_chat(session, "term:m")
    assert found is not None
    assert (found.reason, found.locale) == ("misunderstanding", "zh_Hant")


async def test_a_broken_dialog_folder_on_reload_keeps_the_last_good_one(
    open_conversations: Opener, bot_settings: BotSettings, caplog: pytest.LogCaptureFixture
) -> None:
    conversations = await open_conversations()
    (bot_settings.dialogs_dir / "broken.yaml").write_text("nonsense")
    assert await conversations.reload() is False
    assert "broken.yaml:1: unknown step kind" in caplog.text
    assert texts(await conversations.handle("term:l", Start())) == ["menu"]
    (bot_settings.dialogs_dir / "broken.yaml").unlink()
    assert await conversations.reload() is True


async def test_the_command_menu_is_localised(open_conversations: Opener) -> None:
    conversations = await open_conversations()
    menu = conversations.commands("zh_Hant")
    assert ("status", "command_menu.status[zh_Hant]") in menu
    assert ("logout", "command_menu.logout[zh_Hant]") in menu
    assert [name for name, _ in menu][:3] == ["start", "cancel", "back"]


def test_dialogs_without_a_message_the_service_shows_are_refused_with_where(
    tmp_path: Path,
) -> None:
    dialogs = tmp_path / "dialogs"
    shutil.copytree(REPO_ROOT / "dialogs", dialogs)
    messages = dialogs / "messages.yaml"
    text = messages.read_text()
    messages.write_text(re.sub(r"\n  hygiene\.card:\n    text: [^\n]*", "", text))
    with pytest.raises(DialogErrors) as refused:
        DialogEngine().load(dialogs, Catalogs.load(REPO_ROOT / "locales"))
    assert f"{messages}: missing named message 'hygiene.card'" in str(refused.value)


async def test_conversations_idle_for_a_month_are_deleted_and_start_again(
    bot_settings: BotSettings,
) -> None:
    clock = FakeClock()
    client = BackendClient(bot_settings.backend_url, SERVICE_TOKEN)
    conversations = await Conversations.open(
        bot_settings, backend=client, engine=FakeEngine(), clock=clock
    )
    try:
        await conversations.handle("term:old", Start())
        await conversations.handle("term:old", Press("count"))
        await conversations.notify(
            {"id": 99, "chat": "term:old", "type": "request_escalated", "reference": "DD-AAAAAA"}
        )
        clock.advance(days=31)
        await conversations.handle("term:new", Start())
        # The idle chat's state is gone: its count starts again.
        assert texts(await conversations.handle("term:old", Press("count"))) == ["count 1"]
        assert not await conversations.store.was_shown("term:old", 99)
    finally:
        await conversations.close()
        await client.close()


async def test_an_edit_adding_a_card_number_is_deleted_explained_and_filed_masked_only(
    open_conversations: Opener, backend: LiveBackend
) -> None:
    conversations = await open_conversations()
    await conversations.handle("term:edit", Start(language_code="lv"))
    await conversations.handle("term:edit", Press("count"))
    out = await conversations.handle("term:edit", Edited(f"card {CARD}", message_id=7))
    assert out == [Delete(7, "card"), Reply("hygiene.card[lv]")]
    await conversations.flush()
    inbound = [t for d, t in await transcript(backend, "term:edit") if d == "in"]
    assert "card 411111••••••1111" in inbound
    assert not any("1111 1111" in t for _, t in await transcript(backend, "term:edit"))
    # The edit is not an answer: the dialog did not move.
    assert texts(await conversations.handle("term:edit", Press("count"))) == ["count 2"]


async def test_an_edit_without_anything_sensitive_is_left_alone(
    open_conversations: Opener, backend: LiveBackend
) -> None:
    conversations = await open_conversations()
    await conversations.handle("term:edit2", Start())
    await conversations.flush("term:edit2")
    before = await transcript(backend, "term:edit2")
    assert await conversations.handle("term:edit2", Edited("typo fixed", message_id=3)) == []
    await conversations.flush("term:edit2")
    assert await transcript(backend, "term:edit2") == before
    assert texts(await conversations.handle("term:edit2", Press("count"))) == ["count 1"]


async def test_an_update_delivered_again_after_a_restart_is_not_handled_twice(
    open_conversations: Opener,
) -> None:
    first = await open_conversations()
    await first.handle("tg:1", Start(update_id=10))
    assert texts(await first.handle("tg:1", Press("count", update_id=11))) == ["count 1"]
    await first.close()

    second = await open_conversations()
    saved = await second.store.load("tg:1")
    assert await second.handle("tg:1", Press("count", update_id=11)) == []
    assert await second.handle("tg:1", Start(update_id=10)) == []
    again = await second.store.load("tg:1")
    assert (again.version, again.state) == (saved.version, saved.state)
    assert texts(await second.handle("tg:1", Press("count", update_id=12))) == ["count 2"]


async def test_an_edit_delivered_again_is_not_deleted_twice(open_conversations: Opener) -> None:
    conversations = await open_conversations()
    await conversations.handle("tg:2", Start(update_id=20))
    edit = Edited(f"card {CARD}", message_id=4, update_id=21)
    assert (await conversations.handle("tg:2", edit))[0] == Delete(4, "card")
    assert await conversations.handle("tg:2", edit) == []


async def test_update_ids_are_not_compared_once_telegram_may_have_started_them_afresh(
    bot_settings: BotSettings,
) -> None:
    clock = FakeClock()
    client = BackendClient(bot_settings.backend_url, SERVICE_TOKEN)
    conversations = await Conversations.open(
        bot_settings, backend=client, engine=FakeEngine(), clock=clock
    )
    try:
        await conversations.handle("tg:3", Start(update_id=500))
        await conversations.handle("tg:3", Press("count", update_id=501))
        # After a week without updates Telegram picks new ids at random, perhaps lower.
        clock.advance(days=8)
        reply = await conversations.handle("tg:3", Press("count", update_id=7))
        assert texts(reply) == ["count 2"]
        assert await conversations.handle("tg:3", Press("count", update_id=7)) == []
    finally:
        await conversations.close()
        await client.close()
