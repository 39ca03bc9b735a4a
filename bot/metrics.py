"""The bot's Prometheus metrics and readiness (names listed in ``docs/operators.md``, "Monitoring").

``datadesk bot`` serves them on ``BOT_METRICS_PORT`` (``common.monitoring``);
inside ``datadesk run`` they appear in the backend's ``/metrics``, the
process's one registry.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update

from common.monitoring import REGISTRY, Monitoring

UPDATES = Counter(
    "datadesk_bot_updates",
    "Telegram updates the bot handled, by kind (command, text, contact, button, "
    "edited_message, other).",
    ["kind"],
    registry=REGISTRY,
)
UPDATE_SECONDS = Histogram(
    "datadesk_bot_update_seconds",
    "Time from the bot taking an update to its answer being sent, by kind.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
UPDATE_ERRORS = Counter(
    "datadesk_bot_update_errors",
    "Attempts at handling an update that ended in an error, and answers not shown "
    "(logged with the update id and the error's type).",
    registry=REGISTRY,
)
UPDATES_GIVEN_UP = Counter(
    "datadesk_bot_updates_given_up",
    "Updates given up after their last attempt failed; the customer was asked to send them again.",
    registry=REGISTRY,
)

# Telegram answers getMe cheaply, but a readiness probe every few seconds need not ask each time.
BOT_API_FRESH_FOR = 30.0


def update_kind(update: Update) -> str:
    """One of a few fixed kinds, never anything the customer typed."""
    if update.callback_query is not None:
        return "button"
    if update.edited_message is not None:
        return "edited_message"
    message = update.message
    if message is None:
        return "other"
    if message.contact is not None:
        return "contact"
    if message.text is not None:
        return "command" if message.text.startswith("/") else "text"
    return "other"


def monitoring(
    database: AsyncEngine,
    backend_ready: Callable[[], Awaitable[bool]],
    bot_api_ready: Callable[[], Awaitable[bool]],
) -> Monitoring:
    """The bot is ready when its database answers, the backend is ready, and the Bot API answers.

    The Bot API's answer is remembered for ``BOT_API_FRESH_FOR`` seconds.
    """
    checked = {"at": -BOT_API_FRESH_FOR, "ok": False}

    async def probe() -> str | None:
        try:
            async with database.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return "bot database unavailable"
        if not await backend_ready():
            return "backend unavailable"
        now = time.monotonic()
        if not checked["ok"] or now - checked["at"] >= BOT_API_FRESH_FOR:
            checked["ok"] = await bot_api_ready()
            checked["at"] = now
        if not checked["ok"]:
            return "Bot API unavailable"
        return None

    return Monitoring(probe)
