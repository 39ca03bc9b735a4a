"""The chat's transcript in the backend: every message in and out, masked, in order.

The customer's message is filed before the dialogs run (the answer says
whether an agent holds the chat); the bot's answer to it is filed as one
entry in the background, after the chat's earlier entries, so the customer
never waits for the bot's own words to be filed. ``flush`` waits for them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence

from bot import hygiene
from bot.backend_client import BackendClient, BackendError
from bot.channel import Command, Contact, Event, Outgoing, Press, Reply, Start, Text
from common.masking import mask_phone

log = logging.getLogger(__name__)

# The backend keeps at most 16 KiB per entry; a longer message is kept cut short.
LIMIT = 8000


def describe(event: Event) -> str:
    """The event as the transcript shows it (before masking)."""
    if isinstance(event, Text):
        return event.text
    if isinstance(event, Press):
        return f"[{event.option_id}]"
    if isinstance(event, Contact):
        return mask_phone(event.phone)
    if isinstance(event, Command):
        return f"/{event.name} {event.args}".strip()
    if isinstance(event, Start):
        return "/start"
    return f"[{event.kind}]"


class Transcript:
    """Files messages with ``POST /api/v1/chats/{chat}/messages``; never raises."""

    def __init__(self, backend: BackendClient) -> None:
        self.backend = backend
        # Per chat, the background task filing the bot's last answer.
        self._tails: dict[str, asyncio.Task[None]] = {}

    async def append(self, chat: str, direction: str, text: str) -> bool | None:
        """File one entry; the backend's agent_active answer, or None if it is unreachable."""
        # PostgreSQL text cannot hold NUL; other control characters are kept as typed.
        text = text.replace("\x00", "").strip() or "[…]"
        if len(text) > LIMIT:
            text = text[:LIMIT] + "…"
        try:
            return await self.backend.append_message(chat, direction=direction, text=text)
        except BackendError:
            log.warning("chat %s: transcript not appended (%s)", chat, direction)
            return None

    async def customer_said(self, chat: str, event: Event, *, sensitive: bool) -> bool | None:
        """File the customer's message, masked, after the bot's earlier answers; agent_active."""
        masked = hygiene.mask_for_transcript(describe(event), sensitive=sensitive)
        await self.flush(chat)
        return await self.append(chat, "in", masked)

    def bot_said(self, chat: str, replies: Sequence[Outgoing]) -> None:
        """File the bot's answer to one event as one entry, in the background."""
        texts = [reply.text for reply in replies if isinstance(reply, Reply)]
        if not texts:
            return
        previous = self._tails.get(chat)
        task = asyncio.create_task(self._after(previous, chat, "\n\n".join(texts)))
        self._tails[chat] = task
        task.add_done_callback(functools.partial(self._forget, chat))

    async def _after(self, previous: asyncio.Task[None] | None, chat: str, text: str) -> None:
        """File ``text`` once the chat's earlier entry is filed."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await self.append(chat, "out", text)

    def _forget(self, chat: str, task: asyncio.Task[None]) -> None:
        if self._tails.get(chat) is task:
            del self._tails[chat]

    async def flush(self, chat: str | None = None) -> None:
        """Wait until every answer given so far is filed (in one chat, or in all)."""
        if chat is None:
            tasks = list(self._tails.values())
        else:
            tasks = [self._tails[chat]] if chat in self._tails else []
        await asyncio.gather(*tasks, return_exceptions=True)
