"""The conversation service: one customer event in, the chat's answers out.

``Conversations.handle(chat, event)`` loads the chat's state, screens the
message (``bot.hygiene``), files it masked in the transcript (``bot.transcript``), runs
the pure dialog engine, carries out the actions it asks for
(``bot.actions``) feeding each outcome back until none remain, saves the
state and returns what the channel should send or delete. While an agent
holds the chat the engine does not run: the message only reaches the agent.
``notify`` renders one backend notification (``bot.notices``) once per chat.
An update the channel delivers again (same or older ``update_id``) is skipped;
an edited message is only screened, never shown to the dialogs.

The engine is reached through ``bot.engine_adapter.EngineAdapter`` so this
plumbing can be tested with a small stand-in; ``DialogEngine`` binds the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from bot import hygiene, notices
from bot.actions import ActionContext, run_action
from bot.backend_client import BackendClient
from bot.channel import (
    Button,
    ChannelEvent,
    Contact,
    Delete,
    Edited,
    Event,
    Outgoing,
    Reply,
    Send,
    Text,
)
from bot.engine_adapter import DialogEngine, EngineAdapter, OutMessage, PlainMessage
from bot.i18n import Catalogs, negotiate
from bot.settings import BotSettings
from bot.state import ChatRecord, StaleState, StateStore
from bot.state_key import load_state_key
from bot.transcript import Transcript
from common.clock import Clock, SystemClock

log = logging.getLogger(__name__)

COMMANDS = ("start", "cancel", "back", "help", "language", "status", "agent")
# Each event may set off a chain of actions; a dialog looping on actions is a bug, not a wait.
MAX_ACTIONS_PER_EVENT = 20
SAVE_ATTEMPTS = 3
# A conversation idle this long starts again at the menu; what it collected is deleted.
IDLE_RETENTION = timedelta(days=30)
# Notifications are redelivered within minutes; their "shown" marks need not live long.
SHOWN_RETENTION = timedelta(days=7)
PRUNE_EVERY = timedelta(hours=6)
# Telegram keeps an unconfirmed update for 24 hours, and after a week without
# updates starts its ids afresh (lower, perhaps): an older chat compares no ids.
REDELIVERY_WINDOW = timedelta(hours=24)


def _replies(messages: Sequence[OutMessage]) -> list[Outgoing]:
    return [
        Reply(
            text=m.text,
            buttons=tuple(
                tuple(Button(data=i, label=label) for i, label in row) for row in m.options
            ),
            contact_button=m.contact_button,
            remove_keyboard=m.remove_keyboard,
        )
        for m in messages
    ]


class Conversations:
    """Every chat's conversation; safe to call concurrently, across processes too."""

    def __init__(
        self,
        settings: BotSettings,
        *,
        store: StateStore,
        backend: BackendClient,
        catalogs: Catalogs,
        engine: EngineAdapter,
        dialogs: Any,
        owns_backend: bool,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.backend = backend
        self.catalogs = catalogs
        self.engine = engine
        self.dialogs = dialogs
        self.clock = clock or SystemClock()
        self._owns_backend = owns_backend
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._pruned_at: datetime | None = None
        self.transcript = Transcript(backend)

    @classmethod
    async def open(
        cls,
        settings: BotSettings,
        *,
        backend: BackendClient | None = None,
        engine: EngineAdapter | None = None,
        clock: Clock | None = None,
    ) -> Conversations:
        """Load catalogs and dialogs (broken files raise here) and open the state store."""
        if engine is None:
            engine = DialogEngine()
        catalogs = await asyncio.to_thread(Catalogs.load, settings.locales_dir)
        dialogs = await asyncio.to_thread(engine.load, settings.dialogs_dir, catalogs)
        key = load_state_key(settings)
        owns = backend is None
        if backend is None:
            token = settings.with_service_token().service_token
            backend = BackendClient(settings.backend_url, token)
        return cls(
            settings,
            store=StateStore.open(settings.bot_database_url, key),
            backend=backend,
            catalogs=catalogs,
            engine=engine,
            dialogs=dialogs,
            owns_backend=owns,
            clock=clock,
        )

    async def close(self) -> None:
        """Finish transcript writes, close the state store (and the backend client if ours)."""
        await self.flush()
        await self.store.close()
        if self._owns_backend:
            await self.backend.close()

    @asynccontextmanager
    async def _chat_lock(self, chat: str) -> AsyncIterator[None]:
        # One event at a time per chat in this process; the version check covers other processes.
        lock, users = self._locks.get(chat, (asyncio.Lock(), 0))
        self._locks[chat] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[chat]
            if users <= 1:
                del self._locks[chat]
            else:
                self._locks[chat] = (lock, users - 1)

    def _claim(self, record: ChatRecord, event: ChannelEvent) -> bool:
        """False if ``event`` was handled in the chat already; else note it as the last one."""
        update_id = event.update_id
        if update_id is None:
            return True
        last, saved = record.last_update_id, record.updated_at
        if (
            last is not None
            and saved is not None
            and self.clock.now() - saved < REDELIVERY_WINDOW
            and update_id <= last
        ):
            return False
        record.last_update_id = update_id
        return True

    def _state(self, record: ChatRecord, event: ChannelEvent | None) -> Any:
        """The chat's engine state; a new chat starts in the locale its platform reports."""
        if record.state is not None:
            try:
                return self.engine.state_from_json(record.state)
            except Exception:
                log.warning(
                    "chat %s: stored state unreadable, starting again", record.chat, exc_info=True
                )
        return self.engine.new_state(negotiate(getattr(event, "language_code", None)))

    def say(self, locale: str, message_id: str, **params: Any) -> str:
        """A named message in ``locale``."""
        return self.engine.say(self.dialogs, self.catalogs, locale, message_id, **params)

    async def prune(self) -> None:
        """Delete idle conversations and old shown marks (at most every few hours)."""
        now = self.clock.now()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        idle, marks = await self.store.prune(
            idle_before=now - IDLE_RETENTION, shown_before=now - SHOWN_RETENTION
        )
        if idle or marks:
            log.info("pruned %d idle conversations and %d shown marks", idle, marks)

    async def handle(self, chat: str, event: ChannelEvent) -> list[Outgoing]:
        """Answer one customer event; never raises for bad input or an unreachable backend."""
        await self.prune()
        async with self._chat_lock(chat):
            record = await self.store.load(chat)
            if not self._claim(record, event):
                log.info("chat %s: update %s handled already, skipped", chat, event.update_id)
                return []
            if isinstance(event, Edited):
                return await self._edited(chat, record, event)
            state = self._state(record, event)
            locale = self.engine.locale(state)
            sensitive = not record.agent_active and self._sensitive(state)
            screened = (
                hygiene.scan(event.text, sensitive=sensitive) if isinstance(event, Text) else None
            )
            agent = await self.transcript.customer_said(chat, event, sensitive=sensitive)
            out: list[Outgoing] = []
            message_id = getattr(event, "message_id", None)
            if screened is not None and screened.found and message_id is not None:
                out.append(Delete(message_id, screened.kinds[0]))
            notices_shown = self._hygiene_notices(screened, locale)
            agent_active = record.agent_active if agent is None else agent
            blocked = screened is not None and any(k != "code" for k in screened.kinds)
            if agent_active or blocked:
                # The agent reads it, or it held data that must not be acted on.
                record.agent_active = agent_active
                out += notices_shown
                with contextlib.suppress(StaleState):
                    # Nothing of the conversation changed: a newer save may stand.
                    await self._save(record, state)
                self.transcript.bot_said(chat, notices_shown)
                return out
            record.agent_active = False
            replies = await self._run(chat, record, state, event, out, notices_shown)
            return replies

    async def _edited(self, chat: str, record: ChatRecord, event: Edited) -> list[Outgoing]:
        """Screen an edited message: delete it if it now holds what a new one may not.

        The dialog does not move (an edit is not a new answer); only the
        masked text is filed, so an agent sees what the customer changed.
        """
        state = self._state(record, event)
        sensitive = not record.agent_active and self._sensitive(state)
        screened = hygiene.scan(event.text, sensitive=sensitive)
        if not screened.found:
            return []
        await self.transcript.customer_said(
            chat, Text(event.text, event.message_id), sensitive=sensitive
        )
        notices_shown = self._hygiene_notices(screened, self.engine.locale(state))
        if event.update_id is not None:
            with contextlib.suppress(StaleState):
                # Only the update id changed: a newer save may stand.
                await self._save(record, state)
        self.transcript.bot_said(chat, notices_shown)
        return [Delete(event.message_id, screened.kinds[0]), *notices_shown]

    def _sensitive(self, state: Any) -> bool:
        try:
            return bool(self.engine.sensitive(self.dialogs, state))
        except Exception:
            return False

    def _hygiene_notices(self, screened: hygiene.Scan | None, locale: str) -> list[Outgoing]:
        if screened is None:
            return []
        return [Reply(self.say(locale, f"hygiene.{kind}")) for kind in screened.kinds]

    async def _run(
        self,
        chat: str,
        record: ChatRecord,
        state: Any,
        event: Event,
        deletes: list[Outgoing],
        notices_shown: list[Outgoing],
    ) -> list[Outgoing]:
        """Step the engine (retrying if another process saved the chat meanwhile) and persist."""
        for attempt in range(SAVE_ATTEMPTS):
            if attempt:
                record = await self.store.load(chat)
                if not self._claim(record, event):
                    # The same update, delivered to another process too, was handled there.
                    return list(deletes)
                state = self._state(record, event)
            memory = dict(record.context)
            locale = self.engine.locale(state)
            messages, state, delete_input = await self._step(chat, state, event, memory, locale)
            record.context = memory
            try:
                await self._save(record, state)
            except StaleState:
                log.info("chat %s: saved elsewhere meanwhile, stepping again", chat)
                continue
            out = list(deletes)
            message_id = getattr(event, "message_id", None)
            if delete_input and message_id is not None and not out:
                out.append(Delete(message_id, "code"))
                notices_shown = [Reply(self.say(self.engine.locale(state), "hygiene.code"))]
            replies = [*notices_shown, *_replies(messages)]
            self.transcript.bot_said(chat, replies)
            return out + replies
        log.error("chat %s: could not save after %d attempts", chat, SAVE_ATTEMPTS)
        return [*deletes, Reply(self.say(self.engine.locale(state), "engine.error"))]

    async def _step(
        self, chat: str, state: Any, event: Any, memory: dict[str, Any], locale: str
    ) -> tuple[list[OutMessage], Any, bool]:
        """Run the engine on ``event`` and every action it asks for; (messages, state, delete)."""
        shared = event.phone if isinstance(event, Contact) and event.own else None
        try:
            result = self.engine.step(self.dialogs, state, event, self.catalogs)
            messages, delete_input = list(result.messages), result.delete_input
            state = result.state
            queue = deque(result.actions)
            escalated: set[str] = set()
            await self._escalate(chat, state, memory, result.escalate, escalated)
            for _ in range(MAX_ACTIONS_PER_EVENT):
                if not queue:
                    break
                call = queue.popleft()
                ctx = ActionContext(chat, self.engine.locale(state), memory, shared)
                outcome, data = await run_action(self.backend, ctx, call.name, dict(call.args))
                log.debug("chat %s: action %s → %s", chat, call.name, outcome)
                if call.name == "escalate":
                    escalated.add("done")
                event_back = self.engine.action_result(call.name, outcome, data)
                result = self.engine.step(self.dialogs, state, event_back, self.catalogs)
                messages += result.messages
                state = result.state
                queue.extend(result.actions)
                reason = "lockout" if outcome == "locked_out" else result.escalate
                await self._escalate(chat, state, memory, reason, escalated)
            else:
                log.error(
                    "chat %s: more than %d actions for one event", chat, MAX_ACTIONS_PER_EVENT
                )
            return messages, state, delete_input
        except Exception:
            # A bug in a dialog or the engine must not strand the customer: start over.
            log.exception("chat %s: engine failed; conversation restarted", chat)
            fresh = self.engine.new_state(locale)
            return [PlainMessage(self.say(locale, "engine.error"))], fresh, False

    async def _escalate(
        self, chat: str, state: Any, memory: dict[str, Any], reason: str | None, done: set[str]
    ) -> None:
        """Queue the chat for an agent (repeated misunderstanding, lockout) once per event.

        The dialogs still offer the customer a person; accepting runs their
        ``escalate`` action, which finds this escalation open and reuses it.
        """
        if reason is None or done:
            return
        done.add(reason)
        ctx = ActionContext(chat, self.engine.locale(state), memory)
        outcome, _ = await run_action(self.backend, ctx, "escalate", {"reason": reason})
        log.info("chat %s: escalated (%s): %s", chat, reason, outcome)

    async def _save(self, record: ChatRecord, state: Any) -> None:
        record.state = self.engine.state_to_json(state)
        await self.store.save(record, self.clock.now())

    async def flush(self, chat: str | None = None) -> None:
        """Wait until the transcript holds every answer given so far (in one chat, or all)."""
        await self.transcript.flush(chat)

    async def notify(
        self, notification: dict[str, Any], send: Send | None = None
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
        async with self._chat_lock(chat):
            if await self.store.was_shown(chat, nid):
                return []
            for _ in range(SAVE_ATTEMPTS):
                record = await self.store.load(chat)
                state = self._state(record, None)
                if record.state is None and isinstance(notification.get("locale"), str):
                    state = self.engine.new_state(negotiate(str(notification["locale"])))
                state, replies = self._notice(chat, record, state, notification)
                try:
                    await self._save(record, state)
                except StaleState:
                    continue
                if send is not None:
                    await send(replies)
                if not await self.store.mark_shown(chat, nid, self.clock.now()):
                    return []
                if notification.get("type") != "agent_message":
                    self.transcript.bot_said(chat, replies)
                return replies
        return []

    def _notice(
        self, chat: str, record: ChatRecord, state: Any, notification: dict[str, Any]
    ) -> tuple[Any, list[Outgoing]]:
        """The notification's messages in the chat's locale; hand-over changes ``record``."""
        locale = self.engine.locale(state)
        say = functools.partial(self.say, locale)
        try:
            texts = notices.render(notification, say, self.catalogs.translator(locale))
        except Exception:
            log.exception("chat %s: notification %s not rendered", chat, notification.get("id"))
            texts = []
        replies: list[Outgoing] = [Reply(t) for t in texts]
        kind = notification.get("type")
        if kind == "agent_joined":
            record.agent_active = True
        elif kind == "agent_left":
            record.agent_active = False
            details = notification.get("details") or {}
            menu = isinstance(details, dict) and details.get("resume") == "menu"
            try:
                resumed = self.engine.resume(self.dialogs, state, self.catalogs, menu=menu)
            except Exception:
                log.exception("chat %s: could not resume after the agent left", chat)
            else:
                state = resumed.state
                replies += _replies(resumed.messages)
        return state, replies

    def commands(self, locale: str) -> list[tuple[str, str]]:
        """The command menu in ``locale``: (command, description) for setMyCommands."""
        return [(name, self.say(locale, f"command_menu.{name}")) for name in COMMANDS]

    async def reload(self) -> bool:
        """Re-read catalogs and dialogs; on any error keep the last good ones and log why."""
        try:
            catalogs = await asyncio.to_thread(Catalogs.load, self.settings.locales_dir)
            dialogs = await asyncio.to_thread(self.engine.load, self.settings.dialogs_dir, catalogs)
        except Exception as exc:
            log.error("dialogs not reloaded, keeping the last good set:\n%s", exc)
            return False
        self.catalogs, self.dialogs = catalogs, dialogs
        log.info("dialogs reloaded")
        return True
