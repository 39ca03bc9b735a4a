"""Managing agents in a real browser: the supervisors' page, a session that ends, a forced change.

Each test runs on a desktop and at 375 px (a phone), saves screenshots under
``test-artifacts/console/<engine>/`` and checks nothing scrolls sideways on
the phone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import LiveBackend
from fakes.console import PASSWORD, add_agent
from playwright.async_api import Browser, Page, expect

from .conftest import DESKTOP, PHONE

TEMPORARY = "temporary password 1"
CHOSEN = "my own new password"
VIEWPORTS = pytest.mark.parametrize(
    ("viewport", "label"), [(DESKTOP, "desktop"), (PHONE, "375")], ids=["desktop", "375"]
)


async def log_in(page: Page, backend: LiveBackend, name: str, password: str = PASSWORD) -> None:
    await page.goto(f"{backend.url}/console/")
    await expect(page).to_have_url(re.compile(r"/console/login"))
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def shoot(page: Page, path: Path, viewport: dict[str, int]) -> None:
    """A full-page screenshot; on a phone, also check nothing scrolls sideways."""
    await page.screenshot(path=str(path), full_page=True)
    if viewport == PHONE:
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{page.url} is {width} px wide on a phone"


@VIEWPORTS
async def test_a_supervisor_adds_disables_resets_and_removes_agents(
    backend: LiveBackend, chromium: Browser, artifacts: Path, viewport: dict[str, int], label: str
) -> None:
    await add_agent(backend.services, "sam", "supervisor")
    await add_agent(backend.services, "alice")
    await add_agent(backend.services, "bob")
    context = await chromium.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = await context.new_page()
    await log_in(page, backend, "sam")
    await expect(page.get_by_role("heading", name="Escalated chats")).to_be_visible()
    await page.get_by_role("link", name="Agents").click()
    await expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    alice = page.locator('tr[data-agent="alice"]')
    await expect(alice).to_contain_text("enabled")
    await expect(alice).to_contain_text("never")
    await shoot(page, artifacts / f"agents-{label}.png", viewport)

    # Add an agent with a temporary password.
    add = page.locator("section.add-agent")
    await add.get_by_label("Name").fill("ruta")
    await add.get_by_label("Role").select_option("agent")
    await add.get_by_label("Temporary password").fill(TEMPORARY)
    await add.get_by_role("button", name="Add agent").click()
    await expect(page.get_by_role("status")).to_have_text(re.compile("ruta was added"))
    await expect(page.locator('tr[data-agent="ruta"]')).to_contain_text("must change")

    # A name in use is refused, and the form keeps what was typed.
    await add.get_by_label("Name").fill("alice")
    await add.get_by_label("Temporary password").fill(TEMPORARY)
    await add.get_by_role("button", name="Add agent").click()
    await expect(page.get_by_role("alert")).to_contain_text("The name alice is taken")
    await expect(add.get_by_label("Name")).to_have_value("alice")

    # Disable, then enable again.
    await alice.get_by_role("button", name="Disable alice").click()
    await expect(page.get_by_role("status")).to_contain_text("alice was disabled")
    await expect(alice.locator(".badge")).to_have_text("disabled")
    await alice.get_by_role("button", name="Enable alice").click()
    await expect(alice.locator(".badge")).to_have_text("enabled")

    # Reset alice's password.
    await alice.locator("summary").click()
    await alice.get_by_label("Temporary password for alice").fill(TEMPORARY)
    await alice.get_by_role("button", name="Reset password").click()
    await expect(page.get_by_role("status")).to_contain_text("alice's password was reset")
    await expect(alice).to_contain_text("must change")

    # Remove bob: he moves to the removed list, still named for the audit trail.
    bob = page.locator('tr[data-agent="bob"]')
    await bob.locator("summary").click()
    await shoot(page, artifacts / f"agents-more-{label}.png", viewport)
    await bob.get_by_role("button", name="Remove bob").click()
    await expect(page.get_by_role("status")).to_contain_text("bob was removed")
    await expect(bob).to_have_count(0)
    await expect(page.locator('ul.removed li[data-agent="bob"]')).to_be_visible()

    # The only supervisor cannot disable themselves.
    await page.locator('tr[data-agent="sam"]').get_by_role("button", name="Disable sam").click()
    await expect(page.get_by_role("alert")).to_contain_text("sam is the only enabled supervisor")
    await shoot(page, artifacts / f"agents-refused-{label}.png", viewport)
    await context.close()


@VIEWPORTS
async def test_a_disabled_agents_open_console_goes_to_the_login_page_by_itself(
    backend: LiveBackend, chromium: Browser, artifacts: Path, viewport: dict[str, int], label: str
) -> None:
    await add_agent(backend.services, "sam", "supervisor")
    await add_agent(backend.services, "alice")
    agent_context = await chromium.new_context(viewport=viewport)  # type: ignore[arg-type]
    agent = await agent_context.new_page()
    await log_in(agent, backend, "alice")
    await expect(agent.get_by_role("heading", name="Escalated chats")).to_be_visible()
    await expect(agent.locator("body")).to_have_attribute("data-live", "on")

    supervisor_context = await chromium.new_context(viewport=DESKTOP)
    supervisor = await supervisor_context.new_page()
    await log_in(supervisor, backend, "sam")
    await supervisor.goto(f"{backend.url}/console/agents")
    await supervisor.get_by_role("button", name="Disable alice").click()
    await expect(supervisor.get_by_role("status")).to_contain_text("alice was disabled")

    # Nobody touches alice's tab: the live socket tells it the session ended.
    await expect(agent).to_have_url(re.compile(r"/console/login"), timeout=10_000)
    await expect(agent.get_by_role("button", name="Log in")).to_be_visible()
    await shoot(agent, artifacts / f"disabled-agent-{label}.png", viewport)
    # And logging in again is refused.
    await log_in(agent, backend, "alice")
    await expect(agent.get_by_role("alert")).to_have_text("Wrong name or password.")
    await agent_context.close()
    await supervisor_context.close()


@VIEWPORTS
async def test_after_a_reset_the_agent_must_choose_a_new_password_first(
    backend: LiveBackend, chromium: Browser, artifacts: Path, viewport: dict[str, int], label: str
) -> None:
    await add_agent(backend.services, "sam", "supervisor")
    await add_agent(backend.services, "alice")
    supervisor_context = await chromium.new_context(viewport=DESKTOP)
    supervisor = await supervisor_context.new_page()
    await log_in(supervisor, backend, "sam")
    await supervisor.goto(f"{backend.url}/console/agents")
    row = supervisor.locator('tr[data-agent="alice"]')
    await row.locator("summary").click()
    await row.get_by_label("Temporary password for alice").fill(TEMPORARY)
    await row.get_by_role("button", name="Reset password").click()
    await expect(supervisor.get_by_role("status")).to_contain_text("password was reset")
    await supervisor_context.close()

    context = await chromium.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = await context.new_page()
    # A mistyped password first: the name stays, only the password is typed again.
    await log_in(page, backend, "alice", "the old one, mistyped")
    await expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    await expect(page.get_by_label("Name")).to_have_value("alice")
    await page.get_by_label("Password").fill(TEMPORARY)
    await page.get_by_role("button", name="Log in").click()

    await expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    await expect(page.get_by_text("Your password was reset")).to_be_visible()
    # Asking for another page leads back here.
    await page.goto(f"{backend.url}/console/")
    await expect(page).to_have_url(re.compile(r"/console/password$"))
    await shoot(page, artifacts / f"change-password-{label}.png", viewport)

    await page.get_by_label("Current password").fill(TEMPORARY)
    await page.get_by_label("New password", exact=True).fill(TEMPORARY)
    await page.get_by_label("New password again").fill(TEMPORARY)
    await page.get_by_role("button", name="Change password").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "The new password must differ from the current one."
    )
    await shoot(page, artifacts / f"change-password-refused-{label}.png", viewport)

    await page.get_by_label("Current password").fill(TEMPORARY)
    await page.get_by_label("New password", exact=True).fill(CHOSEN)
    await page.get_by_label("New password again").fill(CHOSEN)
    await page.get_by_role("button", name="Change password").click()
    await expect(page.get_by_role("heading", name="Escalated chats")).to_be_visible()
    await context.close()
