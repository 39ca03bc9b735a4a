"""The bot seals conversation state with its own key, and a state it cannot open is no state.

``bot.state_key`` holds the bot's key; ``StateStore`` seals each chat's state
and context under it. A row sealed under another key (the shared key of
earlier versions, or before the operator changed the bot's key) does not
crash anything: the customer starts again at the menu, and the log says so
without a word of what the row held.
"""

from __future__ import annotations

import json
import logging
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import BOT_SECRET_KEY, SECRET_KEY, SERVICE_TOKEN, bot_settings_for
from fakes.customer import Customer, options, ours, replies, said
from fakes.legacy import v1_value
from fakes.verification_world import ANNA, World, world
from sqlalchemy import update

from bot.backend_client import BackendClient
from bot.conversation import Conversations
from bot.settings import BotSettings
from bot.state import ConversationRow, StateStore
from bot.state_key import BOT_KEY_FILE, SealError, StateKey, load_state_key

__all__ = ["world"]

OTHER_KEY = "another-bot-key-the-operator-rotated-to"


def test_a_sealed_value_opens_only_with_the_same_key_for_the_same_chat() -> None:
    key = StateKey(BOT_SECRET_KEY)
    sealed = key.seal('{"step": "verify"}', bound_to="tg:1\x00state")

    assert key.open(sealed, bound_to="tg:1\x00state") == '{"step": "verify"}'
    assert "verify" not in sealed
    with pytest.raises(SealError):
        StateKey(OTHER_KEY).open(sealed, bound_to="tg:1\x00state")
    with pytest.raises(SealError):
        key.open(sealed, bound_to="tg:2\x00state")
    with pytest.raises(SealError):
        key.open(sealed, bound_to="tg:1\x00context")
    with pytest.raises(SealError):
        key.open(sealed[:-4] + "AAAA", bound_to="tg:1\x00state")
    with pytest.raises(SealError):
        key.open("s1.not*base64", bound_to="tg:1\x00state")


def test_what_the_backend_key_sealed_does_not_open_with_the_bot_key() -> None:
    legacy = v1_value(SECRET_KEY, '{"step": "verify"}')

    with pytest.raises(SealError, match="older form"):
        StateKey(BOT_SECRET_KEY).open(legacy, bound_to="tg:1\x00state")


def test_without_a_configured_key_the_bot_makes_its_own_in_a_private_file(tmp_path: Path) -> None:
    settings = BotSettings(data_dir=tmp_path / "bot-var")

    first = load_state_key(settings)
    sealed = first.seal("kept", bound_to="c")

    key_file = tmp_path / "bot-var" / BOT_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "bot-var").stat().st_mode) == 0o700
    # A restarted bot reads the same key and opens what the first one sealed.
    assert load_state_key(settings).open(sealed, bound_to="c") == "kept"
    assert sorted(p.name for p in (tmp_path / "bot-var").iterdir()) == [BOT_KEY_FILE]


def test_a_configured_key_writes_no_key_file(tmp_path: Path) -> None:
    settings = BotSettings(data_dir=tmp_path / "bot-var", bot_secret_key=BOT_SECRET_KEY)

    sealed = load_state_key(settings).seal("kept", bound_to="c")

    assert StateKey(BOT_SECRET_KEY).open(sealed, bound_to="c") == "kept"
    assert not (tmp_path / "bot-var" / BOT_KEY_FILE).exists()


async def _at_the_contact_step(settings: BotSettings, client: BackendClient) -> Customer:
    conversations = await Conversations.open(settings, backend=client)
    customer = Customer(conversations, "term:anna")
    await customer.start("lv")
    out = await customer.press("update_contact")
    assert any(r.contact_button for r in replies(out)), said(out)
    await conversations.close()
    return customer


async def _reopened(settings: BotSettings, client: BackendClient, customer: Customer) -> Customer:
    customer.conversations = await Conversations.open(settings, backend=client)
    return customer


async def test_after_the_bot_key_changes_a_customer_mid_journey_starts_again_at_the_menu(
    world: World, bot_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = bot_settings_for(tmp_path, world.backend.url, bot_db_url)
    client = BackendClient(settings.backend_url, SERVICE_TOKEN)
    try:
        customer = await _at_the_contact_step(settings, client)
        customer = await _reopened(replace(settings, bot_secret_key=OTHER_KEY), client, customer)
        caplog.set_level(logging.INFO)

        out = await customer.share(ANNA)

        assert "update_contact" in options(out), said(out)
        # The next event carries on from the menu it was shown: the state was saved anew.
        out = await customer.press("update_contact")
        assert any(r.contact_button for r in replies(out)), said(out)
        await customer.conversations.close()
    finally:
        await client.close()
    logged = ours(caplog)
    assert "chat term:anna: saved conversation does not open (SealError)" in logged
    assert ANNA not in logged


async def test_a_conversation_sealed_under_the_old_shared_key_starts_again_at_the_menu(
    world: World, bot_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = bot_settings_for(tmp_path, world.backend.url, bot_db_url)
    client = BackendClient(settings.backend_url, SERVICE_TOKEN)
    try:
        customer = await _at_the_contact_step(settings, client)
        # What earlier versions wrote: the same row, sealed with the backend's keyring.
        store = StateStore.open(settings.bot_database_url, load_state_key(settings))
        async with store.sessions() as session:
            await session.execute(
                update(ConversationRow)
                .where(ConversationRow.chat == "term:anna")
                .values(
                    state=v1_value(SECRET_KEY, json.dumps({"flow": "update_contact"})),
                    context=v1_value(SECRET_KEY, json.dumps({"phone": ANNA})),
                )
            )
            await session.commit()
        await store.close()
        customer = await _reopened(settings, client, customer)
        caplog.set_level(logging.INFO)

        out = await customer.share(ANNA)

        assert "update_contact" in options(out), said(out)
        await customer.conversations.close()
    finally:
        await client.close()
    logged = ours(caplog)
    assert "chat term:anna: saved conversation does not open (SealError)" in logged
    assert ANNA not in logged
