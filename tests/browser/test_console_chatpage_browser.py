"""An agent's and a supervisor's day on the console's chat page, history and shift view.

Real browser (Debian's Chromium), the whole system running (tests/e2e's stack):
what the customer taps and types in Telegram is what the agent reads. Every
page is looked at on a desktop and at 375 px; screenshots go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from conftest import LiveBackend
from e2e.conftest import Stack
from fakes.console import add_agent
from fakes.ledger import add_customers, customer, preview, session_token, submit
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from backend import escalations
from backend.ledger.transitions import Lease, transition
from backend.models.console import Escalation
from backend.models.ledger import Request
from common.masking import mask_text
from common.vocabulary.request_states import FAILED, QUEUED, RUNNING

from .conftest import DESKTOP, PHONE
from .test_console_browser import escalation_for, fits_a_phone, log_in, screenshot, start

ADDRESS = {"line1": "Elizabetes iela 2", "city": "Rīga", "postcode": "LV-1010", "country": "LV"}
BOT_EXAMPLE = (
    "That doesn't look like a phone number. "
    "Please type it with the country code, for example +371 20000000."
)


SCROLL_TO_NEWEST = (
    "() => { const t = document.getElementById('transcript');"
    " if (t) t.scrollTop = t.scrollHeight; }"
)


async def both_sizes(page: Page, path: Path, name: str) -> None:
    """Screenshots on a desktop and at 375 px, where nothing may scroll sideways."""
    await screenshot(page, path / f"{name}-desktop.png")
    await page.set_viewport_size(PHONE)
    # As the page opens at this width: the transcript at its newest lines.
    await page.evaluate(SCROLL_TO_NEWEST)
    await screenshot(page, path / f"{name}-375.png")
    await fits_a_phone(page)
    await page.set_viewport_size(DESKTOP)


async def api_call(stack: Stack, method: str, path: str, body: dict[str, Any]) -> Any:
    """Call the backend's API as the bot does (service token)."""
    headers = {"Authorization": f"Bearer {stack.settings.service_token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as client,
        client.request(method, f"{stack.backend_url}{path}", json=body) as resp,
    ):
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def verified_chat(stack: Stack, ref: str, name: str, chat: str, reason: str) -> str:
    """A verified customer's chat waiting for a person; return the escalation id."""
    record = customer(ref)
    record["name"] = name
    await add_customers(stack.services, record)
    token = await session_token(stack.services, ref, chat=chat)
    body = {"chat": chat, "reason": reason, "locale": "lv", "session_token": token}
    return str((await api_call(stack, "POST", "/api/v1/escalations", body))["escalation_id"])


async def new_request(stack: Stack, ref: str, chat: str) -> str:
    """A queued address change; return its reference."""
    token = await session_token(stack.services, ref, chat=chat)
    headers = {"Authorization": f"Bearer {stack.settings.service_token}"}
    async with aiohttp.ClientSession(headers=headers) as client:
        backend = LiveBackend(url=stack.backend_url, services=stack.services, client=client)
        status, body = await submit(
            backend, token, "update_contact", {"field": "address", "address": ADDRESS}, chat=chat
        )
    assert status == 201, body
    return str(body["reference"])


async def state_of(stack: Stack, reference: str) -> str:
    async with stack.services.sessions() as session:
        return str(
            await session.scalar(select(Request.state).where(Request.reference == reference))
        )


