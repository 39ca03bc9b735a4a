"""An agent and a supervisor use the console in a real browser; the customer sees it in Telegram."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from conftest import LiveBackend
from e2e.conftest import Stack
from fakes.console import PASSWORD, add_agent
from fakes.ledger import add_customers, customer, preview, session_token, submit
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from backend.models.console import Escalation
from backend.models.ledger import Request
from common.masking import mask_phone

from .conftest import DESKTOP, PHONE

CHAT = 5_001


async def start(stack: Stack, chat: int, language_code: str) -> None:
    """The customer opens the chat and sees the main menu."""
    await stack.api.send_text(chat, "/start", language_code=language_code)
    await stack.api.wait_for_message(chat, buttons="agent")


async def log_in(page: Page, stack: Stack, name: str) -> None:
    await page.goto(f"{stack.backend_url}/console/")
    await expect(page).to_have_url(re.compile(r"/console/login"))
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Escalated chats")).to_be_visible()


async def escalation_for(stack: Stack, chat: str) -> str:
    """The chat's escalation; the bot opens it before it tells the customer someone will come."""
    async with stack.services.sessions() as session:
        es = await session.scalar(select(Escalation.id).where(Escalation.chat == chat))
    assert es is not None, f"no escalation for {chat}"
    return es


async def screenshot(page: Page, path: Path) -> None:
    await page.screenshot(path=str(path), full_page=True)


