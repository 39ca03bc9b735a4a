"""Every journey from /start to the outcome, as a customer sees it in their Telegram chat.

The real bot (channel, conversations, engine, dialog files, catalogs, bot
database), the real backend and worker on SQLite and PostgreSQL, the Bot API
stand-in, an SMS gateway sink and an SMTP server, all over loopback.
"""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from e2e.conftest import Stack
from e2e.steps import (
    CHANGE_SUBMITTED,
    EMAILS,
    ERASURE_CONFIRM,
    ERASURE_SUBMITTED,
    NO_OPEN_REQUESTS,
    OPT_OUT_DONE,
    OUTCOME_DONE,
    OUTCOME_PARTLY,
    PHONES,
    PREVIEW_HEAD,
    PROOF_SENT,
    choose,
    reference_in,
    reply_after,
    requests_of,
    start,
    verify,
)

CHAT = 5001


@pytest.mark.parametrize("locale", ["lv", "en"])
async def test_marketing_opt_out_runs_from_start_to_done_with_a_reference(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "marketing_opt_out")
    await verify(stack, CHAT, locale, PHONES[locale])
    await api.wait_for_message(CHAT, buttons="all")
    await choose(stack, CHAT, "email")
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    done = await api.wait_for_message(CHAT, stack.t(locale, OPT_OUT_DONE))
    reference = reference_in(done)
    [request] = await requests_of(stack, CHAT)
    assert request.reference == reference
    assert request.state == "done"


@pytest.mark.parametrize("telegram_mode", ["webhook"])
async def test_in_webhook_mode_telegram_posts_the_updates_and_the_journey_is_the_same(
    stack: Stack,
) -> None:
    api = stack.api
    await start(stack, CHAT, "ru")
    await choose(stack, CHAT, "marketing_opt_out")
    await verify(stack, CHAT, "ru", PHONES["ru"])
    await api.wait_for_message(CHAT, buttons="all")
    await choose(stack, CHAT, "all")
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    await api.wait_for_message(CHAT, stack.t("ru", OPT_OUT_DONE))
    assert api.webhook_secret == "e2e-webhook-secret"
    assert api.webhook_deliveries >= 7
    assert "getUpdates" not in [method for method, _ in api.calls]
    # Every update went through the bot database's inbox and is marked applied
    # there (the last one just after its answer was shown).
    assert stack.channel is not None
    inbox = stack.channel.inbox
    assert inbox is not None
    async with asyncio.timeout(5):
        while await inbox.pending(str(CHAT)):  # noqa: ASYNC110 - a database, no event
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("locale", ["lv", "ru"])
async def test_erasure_shows_the_preview_then_reports_what_was_kept_and_until_when(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "erasure")
    await verify(stack, CHAT, locale, PHONES[locale])
    await api.wait_for_message(CHAT, buttons="all")
    await choose(stack, CHAT, "all")
    preview = await api.wait_for_message(CHAT, stack.t(locale, PREVIEW_HEAD))
    await api.wait_for_message(CHAT, stack.t(locale, ERASURE_CONFIRM), buttons="yes")
    await choose(stack, CHAT, "yes")
    submitted = await api.wait_for_message(CHAT, stack.t(locale, ERASURE_SUBMITTED))
    reference = reference_in(submitted)
    # The worker carries it out; the outcome arrives in the same chat, in the same language.
    outcome = await reply_after(stack, CHAT, submitted, reference)
    assert stack.says(locale, OUTCOME_PARTLY, reference=reference) in outcome.text
    if locale == "ru":
        # Ivan's loan closed on 2024-06-30: AML records are kept five years, to a date in Russian.
        until = stack.catalogs.translator(locale).format_date(date(2029, 6, 30))
        assert until in preview.text
        assert until in outcome.text


@pytest.mark.parametrize("locale", ["en", "ru"])
async def test_a_new_phone_number_is_proven_by_a_code_sent_to_it_then_changed(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    new_phone = "+37129999999" if locale == "en" else "+37129999998"
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "update_contact")
    await verify(stack, CHAT, locale, PHONES[locale])
    await api.wait_for_message(CHAT, buttons="phone")
    await choose(stack, CHAT, "phone")
    await api.send_text(CHAT, new_phone)
    await api.wait_for_message(CHAT, stack.t(locale, PROOF_SENT))
    code = await stack.code_for(new_phone)
    await api.send_text(CHAT, code)
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    submitted = await api.wait_for_message(CHAT, stack.t(locale, CHANGE_SUBMITTED))
    reference = reference_in(submitted)
    done = stack.says(locale, OUTCOME_DONE, reference=reference)
    await reply_after(stack, CHAT, submitted, done)


