"""Was this you? and My requests, as a customer (and whoever holds their old contact) sees them.

The real bot, backend and worker on SQLite and PostgreSQL behind the Bot API
stand-in; the old mailbox is the aiosmtpd server, the old phone the SMS sink,
and the undo page is opened and its button pressed over real HTTP.
"""

from __future__ import annotations

import re
from dataclasses import replace

import aiohttp
import pytest
from fakes.console import ConsoleClient, add_agent
from sqlalchemy import select

from backend.models.console import Escalation
from e2e.conftest import Stack
from e2e.steps import (
    CHANGE_SUBMITTED,
    EMAILS,
    OPT_OUT_DONE,
    OUTCOME_DONE,
    PHONES,
    PROOF_SENT,
    choose,
    reference_in,
    reply_after,
    requests_of,
    start,
    verify,
)

CHAT = 7001
LINK = re.compile(r"http://\S+/undo/[A-Za-z0-9_-]{43}\?lang=[a-zA-Z_]+")
OUTCOME_REVERTED = (
    "Your contact details change {reference} has been undone from the link we sent to your "
    "previous contact: we use your previous details again. A colleague will write to you here "
    "shortly to make sure your account is safe."
)
LINE_FINISHED = "{reference}: {kind}, {state}. Received {received}, finished {finished}."


def public_url(stack: Stack) -> None:
    """Undo links name the stack's backend, as ``PUBLIC_URL`` would in production."""
    stack.services.settings = replace(stack.services.settings, public_url=stack.backend_url)


async def change_email(stack: Stack, locale: str, new_email: str, chat: int = CHAT) -> str:
    """From /start to the change of email being done in ``chat``; the request's reference."""
    api = stack.api
    await start(stack, chat, locale)
    await choose(stack, chat, "update_contact")
    await verify(stack, chat, locale, PHONES.get(locale, PHONES["en"]))
    await api.wait_for_message(chat, buttons="email")
    await choose(stack, chat, "email")
    await api.send_text(chat, new_email)
    await api.wait_for_message(chat, stack.t(locale, PROOF_SENT))
    await api.send_text(chat, await stack.mailed_code(new_email))
    await api.wait_for_message(chat, buttons="yes")
    await choose(stack, chat, "yes")
    submitted = await api.wait_for_message(chat, stack.t(locale, CHANGE_SUBMITTED))
    reference = reference_in(submitted)
    await reply_after(stack, chat, submitted, stack.says(locale, OUTCOME_DONE, reference=reference))
    return reference


async def notice_link(stack: Stack, address: str) -> str:
    """The undo link in the newest notice mailed to ``address``, once one arrives."""
    for _ in range(50):
        pairs = list(zip(stack.mail.messages, stack.mail.recipients, strict=True))
        for message, to in reversed(pairs):
            body = message.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            if address in to and (found := LINK.search(text)):
                return found.group(0)
        await stack.mail.wait_for(len(stack.mail.messages) + 1)
    raise AssertionError(f"no notice mailed to {address}")


