"""The chat's transcript in the backend: every message in and out, masked, in order, once.

Filing is off the customer's path. An update's lines (what the customer
said, what the bot answered) are saved with the conversation state, in the
same write (``bot.state.StateStore.save``), numbered per chat; ``Filer``
posts the waiting lines in batches to ``POST /api/v1/transcript`` in the
background and then notes them filed. The backend stores each (chat, seq)
once, so a bot stopped between posting and noting posts them again harmlessly,
and a bot stopped before the save never answered, so nothing is lost either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence

from bot import hygiene
from bot.backend_client import BackendClient, BackendError, BackendRefused
from bot.channel import Command, Contact, Event, Outgoing, Press, Reply, Start, Text
from bot.state import Line, StateStore
from common.masking import mask_phone

log = logging.getLogger(__name__)

# The backend keeps at most 16 KiB per entry; a longer message is kept cut short.
LIMIT = 8000
# A batch stays well under the backend's 64 KiB body limit.
BATCH_BYTES = 48 * 1024
# Lines wait this long for others to join their batch; with no wake-up (lines another
# process left behind) the filer looks every IDLE_LOOK seconds.
GATHER = 0.05
IDLE_LOOK = 5.0
RETRY_AFTER = 2.0


def describe(event: Event, label: str | None = None) -> str:
    """The event as the transcript shows it (before masking).

    A button press shows as ``[label]``, the words the customer tapped in their
    language, when the caller knows the label; else as ``[option_id]``.
    """
    if isinstance(event, Text):
        return event.text
    if isinstance(event, Press):
        return f"[{label or event.option_id}]"
    if isinstance(event, Contact):
        return mask_phone(event.phone)
    if isinstance(event, Command):
        return f"/{event.name} {event.args}".strip()
    if isinstance(event, Start):
        return "/start"
    return f"[{event.kind}]"


def _fit(text: str) -> str:
    # PostgreSQL text cannot hold NUL; other control characters are kept as typed.
    text = text.replace("\x00", "").strip() or "[…]"
    return text[:LIMIT] + "…" if len(text) > LIMIT else text


def customer_line(event: Event, *, sensitive: bool, label: str | None = None) -> tuple[str, str]:
    """The customer's message as a transcript line, masked (``label``: the button tapped)."""
    return "in", _fit(hygiene.mask_for_transcript(describe(event, label), sensitive=sensitive))


def bot_lines(replies: Sequence[Outgoing]) -> list[tuple[str, str]]:
    """The bot's answer to one event as one line ([] when it said nothing)."""
    texts = [reply.text for reply in replies if isinstance(reply, Reply)]
    return [("out", _fit("\n\n".join(texts)))] if texts else []


def _batches(lines: Sequence[Line]) -> list[list[Line]]:
    """``lines`` cut into batches under BATCH_BYTES, keeping their order."""
    batches: list[list[Line]] = [[]]
    size = 0
    for line in lines:
        cost = len(json.dumps(line.text, ensure_ascii=False).encode()) + 200
        if batches[-1] and size + cost > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(line)
        size += cost
    return [batch for batch in batches if batch]


class Filer:
    """Files the lines waiting in the bot database, in the background; never raises."""

    def __init__(self, store: StateStore, backend: BackendClient) -> None:
        self.store = store
        self.backend = backend
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        """New lines were saved: file them soon (and start filing if not yet)."""
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="transcript-filer")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_LOOK)
            self._wake.clear()
            await asyncio.sleep(GATHER)
            if not await self.file_waiting():
                await asyncio.sleep(RETRY_AFTER)

    async def file_waiting(self) -> bool:
        """File every line waiting now; False if the backend or database could not be used."""
        async with self._lock:
            before: list[tuple[str, int]] = []
            while True:
                try:
                    lines = await self.store.unfiled_lines()
                except Exception:
                    log.warning("transcript: waiting lines could not be read", exc_info=True)
                    return False
                waiting = [(line.chat, line.seq) for line in lines]
                if not lines or waiting == before:
                    # Nothing left, or nothing moved (another writer's lines): not a loop.
                    return True
                before = waiting
                for batch in _batches(lines):
                    if not await self._file(batch):
                        return False

    async def _file(self, batch: list[Line]) -> bool:
        payload = [
            {"chat": line.chat, "seq": line.seq, "direction": line.direction, "text": line.text}
            for line in batch
        ]
        try:
            await self.backend.file_transcript(payload)
        except BackendRefused as exc:
            # The backend will never take these (a contract mismatch, not an outage):
            # keeping them would hold up every later line.
            log.error("transcript: %d lines refused (%s), not filed", len(batch), exc)
        except BackendError as exc:
            # Kept in the bot database: filed on the next try, in order.
            log.warning("transcript: %d lines not filed yet (%s)", len(batch), exc)
            return False
        last: dict[str, int] = {}
        for line in batch:
            last[line.chat] = max(last.get(line.chat, 0), line.seq)
        try:
            await self.store.filed_many(last)
        except Exception:
            # Filed but not noted: filed again later, which the backend ignores.
            log.warning("transcript: filed lines not noted", exc_info=True)
            return False
        return True

    async def flush(self) -> None:
        """File what is waiting now (one try; what fails stays for the background)."""
        await self.file_waiting()

    async def close(self) -> None:
        """File what is waiting, then stop the background filer."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
