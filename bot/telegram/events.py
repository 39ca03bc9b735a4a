"""Telegram updates → ``bot.channel`` events. Pure: no I/O, no PTB application.

Every event leaves here with storable text (``bot.channel.storable_event``).

Only private chats are read: a bank's dialogs carry personal data and must not
run in groups, so updates from groups and channels map to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Message, Update
from telegram.constants import ChatType

from bot.channel import (
    ChannelEvent,
    Command,
    Contact,
    Edited,
    Event,
    Press,
    Start,
    Text,
    Unsupported,
    storable_event,
)

# The global commands of the dialogs (DESIGN.md); any other "/word" is plain text.
COMMANDS = frozenset({"cancel", "back", "help", "language", "status", "agent"})

# Message attributes Telegram uses for content the dialogs cannot read, in the
# order checked; the first present names the ``Unsupported.kind``.
UNSUPPORTED_KINDS = (
    "sticker",
    "photo",
    "voice",
    "video_note",
    "video",
    "audio",
    "animation",
    "document",
    "location",
    "venue",
    "poll",
    "dice",
    "game",
    "story",
    "invoice",
    "paid_media",
)


@dataclass(frozen=True)
class Incoming:
    """One update, read: the chat id (``tg:…``), the event, and the callback to answer."""

    chat: str
    chat_id: int
    event: ChannelEvent
    callback_query_id: str | None = None


def chat_ref(chat_id: int) -> str:
    """The chat id the rest of datadesk uses for a Telegram chat."""
    return f"tg:{chat_id}"


def telegram_chat_id(chat: str) -> int | None:
    """The Telegram chat id inside ``tg:{id}``; None for another channel's chat."""
    prefix, _, rest = chat.partition(":")
    if prefix != "tg" or not rest.lstrip("-").isdigit():
        return None
    return int(rest)


def option_id(callback_data: str) -> str:
    """The option id in a button's callback data: ``o:email`` → ``email``; ``email`` as is."""
    _, colon, rest = callback_data.partition(":")
    return rest if colon else callback_data


def normalise_phone(phone: str) -> str:
    """Telegram sends shared numbers with or without ``+``; the backend expects E.164."""
    phone = phone.strip().replace(" ", "")
    return phone if phone.startswith("+") else f"+{phone}"


def _command(text: str) -> tuple[str, str] | None:
    """``/help@bot args`` → ("help", "args"); None when ``text`` is not a command."""
    if not text.startswith("/"):
        return None
    head, _, args = text[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    if not name:
        return None
    return name, args.strip()


def _message_event(
    message: Message, language_code: str | None, update_id: int | None
) -> Event | None:
    user = message.from_user
    message_id = message.message_id
    if message.contact is not None:
        own = user is not None and message.contact.user_id == user.id
        return Contact(
            phone=normalise_phone(message.contact.phone_number),
            own=own,
            message_id=message_id,
            language_code=language_code,
            update_id=update_id,
        )
    if message.text is not None:
        command = _command(message.text)
        if command is not None:
            name, args = command
            if name == "start":
                return Start(language_code=language_code, update_id=update_id)
            if name in COMMANDS:
                return Command(name, args, message_id, language_code, update_id)
        return Text(message.text, message_id, language_code, update_id)
    for kind in UNSUPPORTED_KINDS:
        if getattr(message, kind, None):
            return Unsupported(kind, message_id, language_code, update_id)
    # A service message (pinned, members changed, …) is not something the customer said.
    if message.caption is not None:
        return Unsupported("captioned_media", message_id, language_code, update_id)
    return None


def _edited_event(
    message: Message, language_code: str | None, update_id: int | None
) -> Edited | None:
    # A caption can be edited too, and can hold a card number as well as a text can.
    text = message.text if message.text is not None else message.caption
    if text is None:
        return None
    return Edited(text, message.message_id, language_code, update_id)


def read_update(update: Update) -> Incoming | None:
    """The event in ``update``, or None when it is not for the dialogs."""
    chat = update.effective_chat
    if chat is None or chat.type != ChatType.PRIVATE:
        return None
    user = update.effective_user
    language_code = user.language_code if user is not None else None
    query = update.callback_query
    if query is not None:
        message_id = query.message.message_id if query.message is not None else None
        press = Press(option_id(query.data or ""), message_id, language_code, update.update_id)
        return Incoming(
            chat_ref(chat.id), chat.id, storable_event(press), callback_query_id=query.id
        )
    event: ChannelEvent | None
    if update.message is not None:
        event = _message_event(update.message, language_code, update.update_id)
    elif update.edited_message is not None:
        event = _edited_event(update.edited_message, language_code, update.update_id)
    else:
        return None
    if event is None:
        return None
    return Incoming(chat_ref(chat.id), chat.id, storable_event(event))
