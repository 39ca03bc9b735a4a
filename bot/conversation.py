"""The conversation service: one customer event in, the chat's answers out.

``Conversations`` assembles the parts, each in a module of its own:

- load and save (``bot.records``): the chat's record, redelivered updates
  skipped, the state and the update's transcript lines saved in one write;
- screening (``bot.screening``): data a message may not carry, deleted and
  explained before any dialog sees it;
- the engine-and-actions loop (``bot.stepping``): the pure dialog engine and
  the backend calls its actions make, the only backend calls on the way;
- notifications (``bot.notifying``): outcomes and the agent hand-over, shown
  once; they also tell the bot that an agent holds the chat.

The transcript is filed in the background (``bot.transcript.Filer``). While
an agent holds the chat the engine does not run: the message only reaches
the agent's transcript. An update the channel delivers again (same or older
``update_id``) is skipped; an edited message is only screened, never shown
to the dialogs.

An update whose handling raised before its state was saved is tried again by
the channel (``bot.telegram.retries``): the actions its earlier attempt ran
are kept per update until the save (``bot.stepping``, replay), so the retry
answers them from memory instead of asking the backend twice. An update
given up gets ``apology`` ("send it again") in the chat's language.

The engine is reached through ``bot.engine_adapter.EngineAdapter`` so this
plumbing can be tested with a small stand-in; ``DialogEngine`` binds the real one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from typing import Any

from bot.backend_client import BackendClient
from bot.channel import ChannelEvent, Delete, Edited, Event, Outgoing, Press, Reply, Send, Text
from bot.engine_adapter import DialogEngine, EngineAdapter
from bot.i18n import Catalogs, negotiate
from bot.notifying import Notifier
from bot.records import Records
from bot.screening import screen
from bot.settings import BotSettings
from bot.state import ChatRecord, StaleState, StateStore
from bot.state_key import load_state_key
from bot.stepping import Recorded, Stepper
from bot.transcript import Filer, bot_lines
from common.clock import Clock, SystemClock

log = logging.getLogger(__name__)

COMMANDS = ("start", "cancel", "back", "help", "language", "status", "agent", "logout")
# Another process saving the same chat first costs an attempt (webhook bots apply a
# chat's updates through one lease, so this is rare); a short random pause lets
# the other finish rather than collide again.
SAVE_ATTEMPTS = 8
# Chats whose last record a polling bot keeps in memory (it is their only writer).
REMEMBERED_CHATS = 10_000
# Updates whose actions are kept for a retry (``bot.stepping``: replay) while unsaved.
REMEMBERED_REPLAYS = 1_000


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
        self.filer = Filer(store, backend)
        self.records = Records(
            store, engine, self.clock, self.filer, exact=settings.telegram_mode == "webhook"
        )
        self.notifier = Notifier(self.records, self.say)
        # (chat, update id) → the actions an attempt ran whose state is not saved yet.
        self._replays: OrderedDict[tuple[str, int], list[Recorded]] = OrderedDict()

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
        # Polling allows one bot process per token: it alone writes its chats' records.
        remember = REMEMBERED_CHATS if settings.telegram_mode == "polling" else 0
        conversations = cls(
            settings,
            store=StateStore.open(settings.bot_database_url, key, remember=remember),
            backend=backend,
            catalogs=catalogs,
            engine=engine,
            dialogs=dialogs,
            owns_backend=owns,
            clock=clock,
        )
        # Lines a stopped process left unfiled are filed now.
        conversations.filer.wake()
        # Where codes can go is known before the first customer shares a number.
        await backend.load_channels()
        return conversations

    async def close(self) -> None:
        """File what the transcript still waits for, close the store (and our backend client)."""
        await self.filer.close()
        await self.store.close()
        if self._owns_backend:
            await self.backend.close()

    def say(self, locale: str, message_id: str, **params: Any) -> str:
        """A named message in ``locale``."""
        return self.engine.say(self.dialogs, self.catalogs, locale, message_id, **params)

    def busy(self) -> int:
        """Chats with an update in hand or waiting (a stopping process waits for none)."""
        return self.records.busy()

    async def handle(self, chat: str, event: ChannelEvent) -> list[Outgoing]:
        """Answer one customer event; never raises for bad input or an unreachable backend."""
        await self.records.prune()
        async with self.records.lock(chat):
            deletes: list[Outgoing] = []
            attempt = 0
            while attempt < SAVE_ATTEMPTS:
                record = await self.records.load(chat)
                # A remembered record found stale costs no attempt: the next load reads it.
                attempt += 0 if record.remembered else 1
                if not self.records.claim(record, event):
                    self._forget_replay(chat, event.update_id)
                    if attempt <= 1:
                        log.info(
                            "chat %s: update %s handled already, skipped", chat, event.update_id
                        )
                    # Else the same update, delivered to another process too, was handled there.
                    return deletes
                try:
                    if isinstance(event, Edited):
                        return await self._edited(record, event)
                    return await self._answer(record, event, deletes)
                except StaleState:
                    # Stepped from a state that is not the chat's any more: its actions run anew.
                    self._forget_replay(chat, event.update_id)
                    log.info("chat %s: saved elsewhere meanwhile, stepping again", chat)
                    await asyncio.sleep(random.uniform(0, 0.02 * attempt))  # noqa: S311 (jitter)
            log.error("chat %s: could not save after %d attempts", chat, SAVE_ATTEMPTS)
            locale = self.engine.locale(self.records.state(record, event))
            return [*deletes, Reply(self.say(locale, "engine.error"))]

    async def apology(self, chat: str, event: ChannelEvent) -> list[Outgoing]:
        """Ask the customer to send an update given up again, in the chat's language.

        The chat's record gives the language; when it cannot be read (the
        database that failed the update may fail this too) the platform's
        language for the customer does.
        """
        try:
            state = self.records.state(await self.records.load(chat), event)
        except Exception as exc:
            log.info(
                "chat %s: language for the apology from the platform (%s)", chat, type(exc).__name__
            )
            state = self.engine.new_state(negotiate(getattr(event, "language_code", None)))
        return [Reply(self.say(self.engine.locale(state), "engine.retry_later"))]

    async def _answer(
        self, record: ChatRecord, event: Event, deletes: list[Outgoing]
    ) -> list[Outgoing]:
        """Screen, step and save one event (StaleState if another process saved meanwhile)."""
        chat = record.chat
        state = self.records.state(record, event)
        locale = self.engine.locale(state)
        sensitive = not record.agent_active and self._sensitive(state)
        label = self._label(state, event)
        screened = screen(
            event, sensitive=sensitive, say=lambda m: self.say(locale, m), label=label
        )
        deletes[:] = screened.deletes
        if record.agent_active or screened.blocked:
            # The agent reads it, or it held data that must not be acted on.
            await self.records.save(record, state, [screened.line, *bot_lines(screened.notices)])
            return [*screened.deletes, *screened.notices]
        memory = dict(record.context)
        replay = self._replay(chat, event.update_id)
        stepper = Stepper(self.engine, self.dialogs, self.catalogs, self.backend, self.say, replay)
        stepped = await stepper.run(chat, state, event, memory, locale)
        record.context = memory
        out = list(screened.deletes)
        notices = screened.notices
        message_id = getattr(event, "message_id", None)
        if stepped.delete_input and message_id is not None and not out:
            out.append(Delete(message_id, "code"))
            notices = [Reply(self.say(self.engine.locale(stepped.state), "hygiene.code"))]
        answer = [*notices, *stepped.outgoing()]
        await self.records.save(record, stepped.state, [screened.line, *bot_lines(answer)])
        self._forget_replay(chat, event.update_id)
        return out + answer

    def _forget_replay(self, chat: str, update_id: int | None) -> None:
        if update_id is not None:
            self._replays.pop((chat, update_id), None)

    def _replay(self, chat: str, update_id: int | None) -> list[Recorded]:
        """The actions an earlier attempt at this update ran (``bot.stepping``); [] the first time."""
        if update_id is None:
            # Without an id, one event cannot be told from the next.
            return []
        replay = self._replays.setdefault((chat, update_id), [])
        self._replays.move_to_end((chat, update_id))
        while len(self._replays) > REMEMBERED_REPLAYS:
            self._replays.popitem(last=False)
        return replay

    async def _edited(self, record: ChatRecord, event: Edited) -> list[Outgoing]:
        """Screen an edited message: delete it if it now holds what a new one may not.

        The dialog does not move (an edit is not a new answer); only the
        masked text is filed, so an agent sees what the customer changed.
        """
        state = self.records.state(record, event)
        locale = self.engine.locale(state)
        sensitive = not record.agent_active and self._sensitive(state)
        edited = Text(event.text, event.message_id)
        screened = screen(edited, sensitive=sensitive, say=lambda m: self.say(locale, m))
        if screened.found is None:
            return []
        await self.records.save(record, state, [screened.line, *bot_lines(screened.notices)])
        return [Delete(event.message_id, screened.found), *screened.notices]

    def _label(self, state: Any, event: Event) -> str | None:
        """The label of the button pressed, as the customer saw it; None for anything else."""
        if not isinstance(event, Press):
            return None
        try:
            return self.engine.label(self.dialogs, state, event.option_id, self.catalogs)
        except Exception:
            # The transcript then shows the option's id: never a reason not to answer.
            log.warning("chat: button label not found", exc_info=True)
            return None

    def _sensitive(self, state: Any) -> bool:
        try:
            return bool(self.engine.sensitive(self.dialogs, state))
        except Exception:
            return False

    async def flush(self, chat: str | None = None) -> None:
        """File every transcript line saved so far (``chat`` is accepted for older callers)."""
        await self.filer.flush()

    async def notify(
        self, notification: dict[str, Any], send: Send | None = None
    ) -> list[Outgoing]:
        """Render one backend notification for its chat; [] if already shown or unknown."""
        return await self.notifier.notify(
            notification, self.engine, self.dialogs, self.catalogs, send
        )

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
