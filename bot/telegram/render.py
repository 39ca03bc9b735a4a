"""``bot.channel.Reply`` → the ``sendMessage`` calls that show it. Pure: no I/O.

Telegram lets a token send about 30 messages a second in all, so one step of a
conversation is one message where it can be: ``compose`` folds the replies of
one answer into as few messages as their keyboards allow (a message carries
one keyboard, under its last line).

Texts arrive as plain text in the customer's language and leave as HTML with
every character escaped, so a name such as ``<Anna & Co>`` shows as typed and
never breaks the message. Telegram takes at most 4,096 characters of text per
message: longer texts are cut at a line break, else a space, else anywhere,
and the keyboard rides on the last part so it sits under the whole text.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.channel import Outgoing, Reply

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4096
MAX_CALLBACK_BYTES = 64

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


@dataclass(frozen=True)
class Send:
    """One ``sendMessage``: HTML text (already escaped) and an optional keyboard."""

    html: str
    markup: Markup | None = None


def escape(text: str) -> str:
    """Plain text → Telegram HTML; quotes need no escaping outside attributes."""
    return html.escape(text, quote=False)


def _escaped_len(text: str) -> int:
    # Telegram counts the text after entity parsing, but escaping first and
    # measuring that keeps every part safely under the limit either way.
    return len(escape(text))


def split_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Cut ``text`` into parts whose escaped form fits ``limit``, at lines, then words."""
    parts: list[str] = []
    rest = text
    while _escaped_len(rest) > limit:
        # The longest prefix that fits once escaped.
        end = min(len(rest), limit)
        while _escaped_len(rest[:end]) > limit:
            end -= max(1, (_escaped_len(rest[:end]) - limit) // 5)
        cut = rest.rfind("\n", 0, end + 1)
        if cut <= 0:
            cut = rest.rfind(" ", 0, end + 1)
        if cut <= 0:
            cut = end
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest.strip() or not parts:
        parts.append(rest.rstrip())
    return [p for p in parts if p.strip()] or [text]


def inline_keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """The reply's options as inline buttons; a button whose data Telegram would refuse is left out and logged."""
    rows: list[list[InlineKeyboardButton]] = []
    for row in reply.buttons:
        buttons = []
        for button in row:
            if not 1 <= len(button.data.encode()) <= MAX_CALLBACK_BYTES:
                # `dialogs check` refuses such ids; this is the last guard, and
                # one missing button beats a message Telegram rejects whole.
                log.error("button data of %d bytes left out", len(button.data.encode()))
                continue
            buttons.append(InlineKeyboardButton(button.label, callback_data=button.data))
        if buttons:
            rows.append(buttons)
    return InlineKeyboardMarkup(rows) if rows else None


def contact_keyboard(label: str) -> ReplyKeyboardMarkup:
    """A one-time reply keyboard with one "share my phone number" button."""
    return ReplyKeyboardMarkup(
        [[KeyboardButton(label, request_contact=True)]],
        one_time_keyboard=True,
        resize_keyboard=True,
    )


def compose(outgoing: list[Outgoing]) -> list[Outgoing]:
    """``outgoing`` with consecutive replies folded into one message each step.

    Replies without a keyboard join the next reply (blank line between); a
    reply with inline options or a share-contact button ends its message, as
    does anything that is not a reply (a ``Delete`` keeps its place). Asking
    for the reply keyboard to be taken away carries over to the folded message.
    """
    out: list[Outgoing] = []
    texts: list[str] = []
    remove = False

    def close(last: Reply | None) -> None:
        nonlocal texts, remove
        if last is not None:
            joined = "\n\n".join([*texts, last.text])
            out.append(
                Reply(
                    joined,
                    last.buttons,
                    last.contact_button,
                    remove or last.remove_keyboard,
                )
            )
        elif texts:
            out.append(Reply("\n\n".join(texts), remove_keyboard=remove))
        texts, remove = [], False

    for item in outgoing:
        if not isinstance(item, Reply):
            close(None)
            out.append(item)
        elif item.buttons or item.contact_button:
            close(item)
        else:
            texts.append(item.text)
            remove = remove or item.remove_keyboard
    close(None)
    return out


def render(reply: Reply, *, keyboard_hidden: bool = False) -> list[Send]:
    """The messages that show ``reply``, in order.

    A message carries one keyboard. Inline options go on the last part of the
    text. A share-contact button goes on the last part when there are no
    options, else on a short follow-up message whose text is the button's own
    label. Removing the reply keyboard rides on the first part (split off
    the first paragraph when that part also carries options).

    ``keyboard_hidden``: the customer has just used the share-contact button,
    and Telegram hides a one-time keyboard once used. Removing it then rides
    on the first part only when that part has no options; it is not worth a
    message of its own (a tenth limited call in the opt-out journey).
    """
    parts = [escape(p) for p in split_text(reply.text)]
    markups: list[Markup | None] = [None] * len(parts)
    inline = inline_keyboard(reply)
    extra: list[Send] = []
    if inline is not None:
        markups[-1] = inline
        if reply.contact_button:
            extra.append(Send(escape(reply.contact_button), contact_keyboard(reply.contact_button)))
    elif reply.contact_button:
        markups[-1] = contact_keyboard(reply.contact_button)
    if reply.remove_keyboard and not reply.contact_button:
        if markups[0] is None:
            markups[0] = ReplyKeyboardRemove()
        elif "\n" in reply.text.strip() and not keyboard_hidden:
            # One keyboard per message: the first paragraph carries the removal,
            # the rest the options.
            head, _, tail = reply.text.strip().partition("\n")
            rest = render(Reply(tail.lstrip("\n"), reply.buttons))
            return [Send(escape(head), ReplyKeyboardRemove()), *rest]
    return [Send(p, m) for p, m in zip(parts, markups, strict=True)] + extra