async def test_an_agents_day_heading_taps_masking_wait_notes_and_history(
    stack: Stack, chromium: Browser, artifacts: Path
) -> None:
    api, clock = stack.api, stack.clock
    await add_agent(stack.services, "alice")
    # A verified customer with a request in the queue is waiting...
    es = await verified_chat(stack, "C-4001", "Anna Bērziņa", "tg:5102", "asked")
    reference = await new_request(stack, "C-4001", "tg:5102")
    # ...and one in Telegram taps "Talk to a person" in Latvian, then writes.
    await start(stack, 5101, "lv")
    await api.press_button(5101, "agent")
    await api.wait_for_message(5101)
    tapped = await escalation_for(stack, "tg:5101")
    await api.send_text(5101, "12345")
    await api.send_text(5101, "tālrunis +37120000001, samaksāju 1 250.00 EUR par DD-7K2Q9M")
    await api_call(
        stack, "POST", "/api/v1/chats/tg:5101/messages", {"direction": "out", "text": BOT_EXAMPLE}
    )
    clock.advance(minutes=7)

    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await log_in(page, stack, "alice")
    # The shift at a glance: two waiting, both in Latvian, the oldest for 7 minutes.
    await expect(page.locator("#count-waiting")).to_have_text("2")
    await expect(page.locator("#oldest-wait")).to_have_text("7 min")
    await expect(page.locator("#by-language")).to_contain_text("Latviešu: 2")
    await expect(page.locator("#by-reason")).to_contain_text("Asked for a person: 2")
    await expect(page.locator(f'tr[data-escalation="{es}"]')).to_contain_text("C-4001")
    await both_sizes(page, artifacts, "shift-agent")

    # The tap shows as the words the customer tapped; masking hides only personal data.
    await page.goto(f"{stack.backend_url}/console/chats/{tapped}")
    transcript = page.locator("#transcript")
    await expect(transcript).to_contain_text("[Runāt ar darbinieku]", timeout=10_000)
    await expect(transcript).not_to_contain_text("[agent]")
    await expect(transcript.locator(".msg.in", has_text="12345")).to_have_count(1, timeout=10_000)
    await expect(transcript).to_contain_text(
        "tālrunis +371 2•••••01, samaksāju 1 250.00 EUR par DD-7K2Q9M"
    )
    await expect(transcript).not_to_contain_text("+37120000001")
    example = transcript.locator(".msg.out", has_text="for example")
    await expect(example).to_contain_text("for example +371 20000000.")
    await expect(page.locator("#chat-title")).to_have_text("Chat with an unverified customer")
    await page.reload()  # every line is in: the page opens at the newest ones
    await expect(transcript.locator(".msg").last).to_be_in_viewport()
    await both_sizes(page, artifacts, "chat-masking")

    # The verified customer's chat names them by reference and masked name.
    await page.goto(f"{stack.backend_url}/console/chats/{es}")
    await expect(page.locator("#chat-title")).to_have_text(
        f"Chat with C-4001 · {mask_text('Anna Bērziņa')}"
    )
    await expect(page.locator("#language")).to_have_text("Latviešu")
    await expect(page.locator("#verification")).to_have_text("verified")
    await expect(page.locator("#waited")).to_have_text("7 min")
    await page.get_by_role("button", name="Take over").click()
    await expect(page.locator("#state")).to_have_text("yours")
    since = clock.now().strftime("%H:%M")
    clock.advance(minutes=9)
    await page.reload()
    # The wait stopped at take-over; the page says who holds the chat and since when.
    await expect(page.locator("#waited")).to_have_text("7 min")
    await expect(page.locator("#holder")).to_have_text(f"alice since {since}")
    requests = page.locator(f'#requests li[data-reference="{reference}"]')
    await expect(requests.locator(".state")).to_have_text(await state_of(stack, reference))
    await expect(requests.get_by_role("button")).to_have_count(0)  # supervisors act on requests
    await page.get_by_label("Add a note for colleagues").fill(
        "Wants the new address on the card too"
    )
    await page.get_by_role("button", name="Add note").click()
    await expect(page.locator("#notes")).to_contain_text("Wants the new address on the card too")
    await expect(page.locator("#notes")).to_contain_text("— alice")
    await both_sizes(page, artifacts, "chat-agent")
    # The note reached no one but colleagues: the customer's chat got no such message.
    assert all("card too" not in (m.text or "") for m in api.messages(5102))

    await page.get_by_role("button", name="Hand back").click()
    await expect(page.get_by_role("heading", name="Escalated chats")).to_be_visible()

    # The closed chat stays in the history: by customer, request reference or day.
    await page.get_by_role("link", name="History").click()
    for field, value in (
        ("Customer reference", "C-4001"),
        ("Request reference", reference),
    ):
        await page.goto(f"{stack.backend_url}/console/history")
        await page.get_by_label(field).fill(value)
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator(f'tr[data-escalation="{es}"]')).to_have_count(1)
    await page.goto(f"{stack.backend_url}/console/history")
    await page.get_by_label("Closed on").fill(clock.now().date().isoformat())
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator(f'tr[data-escalation="{es}"]')).to_contain_text("handed back")
    await both_sizes(page, artifacts, "history")
    await page.locator(f'tr[data-escalation="{es}"]').get_by_role("link", name="Read").click()
    await expect(page.locator("#chat-title")).to_have_text(
        f"Chat with C-4001 · {mask_text('Anna Bērziņa')}"
    )
    await expect(page.locator("#notes")).to_contain_text("Wants the new address on the card too")
    await expect(page.locator("main form")).to_have_count(0)  # read-only
    await expect(page.locator("main textarea")).to_have_count(0)
    await both_sizes(page, artifacts, "history-chat")
    await context.close()


async def held_erasure(stack: Stack, ref: str, chat: str, scope: list[str]) -> str:
    """An erasure of ``scope``, approved to run tomorrow (so no worker takes it yet)."""
    token = await session_token(stack.services, ref, chat=chat)
    headers = {"Authorization": f"Bearer {stack.settings.service_token}"}
    async with aiohttp.ClientSession(headers=headers) as client:
        backend = LiveBackend(url=stack.backend_url, services=stack.services, client=client)
        _, plan = await preview(backend, token, scope)
        _, body = await submit(
            backend, token, "erasure", {"preview_id": plan["preview_id"]}, chat=chat
        )
    assert body["state"] == "awaiting_review", body  # erasures wait for review here
    now = stack.clock.now()
    async with stack.services.sessions() as session, session.begin():
        row = await session.scalar(select(Request).where(Request.reference == body["reference"]))
        assert row is not None
        later = now + timedelta(days=1)
        await transition(session, row, QUEUED, actor="agent:test", at=now, run_at=later)
    return str(body["reference"])


