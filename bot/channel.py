"""What a channel (Telegram, the terminal) hands the conversation core, and what it gets back.

A channel turns its platform's updates into ``Event`` values, passes them to
``bot.conversation.Conversations.handle(chat, event)``, and carries out the
returned ``Outgoing`` values on its platform. Nothing here knows Telegram.
Texts in ``Reply`` are already in the customer's language and are plain text:
the channel escapes them for its markup.

Every event may carry the platform's ``update_id``: ids that only grow per
chat, so an update the platform delivers again (the bot died before
confirming it) is recognised and not handled twice. Channels without such ids
(the terminal) leave it None. It says how the event travelled, not what the
customer did, so events compare equal without it.

Every channel hands over only storable text: ``storable_event`` replaces a
lone surrogate (JSON may escape one, ``"\\ud800"``; a terminal decodes a
stray byte to one) and NUL, which neither UTF-8 nor PostgreSQL can hold, with
U+FFFD. The backend would refuse such text; the customer still gets an answer.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar


@dataclass(frozen=True)
class Start:
    """The customer opened the chat (``/start``); ``language_code`` as the platform reports it."""

    language_code: str | None = None
    update_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Text:
    """A typed message."""

    text: str
    message_id: int | None = None
    language_code: str | None = None
    update_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Press:
    """A button press; ``option_id`` is the option's stable id (callback data without prefix)."""

    option_id: str
    message_id: int | None = None
    language_code: str | None = None
    update_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Contact:
    """A shared contact; ``own`` is true only when it is the sender's own number."""

    phone: str
    own: bool
    message_id: int | None = None
    language_code: str | None = None
    update_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Command:
    """A global command: ``cancel``, ``back``, ``help``, ``language``, ``status``, ``agent``."""

    name: str
    args: str = ""
    message_id: int | None = None
    language_code: str | None = None
    update_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Unsupported:
    """Something the dialogs cannot read: a sticker, photo, voice note, document, …"""

    kind: str
    message_id: int | None = None
    language_code: str | None = None
    update_id: int | None = field(default=None, compare=False)


Event = Start | Text | Press | Contact | Command | Unsupported


@dataclass(frozen=True)
class Edited:
    """The customer edited an earlier message; ``text`` is its new text.

    Not an ``Event``: the dialogs never see it (an edit is not a new answer).
    The conversation only screens it for data that must not stay in the chat.
    """

    text: str
    message_id: int
    language_code: str | None = None
    update_id: int | None = field(default=None, compare=False)


# Everything a channel may hand ``Conversations.handle``.
ChannelEvent = Event | Edited

REPLACEMENT = "\ufffd"
# Lone surrogates (U+D800–U+DFFF never pair up in a Python str) and NUL.
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def storable(text: str) -> str:
    """``text`` with every lone surrogate and NUL replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


_E = TypeVar("_E", bound=ChannelEvent)


def storable_event(event: _E) -> _E:
    """``event`` with every text field ``storable``; the same object when nothing needed it."""
    changes: dict[str, object] = {
        f.name: storable(value)
        for f in dataclasses.fields(event)
        if isinstance(value := getattr(event, f.name), str) and _UNSTORABLE.search(value)
    }
    return dataclasses.replace(event, **changes) if changes else event  # type: ignore[arg-type]


@dataclass(frozen=True)
class Button:
    """An inline option: ``data`` is what comes back in ``Press.option_id`` (≤ 64 bytes)."""

    data: str
    label: str


@dataclass(frozen=True)
class Reply:
    """A message to the customer, with inline options and/or a share-contact button."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    contact_button: str | None = None
    remove_keyboard: bool = False


@dataclass(frozen=True)
class Delete:
    """Delete one of the customer's messages (it held a code, a card number, …)."""

    message_id: int
    reason: str


@dataclass(frozen=True)
class SetCommands:
    """Set the platform's command menu for a locale (label per command name)."""

    locale: str
    commands: tuple[tuple[str, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Document:
    """A file sent into the chat (a copy of the customer's data); held in memory only."""

    filename: str
    media_type: str
    content: bytes = field(repr=False)


Outgoing = Reply | Delete | Document

# Shows replies on a channel; raises when they could not be shown.
Send = Callable[[list[Outgoing]], Awaitable[None]]
