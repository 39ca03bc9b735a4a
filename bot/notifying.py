"""Notifications: a backend notification shown once in its chat, and the agent hand-over.

``Notifier.notify`` renders one notification (``bot.notices``) in the chat's
locale, saves what it changes (an agent joined: the dialogs stop; the agent
left: they resume) with its transcript line, hands the replies to ``send``
and only then marks the notification shown, so one whose send failed is
shown on redelivery. This is how the bot learns that an agent holds a chat:
from the ``agent_joined`` and ``agent_left`` notifications it receives
anyway, never by asking the backend on a customer's message.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from bot import notices
from bot.channel import Outgoing, Reply, Send
from bot.engine_adapter import EngineAdapter
from bot.i18n import Catalogs, negotiate
from bot.records import Records
from bot.state import ChatRecord, StaleState
from bot.stepping import replies as engine_replies
from bot.transcript import bot_lines

log = logging.getLogger(__name__)

SAVE_ATTEMPTS = 3


class Notifier:
    """Shows backend notifications in their chats, once each."""

    def __init__(self, records: Records, say: Callable[..., str]) -> None:
        self.records = records
        self.say = say

    async def notify(
        self,
        notification: dict[str, Any],
        engine: EngineAdapter,
        dialogs: Any,
        catalogs: Catalogs,
        send: Send | None = None,
    ) -> list[Outgoing]:
        """Render one backend notification for its chat; [] if already shown or unknown.

        With ``send``, the replies are handed to it first and the notification is
        marked shown only once it returns: a send that fails leaves the
        notification to be shown on redelivery. Without ``send`` the caller shows
        the returned replies itself and the notification counts as shown at once.
        """
        chat, nid = notification.get("chat"), notification.get("id")
        if not isinstance(chat, str) or not isinstance(nid, int):
            log.warning("notification without chat or id ignored")
            return []
        records, store = self.records, self.records.store
        async with records.lock(chat):
            if await store.was_shown(chat, nid):
                return []
            for _ in range(SAVE_ATTEMPTS):
                record = await records.load(chat)
                state = records.state(record, None)
                if record.state is None and isinstance(notification.get("locale"), str):
                    state = engine.new_state(negotiate(str(notification["locale"])))
                state, shown = self._notice(
                    engine, dialogs, catalogs, chat, record, state, notification
                )
                # The agent's own words are in the transcript already (the console filed them).
                lines = [] if notification.get("type") == "agent_message" else bot_lines(shown)
                try:
                    await records.save(record, state, lines)
                except StaleState:
                    continue
                if send is not None:
                    await send(shown)
                if not await store.mark_shown(chat, nid, records.clock.now()):
                    return []
                return shown
        return []

    def _notice(
        self,
        engine: EngineAdapter,
        dialogs: Any,
        catalogs: Catalogs,
        chat: str,
        record: ChatRecord,
        state: Any,
        notification: dict[str, Any],
    ) -> tuple[Any, list[Outgoing]]:
        """The notification's messages in the chat's locale; hand-over changes ``record``."""
        locale = engine.locale(state)
        say = functools.partial(self.say, locale)
        try:
            texts = notices.render(notification, say, catalogs.translator(locale))
        except Exception:
            log.exception("chat %s: notification %s not rendered", chat, notification.get("id"))
            texts = []
        shown: list[Outgoing] = [Reply(t) for t in texts]
        kind = notification.get("type")
        if kind == "agent_joined":
            record.agent_active = True
        elif kind == "agent_left":
            record.agent_active = False
            details = notification.get("details") or {}
            menu = isinstance(details, dict) and details.get("resume") == "menu"
            try:
                resumed = engine.resume(dialogs, state, catalogs, menu=menu)
            except Exception:
                log.exception("chat %s: could not resume after the agent left", chat)
            else:
                state = resumed.state
                shown += engine_replies(resumed.messages)
        return state, shown
