"""No personal value anywhere in the logs when the outside world or the code fails.

Real components fail for real: an SMTP server refuses the recipient, the SMS
gateway answers 500, a database table is gone, a write fails before its
fields are encrypted, the dialog engine crashes on what a customer typed.
Everything logged at DEBUG is searched, as the product's handler writes it
and as raw messages, for the customer's name, address, phone, email and
one-time code. Each test also checks the failure did happen and was logged,
so a quiet log cannot pass for a clean one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from conftest import BOT_SECRET_KEY
from fakes.customer import Customer, Opener, open_conversations, said, smtp, verify
from fakes.ledger import add_customers, session_token, submit
from fakes.personal import (
    NEW_ADDRESS,
    OLGA,
    OLGA_EMAIL,
    OLGA_PHONE,
    OLGA_REF,
    PERSONAL,
    Logged,
    logged,
)
from fakes.smtp import running_smtp
from fakes.verification_world import ANNA, World, world
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend.crypto import Keyring
from backend.ledger.worker import run_one
from backend.mailer import SmtpMailer
from bot.state import StateStore
from bot.state_key import StateKey
from common.db import make_engine

__all__ = ["logged", "open_conversations", "smtp", "world"]


async def eventually(condition: Callable[[], bool], within: float = 15.0) -> None:
    """Wait until ``condition`` holds (deliveries run in background tasks)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (the log has no event to wait on)
            await asyncio.sleep(0.02)


async def test_a_refused_email_recipient_leaves_no_address_in_the_logs(
    world: World, logged: Logged
) -> None:
    await add_customers(world.services, OLGA)
    with running_smtp(refuse_recipients=True) as mailbox:
        world.services.mailer = SmtpMailer(mailbox.host, mailbox.port, "datadesk@bank.test")
        status, started = await world.start(OLGA_PHONE, channel="email")
        assert status == 202
        await eventually(lambda: "code not delivered" in logged.written)
    assert mailbox.refused == [OLGA_EMAIL]
    # What went wrong is still said: which verification, and the server's reply code.
    assert f"verification {started['verification_id']}: code not delivered" in logged.written
    assert "SMTPRecipientsRefused 550" in logged.written
    assert logged.leaks(PERSONAL) == []


async def test_a_failing_sms_gateway_leaves_no_number_or_code_in_the_logs(
    world: World, logged: Logged
) -> None:
    await add_customers(world.services, OLGA)
    world.sink.fail_next(4, 500)
    status, started = await world.start(OLGA_PHONE)
    assert status == 202
    await eventually(lambda: "code not delivered" in logged.written)
    assert [status for status, _ in world.sink.rejected] == [500, 500, 500, 500]
    found = re.search(r"\b\d{6}\b", world.sink.refused[0].text)
    assert found is not None
    assert "HTTP 500" in logged.written
    assert started["verification_id"] in logged.written
    assert logged.leaks([*PERSONAL, found.group(0)]) == []


async def test_a_missing_crm_table_in_the_worker_leaves_no_name_or_address_in_the_logs(
    world: World, logged: Logged
) -> None:
    await add_customers(world.services, OLGA)
    token = await session_token(world.services, OLGA_REF)
    status, _ = await submit(
        world.backend, token, "update_contact", {"field": "address", "address": NEW_ADDRESS}
    )
    assert status == 201
    engine = world.services.engine
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE crm_addresses RENAME TO crm_addresses_gone"))
    try:
        assert await run_one(world.services, world.services.crm, "w1") is True
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE crm_addresses_gone RENAME TO crm_addresses"))
    assert "attempt 1 failed" in logged.written
    assert logged.leaks(PERSONAL) == []


async def test_a_write_that_fails_before_encryption_answers_503_and_logs_no_text(
    world: World, logged: Logged, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def key_store_down(self: Keyring, plaintext: str, aad: str) -> str:
        raise RuntimeError("the key store is not available")

    monkeypatch.setattr(Keyring, "encrypt", key_store_down)
    status, body = await world.call(
        "POST",
        "/api/v1/chats/tg:77/messages",
        {"direction": "in", "text": "Olga Petrova, Tērbatas iela 14-3, Rīga"},
    )
    monkeypatch.undo()
    assert (status, body) == (
        503,
        {"error": {"code": "internal_error", "message": "internal error; try again"}},
    )
    assert "unhandled error in POST /api/v1/chats/tg:77/messages" in logged.written
    assert "RuntimeError: the key store is not available" in caplog.text
    assert logged.leaks(PERSONAL) == []
    # Even Python's own rendering, messages and all, has none: the engine hides
    # the statement's parameters, which held the text before it was encrypted.
    assert [v for v in PERSONAL if v in caplog.text] == []


async def test_an_engine_crash_on_a_customer_message_leaves_no_text_in_the_logs(
    open_conversations: Opener, world: World, logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversations = await open_conversations()
    customer = Customer(conversations, "term:crash")
    await customer.start("en")
    await verify(customer, world)
    code = world.sink.codes_for(ANNA)[-1]
    await customer.press("address")
    step = conversations.engine.step

    def crashing(dialogs: Any, state: Any, event: Any, catalogs: Any) -> Any:
        typed = getattr(event, "text", None)
        if typed is not None:
            # A bug that quotes what it could not handle, as bugs do.
            raise ValueError(f"no rule for {typed!r}")
        return step(dialogs, state, event, catalogs)

    monkeypatch.setattr(conversations.engine, "step", crashing)
    out = await customer.type("Olga Petrova, Tērbatas iela 14-3, Rīga, LV-1011, Latvia")
    assert said(out), "the customer is told something went wrong"
    assert "engine failed; conversation restarted" in logged.written
    assert "ValueError" in logged.written
    anna = ("Bērziņa", ANNA.removeprefix("+371"), code)
    assert logged.leaks([*PERSONAL, *anna]) == []


async def test_every_engine_keeps_sql_parameters_out_of_its_errors(
    backend_db_url: str, bot_db_url: str
) -> None:
    backend_engine = make_engine(backend_db_url)
    store = StateStore.open(bot_db_url, StateKey(BOT_SECRET_KEY))
    try:
        for engine in (backend_engine, store.engine):
            with pytest.raises(DBAPIError) as failed:
                async with engine.connect() as conn:
                    await conn.execute(
                        text("SELECT * FROM no_such_table WHERE name = :name"),
                        {"name": "Olga Petrova"},
                    )
            assert "Olga" not in str(failed.value)
            assert "hide_parameters=True" in str(failed.value)
    finally:
        await backend_engine.dispose()
        await store.close()
