"""What one customer update costs the backend: counted on a real backend on loopback.

The bot reaches the live backend through a counting pass-through on
loopback (real HTTP both ways), so every request the bot makes is seen,
method and route. A menu or a button that calls no action costs no request;
an update whose step needs the backend costs one. Transcript lines are not
on the customer's path: they are filed afterwards in batches, each once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import SERVICE_TOKEN, bot_settings_for, start_app
from fakes.customer import Customer, options, said
from fakes.smtp import running_smtp
from fakes.verification_world import ANNA, World, world

from backend import escalations
from backend.mailer import SmtpMailer
from bot.backend_client import BackendClient
from bot.channel import Outgoing
from bot.conversation import Conversations

__all__ = ["world"]

TRANSCRIPT = "POST /api/v1/transcript"


@dataclass
class Counter:
    """Requests that went through the pass-through, as ``METHOD /path``, in order."""

    url: str
    seen: list[str] = field(default_factory=list)
    # Requests answered 503 here instead of reaching the backend.
    down: set[str] = field(default_factory=set)

    def since(self, mark: int) -> list[str]:
        """Requests after the first ``mark`` ones, transcript filing left out."""
        return [r for r in self.seen[mark:] if r != TRANSCRIPT]


@pytest.fixture
async def counter(world: World) -> AsyncIterator[Counter]:
    """A pass-through to the live backend that notes every request."""
    found = Counter(url="")
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        found.seen.append(f"{request.method} {request.path}")
        if f"{request.method} {request.path}" in found.down:
            return web.json_response({"error": {"code": "unavailable"}}, status=503)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with session.request(
            request.method,
            world.backend.url + request.path_qs,
            data=await request.read(),
            headers=headers,
        ) as answer:
            body = await answer.read()
            return web.Response(
                status=answer.status,
                body=body,
                content_type=answer.content_type,
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner, found.url = await start_app(app)
    try:
        yield found
    finally:
        await runner.cleanup()
        await session.close()


@pytest.fixture
def mail(world: World) -> Iterator[None]:
    """A mail server on loopback: codes can go by SMS or by email, so the bot asks which."""
    before = world.services.mailer
    with running_smtp() as smtp:
        world.services.mailer = SmtpMailer(smtp.host, smtp.port, "bank@example.lv")
        try:
            yield
        finally:
            world.services.mailer = before


@pytest.fixture
async def customer(
    mail: None, counter: Counter, world: World, bot_db_url: str, tmp_path: Path
) -> AsyncIterator[Customer]:
    async with _customer(counter, bot_db_url, tmp_path) as found:
        yield found


@pytest.fixture
async def customer_without_mail(
    counter: Counter, world: World, bot_db_url: str, tmp_path: Path
) -> AsyncIterator[Customer]:
    async with _customer(counter, bot_db_url, tmp_path) as found:
        yield found


@contextlib.asynccontextmanager
async def _customer(counter: Counter, bot_db_url: str, tmp_path: Path) -> AsyncIterator[Customer]:
    settings = bot_settings_for(tmp_path, counter.url, bot_db_url)
    client = BackendClient(settings.backend_url, SERVICE_TOKEN)
    conversations = await Conversations.open(settings, backend=client)
    try:
        yield Customer(conversations, "term:count")
    finally:
        await conversations.close()
        await client.close()


async def test_a_menu_or_a_button_that_calls_no_action_costs_no_backend_request(
    customer: Customer, counter: Counter
) -> None:
    mark = len(counter.seen)
    menu = await customer.start("lv")
    assert "marketing_opt_out" in options(menu)
    asked = await customer.press("marketing_opt_out")
    assert any(r.contact_button for r in asked if hasattr(r, "contact_button"))
    offered = await customer.share(ANNA)
    assert options(offered) == ["sms", "email"], said(offered)
    assert counter.since(mark) == []


async def test_without_a_mail_server_sharing_the_number_costs_only_the_request_that_sends_the_code(
    customer_without_mail: Customer, counter: Counter
) -> None:
    customer = customer_without_mail
    await customer.start("lv")
    await customer.press("marketing_opt_out")
    mark = len(counter.seen)
    asked = await customer.share(ANNA)
    # No choice of channel: the code goes by SMS at once, and the code is asked for.
    assert options(asked) == ["resend", "change_number"], said(asked)
    assert counter.since(mark) == ["POST /api/v1/verifications"]


async def test_each_update_that_needs_the_backend_costs_one_request(
    customer: Customer, counter: Counter, world: World
) -> None:
    await customer.start("lv")
    await customer.press("marketing_opt_out")
    await customer.share(ANNA)

    mark = len(counter.seen)
    await customer.press("sms")
    assert counter.since(mark) == ["POST /api/v1/verifications"]

    code = await world.code_for(ANNA, 1)
    mark = len(counter.seen)
    shown = await customer.type(code)
    # The code is checked and the consent state comes back in the same answer.
    assert counter.since(mark) == [f"POST /api/v1/verifications/{_one_id(counter)}/check"]
    assert options(shown), said(shown)


def _one_id(counter: Counter) -> str:
    checks = [r for r in counter.seen if r.endswith("/check")]
    return checks[-1].split("/")[-2]


async def test_lines_kept_while_the_backend_is_down_are_filed_later_in_one_batch_in_order_once(
    customer: Customer, counter: Counter, world: World
) -> None:
    counter.down.add(TRANSCRIPT)
    await customer.start("lv")
    await customer.press("marketing_opt_out")
    await customer.share(ANNA)
    await customer.conversations.flush()
    async with world.services.sessions() as session:
        assert await escalations.transcript(session, "term:count") == []

    counter.down.clear()
    mark = len(counter.seen)
    await customer.conversations.flush()
    await customer.conversations.flush()
    # Three updates' six lines in one request; nothing left to file after it.
    assert counter.seen[mark:] == [TRANSCRIPT]
    async with world.services.sessions() as session:
        entries = await escalations.transcript(session, "term:count")
    assert [e.direction for e in entries] == ["in", "out"] * 3
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0].text == "/start"
    # The button shows as the words the customer tapped, in their language.
    assert entries[2].text == "[Atteikties no mārketinga paziņojumiem]"


async def test_an_agent_taking_over_is_learned_from_the_notification_not_by_asking(
    customer: Customer, counter: Counter, world: World
) -> None:
    await customer.start("lv")
    joined = await customer.conversations.notify(
        {"id": 1, "chat": "term:count", "type": "agent_joined", "details": {"name": "Anna"}}
    )
    assert joined
    mark = len(counter.seen)
    # The dialogs stay quiet: the message is for the agent, and costs no request now.
    assert await customer.type("is anyone there?") == []
    assert counter.since(mark) == []
    await customer.conversations.flush()
    async with world.services.sessions() as session:
        entries = await escalations.transcript(session, "term:count")
    assert entries[-1].direction == "in"
    assert entries[-1].text == "is anyone there?"


async def test_every_update_of_the_opt_out_journey_costs_at_most_one_request(
    customer: Customer, counter: Counter, world: World
) -> None:
    costs: list[tuple[str, list[str]]] = []

    async def step(name: str, update: Awaitable[list[Outgoing]]) -> list[Outgoing]:
        mark = len(counter.seen)
        out = await update
        costs.append((name, counter.since(mark)))
        return out

    await step("/start", customer.start("en"))
    await step("opt out", customer.press("marketing_opt_out"))
    await step("share contact", customer.share(ANNA))
    await step("by sms", customer.press("sms"))
    code = await world.code_for(ANNA, 1)
    await step("code", customer.type(code))
    await step("all channels", customer.press("all"))
    done = await step("yes", customer.press("yes"))
    assert "DD-" in said(done), said(done)
    assert all(len(requests) <= 1 for _, requests in costs), costs
    assert [name for name, requests in costs if requests] == ["by sms", "code", "yes"]
