"""The "Was this you?" undo page in Chromium, on a 375 px phone and on a desktop.

The link comes from the notice the old mailbox received after a real change
of email through the Telegram chat; the page is pressed as a customer would.
Screenshots go to ``test-artifacts/undo/<engine>/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e.conftest import Stack
from e2e.test_undo_and_status import change_email, notice_link, primary_email, public_url
from playwright.async_api import Browser, Page, expect

from .conftest import ARTIFACTS, DESKTOP, PHONE

CHAT = 7101


@pytest.fixture
def undo_artifacts(db_kind: str) -> Path:
    """Where this page's screenshots go (gitignored); one folder per database engine."""
    path = ARTIFACTS / "undo" / db_kind
    path.mkdir(parents=True, exist_ok=True)
    return path


async def fits(page: Page, width: int) -> None:
    """Nothing sticks out sideways, and the button is on screen whole."""
    scroll = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"page is {scroll} px wide in a {width} px window"
    box = await page.get_by_role("button").bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width


async def test_the_undo_page_reads_well_on_a_phone_and_a_desktop_and_its_button_undoes(
    stack: Stack, chromium: Browser, undo_artifacts: Path
) -> None:
    public_url(stack)
    await change_email(stack, "lv", "svesais@example.org", chat=CHAT)
    url = await notice_link(stack, "anna@example.lv")
    context = await chromium.new_context(viewport=PHONE)
    page = await context.new_page()
    await page.goto(url)
    await expect(page.get_by_role("heading")).to_have_text(
        "Jūsu kontaktinformācija tika mainīta. Vai tas bijāt Jūs?"
    )
    await expect(page.get_by_text("s•••@example.org")).to_be_visible()
    await fits(page, PHONE["width"])
    await page.screenshot(path=str(undo_artifacts / "offer-375.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)
    await fits(page, DESKTOP["width"])
    await page.screenshot(path=str(undo_artifacts / "offer-desktop.png"), full_page=True)
    # Opening and reloading it changed nothing.
    await page.reload()
    assert await primary_email(stack, "C-1001") == [
        {"address": "svesais@example.org", "primary": True}
    ]
    await page.set_viewport_size(PHONE)
    await page.get_by_role("button", name="Atsaukt šīs izmaiņas").click()
    await expect(page.get_by_role("heading")).to_have_text("Izmaiņas ir atsauktas")
    await page.screenshot(path=str(undo_artifacts / "done-375.png"), full_page=True)
    assert await primary_email(stack, "C-1001") == [{"address": "anna@example.lv", "primary": True}]
    # The same link again: the page that says it no longer works, and no button.
    await page.goto(url)
    await expect(page.get_by_role("heading")).to_have_text("Šī saite vairs nedarbojas")
    assert await page.get_by_role("button").count() == 0
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(undo_artifacts / "used-desktop.png"), full_page=True)
    await context.close()