@pytest.mark.parametrize("locale", ["lv", "en"])
async def test_a_new_email_is_proven_by_a_mailed_code_then_changed(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    new_email = f"new.{locale}@example.org"
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "update_contact")
    await verify(stack, CHAT, locale, PHONES[locale])
    await api.wait_for_message(CHAT, buttons="email")
    await choose(stack, CHAT, "email")
    await api.send_text(CHAT, new_email)
    await api.wait_for_message(CHAT, stack.t(locale, PROOF_SENT))
    code = await stack.mailed_code(new_email)
    await api.send_text(CHAT, code)
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    submitted = await api.wait_for_message(CHAT, stack.t(locale, CHANGE_SUBMITTED))
    done = stack.says(locale, OUTCOME_DONE, reference=reference_in(submitted))
    await reply_after(stack, CHAT, submitted, done)
    assert EMAILS[locale] not in " ".join(api.transcript(CHAT))


@pytest.mark.parametrize("locale", ["en", "lv"])
async def test_a_new_postal_address_is_shown_masked_confirmed_and_changed(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "update_contact")
    await verify(stack, CHAT, locale, PHONES[locale])
    await api.wait_for_message(CHAT, buttons="address")
    await choose(stack, CHAT, "address")
    await api.send_text(CHAT, "Krišjāņa Barona iela 12, Rīga, LV-1050, Latvia")
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    submitted = await api.wait_for_message(CHAT, stack.t(locale, CHANGE_SUBMITTED))
    done = stack.says(locale, OUTCOME_DONE, reference=reference_in(submitted))
    await reply_after(stack, CHAT, submitted, done)


@pytest.mark.parametrize("settings_overrides", [{"review_kinds": frozenset({"erasure"})}])
@pytest.mark.parametrize("locale", ["ru", "en"])
async def test_status_lists_the_open_request_with_its_reference_and_due_date(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    await start(stack, CHAT, locale)
    # Only a verified chat sees its customer's requests: /status checks first.
    await api.send_text(CHAT, "/status")
    await verify(stack, CHAT, locale, PHONES[locale])
    await api.wait_for_message(CHAT, stack.t(locale, NO_OPEN_REQUESTS))
    # Erasures wait for back-office review here, so this one stays open.
    await choose(stack, CHAT, "erasure")
    await api.wait_for_message(CHAT, buttons="all")
    await choose(stack, CHAT, "marketing")
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    submitted = await api.wait_for_message(CHAT, stack.t(locale, ERASURE_SUBMITTED))
    reference = reference_in(submitted)
    await api.send_text(CHAT, "/status")
    listed = await api.wait_for_message(CHAT, reference)
    [request] = await requests_of(stack, CHAT)
    assert request.state == "awaiting_review"
    assert stack.catalogs.translator(locale).format_date(request.due_date) in listed.text


async def test_chinese_customers_get_their_script_and_every_language_its_command_menu(
    stack: Stack,
) -> None:
    await start(stack, CHAT, "zh_Hant")
    await start(stack, CHAT + 1, "zh_Hans")
    # One step is one message: the greeting and the menu question share it.
    traditional = "\n\n".join(stack.api.transcript(CHAT))
    simplified = "\n\n".join(stack.api.transcript(CHAT + 1))
    assert stack.t("zh_Hant", "What would you like to do?") in traditional
    assert stack.t("zh_Hans", "What would you like to do?") in simplified
    assert traditional != simplified
    commands = stack.api.commands
    assert {"", "en", "lv", "ru", "zh"} <= set(commands)
    assert {name for name, _ in commands["lv"]} >= {"cancel", "help", "language", "status", "agent"}
    assert commands["lv"] != commands["en"]
    assert commands["zh"] == stack.conversations.commands("zh_Hans")  # type: ignore[union-attr]


@pytest.mark.parametrize("locale", ["en", "zh_Hans"])
async def test_erasure_of_several_ticked_categories_previews_exactly_those(
    stack: Stack, locale: str
) -> None:
    api = stack.api
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "erasure")
    await verify(stack, CHAT, locale, PHONES["en"])
    await api.wait_for_message(CHAT, buttons="several")
    await choose(stack, CHAT, "several")
    for category in ("marketing", "chat_history"):
        await api.wait_for_message(CHAT, buttons=category)
        await choose(stack, CHAT, category)
    await api.wait_for_message(CHAT, buttons="done")
    await choose(stack, CHAT, "done")
    preview = await api.wait_for_message(CHAT, stack.t(locale, PREVIEW_HEAD))
    assert stack.t(locale, "Marketing preferences") in preview.text
    assert stack.t(locale, "Chat history") in preview.text
    assert stack.t(locale, "Transactions") not in preview.text
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    submitted = await api.wait_for_message(CHAT, stack.t(locale, ERASURE_SUBMITTED))
    reference = reference_in(submitted)
    done = stack.says(locale, OUTCOME_DONE, reference=reference)
    await reply_after(stack, CHAT, submitted, done)