async def press_undo(url: str) -> str:
    """Open the undo page and press its one button, as a browser does; the answer's text."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(url) as page:
            form = re.search(r'name="form" value="([0-9a-f]+)"', await page.text())
        async with browser.post(url, data={"form": form.group(1) if form else ""}) as answer:
            assert answer.status == 200
            return await answer.text()


async def primary_email(stack: Stack, ref: str) -> list[dict[str, object]]:
    exported = await stack.services.crm.export(ref)
    assert exported is not None
    emails = exported["emails"]
    assert isinstance(emails, list)
    return emails


@pytest.mark.parametrize("locale", ["lv", "en"])
async def test_a_changed_email_is_undone_from_the_notice_at_the_old_address(
    stack: Stack, locale: str
) -> None:
    public_url(stack)
    ref = {"lv": "C-1001", "en": "C-1003"}[locale]
    new_email = f"someone.else.{locale}@example.org"
    reference = await change_email(stack, locale, new_email)
    assert await primary_email(stack, ref) == [{"address": new_email, "primary": True}]
    url = await notice_link(stack, EMAILS[locale])
    page = await press_undo(url)
    assert {"lv": "Izmaiņas ir atsauktas", "en": "The change is undone"}[locale] in page
    assert await primary_email(stack, ref) == [{"address": EMAILS[locale], "primary": True}]
    told = stack.says(locale, OUTCOME_REVERTED, reference=reference)
    await stack.api.wait_for_message(CHAT, told, timeout=20)
    [request] = await requests_of(stack, CHAT)
    assert request.state == "reverted"
    async with stack.services.sessions() as session:
        escalation = (await session.scalars(select(Escalation))).one()
    assert (escalation.chat, escalation.reason, escalation.state) == (
        f"tg:{CHAT}",
        "possible_fraud",
        "waiting",
    )
    # The agents' queue says why.
    await add_agent(stack.services, "alice")
    alice = ConsoleClient(stack.backend_url)
    try:
        await alice.log_in("alice")
        _, queue = await alice.get("/console/")
    finally:
        await alice.close()
    assert "Possible fraud: a contact change was undone" in queue


@pytest.mark.parametrize("locale", ["ru", "zh_Hans"])
async def test_a_reused_or_expired_undo_link_does_nothing(stack: Stack, locale: str) -> None:
    public_url(stack)
    ref, old = ("C-1002", EMAILS["ru"]) if locale == "ru" else ("C-1003", EMAILS["en"])
    await change_email(stack, locale, f"first.{locale}@example.org")
    first = await notice_link(stack, old)
    await press_undo(first)
    assert await primary_email(stack, ref) == [{"address": old, "primary": True}]
    used = await press_undo(first)
    invalid = {"ru": "Эта ссылка больше не действует", "zh_Hans": "此链接已失效"}[locale]
    assert invalid in used
    assert await primary_email(stack, ref) == [{"address": old, "primary": True}]
    # A second change, whose link is opened after 72 hours.
    before = len(stack.mail.messages)
    second_email = f"second.{locale}@example.org"
    await change_email(stack, locale, second_email, chat=CHAT + 1)
    await stack.mail.wait_for(before + 2)
    second = await notice_link(stack, old)
    assert second != first
    stack.clock.advance(hours=72, seconds=1)
    assert invalid in await press_undo(second)
    assert await primary_email(stack, ref) == [{"address": second_email, "primary": True}]


@pytest.mark.parametrize("locale", ["lv", "zh_Hant"])
async def test_status_lists_two_finished_requests_with_the_dates_they_finished(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "marketing_opt_out")
    await verify(stack, CHAT, locale, PHONES.get(locale, PHONES["en"]))
    await api.wait_for_message(CHAT, buttons="all")
    await choose(stack, CHAT, "email")
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    first = reference_in(await api.wait_for_message(CHAT, stack.t(locale, OPT_OUT_DONE)))
    await choose(stack, CHAT, "update_contact")
    await api.wait_for_message(CHAT, buttons="address")
    await choose(stack, CHAT, "address")
    await api.send_text(CHAT, "Krišjāņa Barona iela 12, Rīga, LV-1050, Latvia")
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    submitted = await api.wait_for_message(CHAT, stack.t(locale, CHANGE_SUBMITTED))
    second = reference_in(submitted)
    await reply_after(stack, CHAT, submitted, stack.says(locale, OUTCOME_DONE, reference=second))
    await api.send_text(CHAT, "/status")
    listed = await api.wait_for_message(CHAT, first)
    translator = stack.catalogs.translator(locale)
    today = translator.format_date(stack.clock.now().date())
    for reference, kind in ((first, "marketing opt-out"), (second, "contact details change")):
        line = stack.says(
            locale,
            LINE_FINISHED,
            reference=reference,
            kind=translator.gettext(kind),
            state=translator.gettext("done"),
            received=today,
            finished=today,
        )
        assert line in listed.text
    assert listed.text.index(second) < listed.text.index(first)
