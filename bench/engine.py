"""The dialog engine's speed: events per second, pure and with state persisted on SQLite.

One "journey" is a whole erasure conversation, 16 events (customer turns and
action results): /start, the menu, a shared contact, the code, a wrong code,
the right one, the scope, the retention preview, a typed yes, the submit.
Many chats walk it interleaved, on the shipped dialogs and catalogs, in Latvian.

- pure: ``bot.engine.step`` alone, the state kept in memory (as JSON dicts);
- persisted: each event loads the chat's row from the bot database (SQLite,
  migrated, WAL), steps, and saves it back encrypted with the event's
  transcript lines, through ``bot.state.StateStore`` as the running bot does
  (a polling bot, which remembers the records it saved). The chats run at
  once, one event at a time each (the bot serialises a chat, not the bot).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bot.channel import Contact, Event, Press, Start, Text
from bot.engine import ActionResult, Dialogs, State, load_dialogs, step
from bot.i18n import Catalogs
from bot.state import BOT_MIGRATIONS, StateStore
from bot.state_key import StateKey
from common.db import upgrade_sync
from common.settings import REPO_ROOT

SECONDS = 3.0
CHATS = 50
FLUSH_EVERY = 0.2

PREVIEW = {
    "preview_id": "pv_1",
    "categories": [
        {"category": "marketing", "action": "erase"},
        {
            "category": "transactions",
            "action": "keep",
            "basis": "eu_aml_records",
            "until": "2029-06-30",
        },
        {
            "category": "products",
            "action": "keep",
            "basis": "product_open",
            "until": None,
            "while_open": {"kind": "current_account", "masked": "LV80 •••• 5001"},
        },
    ],
    "warnings": ["irreversible", "open_products"],
}

JOURNEY: list[Event | ActionResult] = [
    Start("lv"),
    Text("😀"),
    Press("erasure"),
    Contact("+37120000001", own=True),
    ActionResult("verification_channels", "ok", {"email_codes": True}),
    Press("sms"),
    ActionResult("start_verification", "sent"),
    Text("12 34 56"),
    ActionResult("check_code", "wrong_code", {"attempts_left": 4}),
    Text("654321"),
    ActionResult("check_code", "verified"),
    Press("all"),
    ActionResult("preview_erasure", "ok", PREVIEW),
    Text("varbūt"),
    Text("jā"),
    ActionResult(
        "submit_request", "submitted", {"reference": "DD-7K2Q9M", "due_date": "2026-12-22"}
    ),
    Press("status"),
]


def _setup() -> tuple[Dialogs, Catalogs]:
    return load_dialogs(REPO_ROOT / "dialogs"), Catalogs.load(REPO_ROOT / "locales")


def pure(dialogs: Dialogs, catalogs: Catalogs) -> tuple[int, float]:
    """Events stepped in ``SECONDS`` by the pure engine; (events, seconds)."""
    states = [State().to_json() for _ in range(CHATS)]
    events, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        for event in JOURNEY:
            for chat in range(CHATS):
                result = step(dialogs, State.from_json(states[chat]), event, catalogs)
                states[chat] = result.state.to_json()
                events += 1
    return events, time.perf_counter() - started


async def persisted(dialogs: Dialogs, catalogs: Catalogs, folder: Path) -> tuple[int, float]:
    """Events stepped in ``SECONDS`` with a load and a save of the chat's row around each.

    As in the bot, the chats run at once, each one event at a time; every
    save carries the event's two transcript lines, as ``bot.conversation`` does.
    """
    url = f"sqlite+aiosqlite:///{folder / 'bot.sqlite3'}"
    await asyncio.to_thread(upgrade_sync, url, BOT_MIGRATIONS)
    store = StateStore.open(url, StateKey("bench-secret-not-for-production"), remember=CHATS)
    events = 0
    started = time.perf_counter()

    async def chat(name: str) -> None:
        nonlocal events
        while time.perf_counter() - started < SECONDS:
            for event in JOURNEY:
                record = await store.load(name)
                state = State.from_json(record.state) if record.state else State()
                result = step(dialogs, state, event, catalogs)
                record.state = result.state.to_json()
                said = "\n\n".join(m.text for m in result.messages) or "…"
                await store.save(record, lines=[("in", f"{event}"), ("out", said)])
                events += 1

    async def filer() -> None:
        # The transcript flusher's database side, with a backend that takes every line.
        while time.perf_counter() - started < SECONDS:
            await asyncio.sleep(FLUSH_EVERY)
            last: dict[str, int] = {}
            for line in await store.unfiled_lines(CHATS):
                last[line.chat] = max(line.seq, last.get(line.chat, 0))
            for name, seq in last.items():
                await store.filed(name, seq)

    try:
        await asyncio.gather(filer(), *(chat(f"bench:{number}") for number in range(CHATS)))
    finally:
        await store.close()
    return events, time.perf_counter() - started


def main() -> int:
    """Print events per second for the pure engine and with state on SQLite."""
    dialogs, catalogs = _setup()
    print(
        f"engine: {len(JOURNEY)}-event erasure journey, {CHATS} chats interleaved, ~{SECONDS:.0f} s per case"
    )
    events, seconds = pure(dialogs, catalogs)
    pure_rate = events / seconds
    print(f"  pure engine          {pure_rate:10.0f} events/s  ({events} events, {seconds:.1f} s)")
    with tempfile.TemporaryDirectory(prefix="datadesk-bench-engine-") as folder:
        events, seconds = asyncio.run(persisted(dialogs, catalogs, Path(folder)))
    rate = events / seconds
    print(
        f"  state on SQLite      {rate:10.0f} events/s  ({events} events, {seconds:.1f} s)"
        f"  = {rate / pure_rate:.3f}x the pure engine (target 0.1x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
