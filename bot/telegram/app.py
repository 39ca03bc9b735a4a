"""The Telegram channel: one PTB Application, polling or webhook, feeding ``Conversations``.

Every update goes through one handler: read it into a ``bot.channel`` event
(``events.read_update``), let the conversation service decide, carry out its
``Reply``/``Delete`` values here (``render``). Updates of one chat run in order,
different chats concurrently (``processor``). ``limiter`` keeps this process
within its share of the token's flood limit (``registry``: the live bot
processes of the token share it), replies before notices, chats in turn.

Life cycle: ``async with channel:`` (or ``await channel.run()`` until cancelled)
checks the token (getMe), sets the command menu per language, then starts
fetching updates and delivering the backend's outcome notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import (
    BotCommand,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ParseMode, UpdateType
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError
from telegram.ext import Application, ContextTypes, Defaults, TypeHandler

from bot.channel import ChannelEvent, Contact, Delete, Document, Edited, Outgoing, Press, Reply
from bot.metrics import UPDATE_ERRORS, UPDATE_SECONDS, UPDATES, UPDATES_GIVEN_UP, update_kind
from bot.settings import use_timedelta_periods
from bot.state_key import StateKey
from bot.telegram import retries
from bot.telegram.events import Incoming, read_update
from bot.telegram.inbox import ORDER_WAIT, SWEEP_AFTER, Inbox, InboxDrains
from bot.telegram.limiter import TurnTakingRateLimiter
from bot.telegram.notifications import (
    BATCH,
    NotificationSource,
    Renderer,
    deliver_notifications,
)
from bot.telegram.processor import PerChatUpdateProcessor, chat_key
from bot.telegram.registry import HEARTBEAT, ProcessRegistry, process_name, share
from bot.telegram.render import Send, compose, render
from bot.telegram.transport import AiohttpRequest
from bot.telegram.webhook import WebhookServer
from common.db import is_sqlite, make_engine

log = logging.getLogger(__name__)

SEND_ATTEMPTS = 4
# Messages whose buttons this process remembers (to tell a stale tap from a live one).
REMEMBERED_KEYBOARDS = 50_000
# Edited messages are read so a card number added by an edit is taken out of the chat too.
ALLOWED_UPDATES = (UpdateType.MESSAGE, UpdateType.EDITED_MESSAGE, UpdateType.CALLBACK_QUERY)

# Telegram's setMyCommands takes ISO 639-1 codes, so it cannot tell Simplified
# from Traditional Chinese: "zh" gets zh_Hans, the script most Chinese-language
# Telegram users read; zh_Hant readers still get their own dialogs (negotiated
# from zh-TW/zh-HK). "" is the menu for every other language: English, the
# fallback locale.
MENU_LOCALES: tuple[tuple[str, str], ...] = (
    ("", "en"),
    ("en", "en"),
    ("lv", "lv"),
    ("ru", "ru"),
    ("zh", "zh_Hans"),
)


# PTB logs whole updates and API answers at DEBUG (customers' texts, numbers and
# codes), and httpx logs every URL at INFO (the bot token is in it). Those
# loggers are pinned at these floors, whatever level the process logs at.
LOG_FLOORS = (("telegram", logging.INFO), ("httpx", logging.WARNING), ("httpcore", logging.WARNING))


def keep_customer_data_out_of_logs() -> None:
    """Pin PTB's and httpx's loggers at their floors or the level they already have."""
    for name, floor in LOG_FLOORS:
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, logger.getEffectiveLevel()))


def _editable(part: Send) -> bool:
    # editMessageText takes an inline keyboard or none; a reply keyboard needs a new message.
    return part.markup is None or isinstance(part.markup, InlineKeyboardMarkup)


class ConversationService(Renderer, Protocol):
    """What the channel needs of ``bot.conversation.Conversations``."""

    async def handle(self, chat: str, event: ChannelEvent) -> list[Outgoing]: ...

    async def apology(self, chat: str, event: ChannelEvent) -> list[Outgoing]: ...

    def commands(self, locale: str) -> list[tuple[str, str]]: ...


@dataclass(frozen=True)
class ChannelOptions:
    """How the channel reaches Telegram and how much it does at once."""

    mode: str = "polling"  # or "webhook"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8443
    workers: int = 64  # updates handled at once, across chats
    # Limited Bot API calls a second for the token, shared by its live bot
    # processes (registered in ``bot_database_url``); 0 (or False): no limit.
    rate_limit: float = 30.0
    bot_database_url: str | None = None
    registry_heartbeat: float = HEARTBEAT  # seconds between registry heartbeats
    # Webhook mode with a bot database and its key: updates go through the
    # database's inbox, so any number of bot processes can take them.
    state_key: StateKey | None = field(default=None, repr=False)
    inbox_sweep: float = SWEEP_AFTER.total_seconds()  # seconds between sweeps
    # With other bot processes live: seconds a chat's stored update waits for
    # one stored beside it by another bot, so the two apply in update_id order.
    order_wait: float = ORDER_WAIT
    max_retries: int = 3  # RetryAfter retries per call
    # Pauses before trying an update whose handling failed again (``bot.telegram.retries``).
    update_backoff: tuple[float, ...] = retries.BACKOFF
    poll_timeout: float = 10.0  # getUpdates long-poll
    notifications_wait: float = 30.0  # backend outbox long-poll
    remove_pressed_keyboard: bool = True


class TelegramChannel:
    """Runs one bot token against a conversation service until stopped."""

    def __init__(
        self,
        *,
        token: str,
        api_url: str,
        conversations: ConversationService,
        notifications: NotificationSource | None = None,
        options: ChannelOptions | None = None,
    ) -> None:
        keep_customer_data_out_of_logs()
        use_timedelta_periods()
        self.options = options or ChannelOptions()
        self.conversations = conversations
        self.notifications = notifications
        self.processor = PerChatUpdateProcessor(self.options.workers)
        api = api_url.rstrip("/")
        builder = (
            Application.builder()
            .token(token)
            .base_url(f"{api}/bot")
            .base_file_url(f"{api}/file/bot")
            .concurrent_updates(self.processor)
            .defaults(
                Defaults(
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
            )
            .request(AiohttpRequest(max(8, self.options.workers)))
            .get_updates_request(AiohttpRequest(1))
        )
        self.limiter: TurnTakingRateLimiter | None = None
        if self.options.rate_limit > 0:
            self.limiter = TurnTakingRateLimiter(
                self.options.rate_limit, max_retries=self.options.max_retries
            )
            builder = builder.rate_limiter(self.limiter)
        self._token = token
        self.process = process_name()
        self.registry: ProcessRegistry | None = None
        # One small pool for the registry and the inbox: at scale every bot
        # process holds its connections on the same PostgreSQL server. Eight
        # kept, none beyond: under steady load an overflow connection is opened
        # and closed at every use (py-spy found a bot of 4 + 4 connecting).
        self._engine: AsyncEngine | None = None
        url = self.options.bot_database_url
        if url and (self.options.rate_limit > 0 or self.options.mode == "webhook"):
            pool = {} if is_sqlite(url) else {"pool_size": 8, "max_overflow": 0}
            self._engine = make_engine(url, **pool)
        self.inbox: Inbox | None = None
        self.drains: InboxDrains | None = None
        if (
            self._engine is not None
            and self.options.mode == "webhook"
            and self.options.state_key is not None
        ):
            self.inbox = Inbox(self._engine, self.options.state_key, self.process)
            self.drains = InboxDrains(
                self.inbox,
                self._apply,
                self.processor,
                give_up=self._give_up_data,
                backoff=self.options.update_backoff,
                sweep_every=self.options.inbox_sweep,
                order_wait=self.options.order_wait,
            )
        if self.options.mode == "webhook":
            builder = builder.updater(None)
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_error_handler(self._on_error)
        self._webhook: WebhookServer | None = None
        self._notifier: asyncio.Task[None] | None = None
        # (chat, message) → the button data it shows now, for messages this process showed.
        self._keyboards: OrderedDict[tuple[int, int], frozenset[str]] = OrderedDict()

    # ---- updates in -------------------------------------------------------

    async def _on_update(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        """One update from PTB's queue, tried again in its chat's turn while it fails.

        Polling, and webhook updates that do not go through the inbox: the
        pauses are taken here, holding the chat's turn, so the chat's later
        updates wait behind it (``bot.telegram.retries``).
        """
        backoff = self.options.update_backoff
        for attempt in range(1, retries.attempts(backoff) + 1):
            try:
                await self._attempt(update)
                return
            except Exception as exc:
                wait = retries.after_failure(update.update_id, attempt, exc, backoff)
            if wait is None:
                break
            await asyncio.sleep(wait)
        await self._give_up(update)

    async def _attempt(self, update: Update) -> None:
        """Read one update, let the conversation service answer, show the answer (timed).

        Raises when the update should be tried again: its handling failed
        before the chat's state was saved.
        """
        kind = update_kind(update)
        started = time.perf_counter()
        await self._handle_update(update)
        UPDATES.labels(kind=kind).inc()
        UPDATE_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)

    async def _give_up(self, update: Update) -> None:
        """After the last attempt: ask the customer to send it again; never raises."""
        UPDATES_GIVEN_UP.inc()
        incoming = read_update(update)
        if incoming is None or isinstance(incoming.event, Edited):
            # An edit expects no answer; nothing was asked of the bot.
            return
        try:
            outgoing = await self.conversations.apology(incoming.chat, incoming.event)
            await self.deliver(incoming.chat_id, outgoing)
        except Exception as exc:
            log.error("update %s: apology not shown (%s)", update.update_id, type(exc).__name__)

    async def _give_up_data(self, data: dict[str, Any]) -> None:
        """``_give_up`` for an update from the inbox."""
        await self._give_up(Update.de_json(data, self.application.bot))

    async def _handle_update(self, update: Update) -> None:
        incoming = read_update(update)
        answering: asyncio.Task[None] | None = None
        if update.callback_query is not None:
            # Always answered, stale or not, so the customer's button stops spinning;
            # while the press is handled, not before: its round trip adds no wait.
            answering = asyncio.create_task(self._answer_callback(update.callback_query.id))
        try:
            await self._handle_event(update, incoming)
        finally:
            if answering is not None:
                await answering

    async def _handle_event(self, update: Update, incoming: Incoming | None) -> None:
        if incoming is None:
            return
        outgoing = await self.conversations.handle(incoming.chat, incoming.event)
        try:
            await self._show(update, incoming, outgoing)
        except Exception as exc:
            # The chat's state is saved with this update's id: a second try would
            # be skipped as handled, so it is not tried again (``retries``).
            UPDATE_ERRORS.inc()
            log.error(
                "update %s in chat %s: answer not shown (%s)",
                update.update_id,
                incoming.chat_id,
                type(exc).__name__,
            )

    async def _show(self, update: Update, incoming: Incoming, outgoing: list[Outgoing]) -> None:
        """Show the conversation's answer: in the pressed message where it can, else anew."""
        event = incoming.event
        pressed = event.message_id if isinstance(event, Press) else None
        data = update.callback_query.data if update.callback_query is not None else None
        if pressed and not self._offers(incoming.chat_id, pressed, data):
            # A second tap on a keyboard already answered (its message shows the
            # next step now): answered in a new message, the shown one kept.
            await self.deliver(incoming.chat_id, outgoing)
            return
        # A shared contact comes from the one-time keyboard, which Telegram has hidden.
        hidden = isinstance(event, Contact)
        edited = await self.deliver(
            incoming.chat_id, outgoing, edit=pressed, keyboard_hidden=hidden
        )
        if pressed and not edited and self.options.remove_pressed_keyboard:
            # A pressed keyboard is spent: taking it away stops a second "confirm".
            await self._remove_keyboard(incoming.chat_id, pressed)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The one place failures end up: logged with the traceback and ids only."""
        UPDATE_ERRORS.inc()
        update_id = update.update_id if isinstance(update, Update) else None
        chat = (
            update.effective_chat.id
            if isinstance(update, Update) and update.effective_chat
            else None
        )
        log.error("update %s in chat %s failed", update_id, chat, exc_info=context.error)

    async def _answer_callback(self, query_id: str) -> None:
        try:
            await self.application.bot.answer_callback_query(query_id)
        except TelegramError as exc:
            # Too old (the bot was down longer than Telegram waits) or Telegram
            # unreachable: the spinner stops by itself; the press is still handled.
            log.info("callback query %s not answered: %s", query_id, exc.message)

    async def _remove_keyboard(self, chat_id: int, message_id: int) -> None:
        try:
            await self.application.bot.edit_message_reply_markup(
                chat_id, message_id, reply_markup=None
            )
        except TelegramError as exc:
            # Already without buttons, gone, or Telegram unreachable: cosmetic either way.
            log.debug(
                "keyboard of message %s in chat %s kept: %s", message_id, chat_id, exc.message
            )

    # ---- replies out ------------------------------------------------------

    async def deliver(
        self,
        chat_id: int,
        outgoing: list[Outgoing],
        *,
        edit: int | None = None,
        keyboard_hidden: bool = False,
    ) -> bool:
        """Carry out ``outgoing`` in ``chat_id`` in order; a failed send raises.

        With ``edit`` (the message whose button was pressed), the answer's first
        message replaces that message's text and keyboard in place: one call
        where a new message and taking the old keyboard away would be two, and
        the spent buttons are gone with it. Only an inline keyboard (or none)
        can be edited in; True when the edit happened. ``keyboard_hidden``:
        the customer just used the one-time share-contact keyboard (``render``).
        """
        bot = self.application.bot
        edited = False
        for item in compose(outgoing):
            if isinstance(item, Delete):
                try:
                    await bot.delete_message(chat_id, item.message_id)
                except (BadRequest, Forbidden) as exc:
                    # Too old or already gone: the customer's copy is what mattered.
                    log.warning(
                        "message %s in chat %s not deleted (%s): %s",
                        item.message_id,
                        chat_id,
                        item.reason,
                        exc.message,
                    )
                continue
            if isinstance(item, Document):
                await self._send_document(chat_id, item)
                continue
            if isinstance(item, Reply):
                for part in render(item, keyboard_hidden=keyboard_hidden):
                    if edit is not None and not edited and _editable(part):
                        edited = await self._edit(chat_id, edit, part)
                        if edited:
                            self._shown(chat_id, edit, part)
                            continue
                        edit = None
                    self._shown(chat_id, await self._send(chat_id, part), part)
        return edited

    def _shown(self, chat_id: int, message_id: int | None, part: Send) -> None:
        """Remember which buttons ``message_id`` shows now (a bounded memory)."""
        if message_id is None:
            return
        data: frozenset[str] = frozenset()
        if isinstance(part.markup, InlineKeyboardMarkup):
            data = frozenset(
                str(b.callback_data) for row in part.markup.inline_keyboard for b in row
            )
        key = (chat_id, message_id)
        self._keyboards[key] = data
        self._keyboards.move_to_end(key)
        while len(self._keyboards) > REMEMBERED_KEYBOARDS:
            self._keyboards.popitem(last=False)

    def _offers(self, chat_id: int, message_id: int, data: str | None) -> bool:
        """Whether the pressed message still shows the pressed button (unknown: yes)."""
        shown = self._keyboards.get((chat_id, message_id))
        return shown is None or data in shown

    async def _edit(self, chat_id: int, message_id: int, part: Send) -> bool:
        """editMessageText in place; False when Telegram will not (too old, gone): send instead."""
        try:
            await self.application.bot.edit_message_text(
                part.html, chat_id, message_id, reply_markup=part.markup
            )
        except BadRequest as exc:
            # "Not modified" (the same text and buttons again, a resent code say)
            # would leave the press without a visible answer: sent anew instead.
            log.info("message %s in chat %s not edited: %s", message_id, chat_id, exc.message)
            return False
        except NetworkError as exc:
            log.info(
                "message %s in chat %s not edited (%s)", message_id, chat_id, type(exc).__name__
            )
            return False
        return True

    async def _send(self, chat_id: int, part: Send) -> int:
        """One sendMessage, retried while Telegram is unreachable or answers 5xx; its message id.

        A retry after a lost answer can show a message twice; that beats losing
        an answer the customer's conversation has already moved past.
        """
        bot = self.application.bot
        return await self._retrying(
            chat_id, lambda: bot.send_message(chat_id, part.html, reply_markup=part.markup)
        )

    async def _send_document(self, chat_id: int, document: Document) -> int:
        """One sendDocument (multipart upload from memory), retried as ``_send``; its message id."""
        bot = self.application.bot
        return await self._retrying(
            chat_id,
            lambda: bot.send_document(
                chat_id, InputFile(document.content, filename=document.filename)
            ),
        )

    async def _retrying(self, chat_id: int, call: Callable[[], Awaitable[Message]]) -> int:
        delay = 0.5
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                message = await call()
                return int(message.message_id)
            except BadRequest:
                raise
            except NetworkError as exc:
                if attempt == SEND_ATTEMPTS:
                    raise
                log.warning(
                    "send to chat %s failed (%s); retry %d", chat_id, type(exc).__name__, attempt
                )
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def set_commands(self) -> None:
        """The command menu in each language Telegram can tell apart."""
        for language_code, locale in MENU_LOCALES:
            commands = [
                BotCommand(name, label) for name, label in self.conversations.commands(locale)
            ]
            try:
                await self.application.bot.set_my_commands(
                    commands, language_code=language_code or None
                )
            except TelegramError as exc:
                log.error("command menu for %r not set: %s", language_code or "default", exc)

    async def bot_api_ready(self) -> bool:
        """Whether the Bot API answers ``getMe`` now (the readiness probe asks, ``bot.metrics``)."""
        try:
            await self.application.bot.get_me()
        except (TelegramError, RuntimeError):
            return False
        return True

    # ---- life cycle -------------------------------------------------------

    async def _initialize(self) -> None:
        """getMe until Telegram answers: a network blip at start must not end the process."""
        delay = 1.0
        while True:
            try:
                await self.application.initialize()
                return
            except NetworkError as exc:
                log.warning("Bot API unreachable at start (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def start(self) -> None:
        """Check the token, set the menus, start taking updates and notifications."""
        if self._engine is not None and (self.limiter is not None or self.drains is not None):
            # This process's share of the token's limit, and whether other bots
            # may store a chat's updates beside it, while it runs.
            self.registry = ProcessRegistry(self._engine, self._token, self.process)
            await self.registry.start(self._live, every=self.options.registry_heartbeat)
        await self._initialize()
        await self.set_commands()
        await self.application.start()
        if self.options.mode == "webhook":
            await self._start_webhook()
        else:
            updater = self.application.updater
            assert updater is not None
            await updater.start_polling(
                timeout=timedelta(seconds=self.options.poll_timeout),
                allowed_updates=list(ALLOWED_UPDATES),
            )
        if self.notifications is not None:
            self._notifier = asyncio.create_task(
                deliver_notifications(
                    self.notifications,
                    self.conversations,
                    self.deliver,
                    self.processor,
                    wait=self.options.notifications_wait,
                    batch_size=self._notices_at_once,
                ),
                name="telegram-notifications",
            )
        log.info("Telegram channel started in %s mode", self.options.mode)

    def _live(self, processes: int) -> None:
        """The token's live bot processes, as the registry counts them at each heartbeat."""
        if self.limiter is not None:
            self.limiter.set_rate(share(self.options.rate_limit, processes))
        if self.drains is not None:
            self.drains.peers(processes - 1)

    def _notices_at_once(self) -> int:
        """Notifications to take per poll: about a second of this process's share of the limit.

        A process takes the notifications it polls out of the others' reach
        until it shows them: with the limit on, one bot taking a backlog of
        100 showed them at its own share of the token's rate while the other
        process's share went unused (bench/bot.py, "2 bots 30/s": the last 5 s
        at 14 calls/s). Without a limit, 100.
        """
        if self.limiter is None:
            return BATCH
        return max(1, round(self.limiter.rate))

    async def _start_webhook(self) -> None:
        opts = self.options
        if not opts.webhook_url or not opts.webhook_secret:
            raise ValueError("webhook mode needs DATADESK_WEBHOOK_URL and DATADESK_WEBHOOK_SECRET")
        self._webhook = WebhookServer(
            self.application,
            url=opts.webhook_url,
            secret=opts.webhook_secret,
            host=opts.webhook_host,
            port=opts.webhook_port,
            accept=self._store if self.drains is not None else None,
        )
        await self._webhook.start()
        if self.drains is not None:
            self.drains.start()
        await self.application.bot.set_webhook(
            opts.webhook_url,
            secret_token=opts.webhook_secret,
            allowed_updates=list(ALLOWED_UPDATES),
            max_connections=min(100, max(1, opts.workers)),
        )

    async def _store(self, update: Update, data: dict[str, Any]) -> None:
        """A webhook update: into the inbox when it belongs to a chat, else straight to the queue."""
        assert self.drains is not None
        chat = chat_key(update)
        if chat is None:
            # Nothing to keep in order with.
            await self.application.update_queue.put(update)
            return
        await self.drains.store(update.update_id, chat, data)

    async def _apply(self, data: dict[str, Any]) -> None:
        """One attempt at an update from the inbox; raises when it should be tried again.

        Straight to the handler rather than through ``Application.process_update``,
        which hands a failure to the error handler and returns as if it succeeded.
        """
        await self._attempt(Update.de_json(data, self.application.bot))

    async def stop(self) -> None:
        """Stop taking updates, finish the ones running, release connections."""
        if self._notifier is not None:
            self._notifier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notifier
            self._notifier = None
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self._webhook is not None:
            await self._webhook.stop()
            self._webhook = None
        if self.drains is not None:
            # Updates taken in are applied before the process goes (the inbox keeps the rest).
            await self.drains.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        if self.registry is not None:
            await self.registry.close()
            self.registry = None
        if self.inbox is not None:
            await self.inbox.close()
        if self._engine is not None:
            await self._engine.dispose()
        log.info("Telegram channel stopped")

    async def run(self) -> None:
        """Serve until cancelled."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.stop())

    async def __aenter__(self) -> TelegramChannel:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
