"""A scripted conversation service and notification source for the channel's own tests.

They stand where ``bot.conversation.Conversations`` and the backend's outbox
stand, so the Telegram edge can be tested alone: what arrives, in what order,
and what the customer sees for each kind of answer.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from bot.channel import (
    Button,
    Command,
    Contact,
    Delete,
    Event,
    Outgoing,
    Press,
    Reply,
    Send,
    Start,
    Text,
    Unsupported,
)

MENU = (
    (Button("o:update_contact", "Update my details"), Button("o:erasure", "Delete my data")),
    (Button("o:agent", "Talk to a person"),),
)


class ScriptedConversations:
    """Answers each event with a reply that says what it received."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.running: dict[str, int] = defaultdict(int)
        self.overlapped = False
        self.notified: list[int] = []

    async def apology(self, chat: str, event: Event) -> list[Outgoing]:
        return [Reply(f"sorry, {chat}: send it again")]

    def commands(self, locale: str) -> list[tuple[str, str]]:
        return [("help", f"help ({locale})"), ("cancel", f"cancel ({locale})")]

    async def notify(
        self, notification: dict[str, Any], send: Send | None = None
    ) -> list[Outgoing]:
        if notification["id"] in self.notified:
            return []
        replies: list[Outgoing] = [
            Reply(f"Request {notification['reference']}: {notification['outcome']}")
        ]
        if send is not None:
            await send(replies)
        self.notified.append(notification["id"])
        return replies

    async def handle(self, chat: str, event: Event) -> list[Outgoing]:
        self.events.append((chat, event))
        self.running[chat] += 1
        if self.running[chat] > 1:
            self.overlapped = True
        try:
            return await self._answer(chat, event)
        finally:
            self.running[chat] -= 1

    async def _answer(self, chat: str, event: Event) -> list[Outgoing]:
        match event:
            case Start(language_code=lang):
                return [Reply(f"Hello <friend> & welcome ({lang})", buttons=MENU)]
            case Text(text="boom"):
                raise RuntimeError("the dialogs failed")
            case Text(text="long"):
                paragraph = "word " * 199 + "end.\n"
                return [Reply(paragraph * 12)]
            case Text(text="share"):
                return [Reply("Share your number", contact_button="Share my phone number")]
            case Text(text="shared"):
                return [Reply("Thanks.\nNow choose:", buttons=MENU, remove_keyboard=True)]
            case Text(text=text, message_id=mid) if text.startswith("card"):
                assert mid is not None
                return [Delete(mid, "card_number"), Reply("I deleted that: 411111••••••1111")]
            case Text(text="gone"):
                return [Delete(999_999, "code"), Reply("still here")]
            case Text(text=text) if text.startswith("wait"):
                gate = self.gates.get(chat)
                if gate is not None:
                    await gate.wait()
                return [Reply(f"done {text}")]
            case Text(text=text):
                return [Reply(f"you said {text}")]
            case Press(option_id=option):
                return [Reply(f"pressed {option}")]
            case Contact(phone=phone, own=own):
                return [Reply(f"contact {phone} own={own}")]
            case Command(name=name, args=args):
                return [Reply(f"command {name} {args}".strip())]
            case Unsupported(kind=kind):
                return [Reply(f"cannot read a {kind}")]
        return []


class Outbox:
    """The backend's notifications outbox, able to be down for a while."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.acked: list[int] = []
        self.failures = 0
        self.polls = 0
        self._changed = asyncio.Event()
        self._acks = asyncio.Event()

    def add(self, notification: dict[str, Any]) -> None:
        self.pending.append(notification)
        self._changed.set()

    async def poll_notifications(
        self, *, prefix: str, wait: float = 30, limit: int = 100
    ) -> list[dict[str, Any]]:
        self.polls += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("backend down")
        if not self.pending:
            self._changed.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            except TimeoutError:
                return []
        return [n for n in self.pending if n["chat"].startswith(prefix)][:limit]

    async def ack_notifications(self, ids: list[int]) -> None:
        self.acked.extend(ids)
        self.pending = [n for n in self.pending if n["id"] not in ids]
        self._acks.set()

    async def wait_acked(self, ident: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until notification ``ident`` was acknowledged."""
        async with asyncio.timeout(timeout):
            while ident not in self.acked:
                self._acks.clear()
                await self._acks.wait()