async def fail(stack: Stack, reference: str) -> None:
    """A worker claims the request and it fails; the ledger escalates the chat."""
    now = stack.clock.now()
    async with stack.services.sessions() as session, session.begin():
        row = await session.scalar(select(Request).where(Request.reference == reference))
        assert row is not None
        lease = Lease("worker-test", now + timedelta(minutes=5))
        await transition(session, row, RUNNING, actor="worker:test", at=now, lease=lease)
        await transition(session, row, FAILED, actor="worker:test", at=now, reason="crm_down")


async def test_a_supervisors_day_shift_reassign_retry_and_cancel(
    stack: Stack, chromium: Browser, artifacts: Path
) -> None:
    alice = await add_agent(stack.services, "alice")
    await add_agent(stack.services, "bob")
    await add_agent(stack.services, "sue", "supervisor")
    record = customer("C-4002")
    record["name"] = "Jānis Ozols"
    await add_customers(stack.services, record)
    failed = await held_erasure(stack, "C-4002", "tg:5201", ["marketing"])
    queued = await held_erasure(stack, "C-4002", "tg:5201", ["transactions"])
    await fail(stack, failed)
    stack.clock.advance(minutes=2)  # the failed request's chat waits two minutes for alice
    async with stack.services.sessions() as session, session.begin():
        es = await session.scalar(select(Escalation.id).where(Escalation.chat == "tg:5201"))
        assert es is not None
        await escalations.take_over(session, es, agent_id=alice, at=stack.clock.now())
    since = stack.clock.now().strftime("%H:%M")
    stack.clock.advance(minutes=4)
    await escalate_more(stack)
    stack.clock.advance(minutes=3)

    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await log_in(page, stack, "sue")
    row = page.locator(f'tr[data-escalation="{es}"]')
    await expect(row).to_contain_text(f"alice since {since}")
    await expect(row).to_contain_text("A request failed")
    await expect(row.locator('td[data-label="Waited"]')).to_have_text("2 min")
    await expect(page.locator("#oldest-wait")).to_have_text("3 min")
    await expect(page.locator("#count-taken")).to_have_text("1")
    await expect(page.locator("#count-waiting")).to_have_text("2")
    await expect(page.locator("#by-language")).to_contain_text("Русский: 1")
    await both_sizes(page, artifacts, "shift-supervisor")

    # alice has the chat open while the supervisor reassigns it.
    alices = await chromium.new_context(viewport=PHONE)
    alices_page = await alices.new_page()
    await log_in(alices_page, stack, "alice")
    await alices_page.goto(f"{stack.backend_url}/console/chats/{es}")
    await expect(alices_page.locator("#state")).to_have_text("yours")

    await row.get_by_role("link", name="Open").click()
    await expect(page.locator("#chat-title")).to_have_text(
        f"Chat with C-4002 · {mask_text('Jānis Ozols')}"
    )
    await page.locator(".reassign summary").click()
    await page.get_by_label("Give it to").select_option(label="bob")
    await (
        page.locator("#reassign-form")
        .get_by_label(re.compile("Why"))
        .fill("alice's shift ends at six")
    )
    await page.get_by_role("button", name="Reassign").click()
    await expect(page.locator("#holder")).to_contain_text("bob since")
    # alice's open page learns it live: the chat is no longer hers to answer.
    await expect(alices_page.locator("#holder")).to_contain_text("bob since", timeout=10_000)
    await expect(alices_page.locator("#state")).to_have_text("taken")
    await expect(alices_page.locator("#reply-form")).to_have_count(0)
    await alices.close()

    item = page.locator(f'#requests li[data-reference="{failed}"]')
    await expect(item).to_contain_text("failed")
    await item.locator("summary").click()
    await item.get_by_label("Why retry? (recorded)").fill("The CRM is back after the outage")
    await both_sizes(page, artifacts, "chat-supervisor")
    await item.get_by_role("button", name=f"Retry {failed}").click()
    await expect(page.locator(f'#requests li[data-reference="{failed}"]')).not_to_contain_text(
        "failed ·"
    )
    for _ in range(100):  # the worker carries out the retried request
        if await state_of(stack, failed) in ("done", "partly_done"):
            break
        await asyncio.sleep(0.1)
    assert await state_of(stack, failed) in ("done", "partly_done")

    item = page.locator(f'#requests li[data-reference="{queued}"]')
    await item.locator("summary").click()
    await item.get_by_label("The customer is told").select_option("duplicate_request")
    await item.get_by_label("Why cancel? (recorded)").fill("Same change asked for twice")
    await item.get_by_role("button", name=f"Cancel {queued}").click()
    await expect(page.locator(f'#requests li[data-reference="{queued}"]')).to_contain_text(
        "rejected"
    )
    assert await state_of(stack, queued) == "rejected"
    await context.close()


async def escalate_more(stack: Stack) -> None:
    """Two more chats wait: one in Russian, one in Latvian."""
    for chat, locale in (("tg:5202", "ru"), ("tg:5203", "lv")):
        body = {"chat": chat, "reason": "lockout", "locale": locale, "verified": False}
        await api_call(stack, "POST", "/api/v1/escalations", body)