async def fits_a_phone(page: Page) -> None:
    """At 375 px nothing makes the page scroll sideways."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a phone"


async def test_an_agent_takes_over_a_telegram_chat_replies_and_hands_back(
    stack: Stack, chromium: Browser, artifacts: Path
) -> None:
    api = stack.api
    await add_agent(stack.services, "alice")
    await start(stack, CHAT, "lv")
    await api.press_button(CHAT, "agent")
    await api.wait_for_message(CHAT)  # "a colleague will join"
    es = await escalation_for(stack, f"tg:{CHAT}")

    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await log_in(page, stack, "alice")
    row = page.locator(f'tr[data-escalation="{es}"]')
    await expect(row).to_contain_text("Asked for a person")
    await expect(row).to_contain_text("Latviešu")
    await expect(row).to_contain_text("not verified")
    await screenshot(page, artifacts / "queue-desktop.png")
    await page.set_viewport_size(PHONE)
    await screenshot(page, artifacts / "queue-375.png")
    await fits_a_phone(page)
    await page.set_viewport_size(DESKTOP)

    # Another customer asks for a person: the open queue shows them without a reload.
    await start(stack, CHAT + 1, "ru")
    await api.press_button(CHAT + 1, "agent")
    await api.wait_for_message(CHAT + 1)
    other = page.locator(f'tr[data-escalation="{await escalation_for(stack, f"tg:{CHAT + 1}")}"]')
    await expect(other).to_contain_text("Русский", timeout=10_000)

    await row.get_by_role("link", name="Open").click()
    await page.get_by_role("button", name="Take over").click()
    await expect(page.locator("#state")).to_have_text("yours")
    joined = await api.wait_for_message(CHAT)
    assert joined.text

    # The customer writes; the agent sees it live, masked, without reloading.
    await api.send_text(CHAT, "Labdien, mans e-pasts ir anna@example.lv")
    line = page.locator("#transcript .msg.in").last
    await expect(line).to_contain_text("a•••@example.lv", timeout=10_000)
    await expect(page.locator("#transcript")).not_to_contain_text("anna@example.lv")

    await page.get_by_label(re.compile("Reply to the customer")).fill("Labdien! Kā varu palīdzēt?")
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.locator("#transcript .msg.agent").last).to_contain_text("Kā varu palīdzēt?")
    reply = await api.wait_for_message(CHAT, "Kā varu palīdzēt?")
    assert reply.text == "Labdien! Kā varu palīdzēt?"

    await screenshot(page, artifacts / "chat-desktop.png")
    await page.set_viewport_size(PHONE)
    await screenshot(page, artifacts / "chat-375.png")
    await fits_a_phone(page)
    await page.set_viewport_size(DESKTOP)

    await page.get_by_label(re.compile("Hand back")).select_option("menu")
    await page.get_by_role("button", name="Hand back").click()
    await expect(page.get_by_role("heading", name="Escalated chats")).to_be_visible()
    await expect(page.locator(f'tr[data-escalation="{es}"]')).to_have_count(0)
    await expect(page.locator("tr[data-escalation]")).to_have_count(1)
    await api.wait_for_message(CHAT, buttons="update_contact", timeout=15)
    await context.close()


async def test_a_supervisor_approves_an_erasure_awaiting_review(
    stack: Stack, chromium: Browser, artifacts: Path
) -> None:
    await add_agent(stack.services, "sam", "supervisor")
    await add_customers(stack.services, customer("C-3001", phone="+37120000031"))
    token = await session_token(stack.services, "C-3001", chat=f"tg:{CHAT}")

    client = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {stack.settings.service_token}"}
    )
    backend = LiveBackend(url=stack.backend_url, services=stack.services, client=client)
    try:
        _, plan = await preview(backend, token, ["marketing", "transactions"])
        _, body = await submit(
            backend, token, "erasure", {"preview_id": plan["preview_id"]}, chat=f"tg:{CHAT}"
        )
    finally:
        await client.close()
    reference = body["reference"]
    assert body["state"] == "awaiting_review"

    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await log_in(page, stack, "sam")
    await page.get_by_role("link", name="Review").click()
    card = page.locator(f'article[data-reference="{reference}"]')
    await expect(card).to_contain_text("marketing")
    await screenshot(page, artifacts / "review-desktop.png")
    await page.set_viewport_size(PHONE)
    await screenshot(page, artifacts / "review-375.png")
    await fits_a_phone(page)
    await card.get_by_role("button", name="Approve").click()
    await expect(page.get_by_text("Nothing is waiting for review")).to_be_visible()
    await context.close()

    # The worker carries it out and the customer hears the outcome in the chat.
    await stack.api.wait_for_message(CHAT, reference, timeout=20)
    async with stack.services.sessions() as session:
        state = await session.scalar(select(Request.state).where(Request.reference == reference))
    assert state in ("done", "partly_done")


async def test_an_agent_reveals_one_field_of_a_verified_customer_for_a_reason(
    stack: Stack, chromium: Browser, artifacts: Path
) -> None:
    await add_agent(stack.services, "alice")
    await add_customers(stack.services, customer("C-3002", phone="+37120000032"))
    token = await session_token(stack.services, "C-3002", chat="tg:5003")
    client = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {stack.settings.service_token}"}
    )
    try:
        body = {"chat": "tg:5003", "reason": "lockout", "locale": "zh_Hant", "session_token": token}
        async with client.post(f"{stack.backend_url}/api/v1/escalations", json=body) as r:
            es = (await r.json())["escalation_id"]
    finally:
        await client.close()

    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await log_in(page, stack, "alice")
    row = page.locator(f'tr[data-escalation="{es}"]')
    await expect(row).to_contain_text("Locked out of verification")
    await expect(row.locator(".badge.ok")).to_have_text("verified")
    await row.get_by_role("link", name="Open").click()
    panel = page.locator("aside.customer")
    await expect(panel).to_contain_text(mask_phone("+37120000032"))
    await expect(panel).not_to_contain_text("+37120000032")
    # Only the agent holding the chat may reveal: nothing is offered before taking it.
    await expect(panel.locator("summary", has_text="Reveal")).to_have_count(0)
    await page.get_by_role("button", name="Take over").click()

    await panel.locator(".field", has_text="phone").locator("summary").click()
    reason = panel.locator(".field", has_text="phone").get_by_label(
        re.compile("Why do you need it")
    )
    await reason.fill("Customer cannot receive codes; checking the number on file")
    await panel.get_by_role("button", name="Reveal phone").click()
    await expect(page.locator("#revealed-phone")).to_have_text("+37120000032")

    # A canned response fills the reply box in the customer's language, to edit before sending.
    await page.get_by_role("button", name="Greeting").click()
    await expect(page.get_by_label(re.compile("Reply to the customer"))).to_have_value(
        re.compile("^您好，這裡是客戶服務")
    )
    await screenshot(page, artifacts / "chat-verified-desktop.png")
    await context.close()
