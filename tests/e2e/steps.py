"""A customer's moves shared by the end-to-end journeys: start, verify, read what the bot says.

The English source texts below are the dialogs' msgids; ``Stack.t`` turns
them into what the customer reads in their locale, so a test asserts the
sentence a Latvian or Russian customer actually sees.
"""

from __future__ import annotations

from fakes.botapi import SentMessage
from sqlalchemy import func, select

from backend.models.console import TranscriptEntry
from backend.models.ledger import Request
from e2e.conftest import Stack

ASK_PHONE = "First I need to check it's really you. Tap the button below to share your phone number, or type the number the bank has for you."
CODE_SENT = (
    "If this number is registered with us, a 6-digit code is on its way. It is valid for 5 minutes."
)
VERIFIED = "Thank you, you're verified."
WRONG_CODE = "That code isn't right. You have {attempts_left} tries left."
LOCKED_OUT = "For your safety I've paused new codes for this chat for a while. A colleague can help you right away."
MENU = "What would you like to do?"
OPT_OUT_DONE = "Done, it takes effect straight away. Your request number is {reference}."
ERASURE_CONFIRM = "Do you want us to go ahead?"
ERASURE_SUBMITTED = "Thank you. Your request number is {reference}. We'll finish by {due_date} at the latest and tell you here what was deleted and what we had to keep."
PREVIEW_HEAD = "Here is what would happen to your data:"
CHANGE_SUBMITTED = "Done. Your request number is {reference}. We'll make the change by {due_date} at the latest and let you know here."
PROOF_SENT = "I've sent a 6-digit code to {masked}. It proves the new contact is yours and is valid for 5 minutes."
OUTCOME_DONE = "Your request {reference} is done."
OUTCOME_PARTLY = "Your request {reference} is done, but we had to keep some data:"
NO_OPEN_REQUESTS = "You have no requests from the last 12 months."
HYGIENE_CARD = "I've deleted your message because it contained a card number. Please never send card numbers in a chat."
AGENT_WAITING = "I've asked a colleague to join this chat. They'll write to you here as soon as they can. Anything you write meanwhile, they will read."

PHONES = {"lv": "+37120000001", "ru": "+37120000002", "en": "+37120000003"}
EMAILS = {"lv": "anna@example.lv", "ru": "ivan@example.lv", "en": "emma@example.com"}


def reference_in(message: SentMessage) -> str:
    """The ``DD-XXXXXX`` reference a message gives the customer."""
    import re

    found = re.search(r"DD-[0-9A-HJKMNP-TV-Z]{6}", message.text)
    assert found, f"no reference in {message.text!r}"
    return found.group(0)


async def reply_after(stack: Stack, chat: int, earlier: SentMessage, contains: str) -> SentMessage:
    """The first bot message after ``earlier`` that contains ``contains`` (an outcome, say)."""
    since = [m.message_id for m in stack.api.messages(chat)].index(earlier.message_id) + 1
    return await stack.api.wait_for_message(chat, contains, since=since, timeout=20)


async def start(stack: Stack, chat: int, locale: str) -> SentMessage:
    """/start with Telegram reporting ``locale``; the main menu."""
    await stack.api.send_text(chat, "/start", language_code=locale.replace("_", "-"))
    return await stack.api.wait_for_message(chat, stack.t(locale, MENU), buttons="update_contact")


async def choose(stack: Stack, chat: int, option: str) -> None:
    """Press the newest button ``option``."""
    await stack.api.press_button(chat, option)


async def verify(
    stack: Stack, chat: int, locale: str, phone: str, *, share: bool = True, mail: bool = True
) -> None:
    """From "share your number" to "you're verified", with the code the SMS brought.

    ``mail``: the backend has a mail server, so the customer is asked where the
    code should go and picks SMS; without one no choice is offered at all.
    """
    api = stack.api
    asking = await api.wait_for_message(chat, stack.t(locale, ASK_PHONE))
    assert asking.contact_button
    before = len(stack.codes_sent_to(phone))
    if share:
        await api.share_contact(chat, phone.lstrip("+"), own=True)
    else:
        await api.send_text(chat, phone)
    if mail:
        await api.wait_for_message(chat, buttons="sms")
        await choose(stack, chat, "sms")
    await api.wait_for_message(chat, stack.t(locale, CODE_SENT))
    if not mail:
        # Straight from the number to the code: no message offered a channel.
        offered = [d.rpartition(":")[2] for m in api.messages(chat) for d in m.button_data]
        assert not {"sms", "email"} & set(offered), api.transcript(chat)
    code = await stack.code_for(phone, after=before)
    typed = await api.send_text(chat, code)
    await api.wait_for_message(chat, stack.t(locale, VERIFIED))
    # A one-time code is taken out of the chat once read.
    await api.wait_for_deleted(chat, typed)


async def requests_of(stack: Stack, chat: int) -> list[Request]:
    """Every request the ledger holds for ``chat``."""
    async with stack.services.sessions() as session:
        rows = await session.scalars(select(Request).where(Request.chat == f"tg:{chat}"))
        return list(rows)


async def transcript_of(stack: Stack, chat: int) -> list[str]:
    """What the backend stored of the chat (what agents would read), once the bot filed it."""
    if stack.conversations is not None:
        # Filing is off the customer's path: what the bot said so far, filed now.
        await stack.conversations.flush()
    async with stack.services.sessions() as session:
        rows = await session.scalars(
            select(TranscriptEntry.text)
            .where(TranscriptEntry.chat == f"tg:{chat}")
            .order_by(TranscriptEntry.id)
        )
        return list(rows)


async def count_requests(stack: Stack) -> int:
    async with stack.services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Request)) or 0)
