"""A Telegram Bot API stand-in: an aiohttp server on loopback that speaks the Bot API.

The bot under test is pointed at ``api.url`` (``DATADESK_TELEGRAM_API_URL``) and
calls ``{url}/bot{token}/{method}`` exactly as it would call Telegram: form or
JSON parameters in, ``{"ok": true, "result": …}`` or Telegram's error shape
``{"ok": false, "error_code": 400, "description": "…"}`` out. Updates are served
by ``getUpdates`` (offset, long-poll timeout) or, once ``setWebhook`` was
called, POSTed to the webhook URL with the ``X-Telegram-Bot-Api-Secret-Token``
header, one at a time and in order. Only the kinds in the bot's
``allowed_updates`` are kept, as Telegram does; ``redeliver`` hands an update
out again, as Telegram does when the bot died before confirming it.

Tests play the customer through ``send_text``, ``edit_text``, ``press``,
``share_contact`` and ``send_sticker``, and look at what the bot did through ``messages(chat)``,
``deleted``, ``commands``, ``answered_callbacks`` and ``wait_for_message``; files the
bot uploaded with ``sendDocument`` (multipart) through ``documents(chat)`` and
``wait_for_documents``.
Sent texts are checked the way Telegram checks them: HTML must parse, texts
are at most 4,096 characters, callback data at most 64 bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import itertools
import json
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import aiohttp
from aiohttp import web

from fakes.loopback import serve

BOT_ID = 7_000_000_001
BOT_USERNAME = "datadesk_test_bot"
TOKEN = "7000000001:TEST-TOKEN-for-the-stand-in"
HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}
    | {"tg-spoiler", "span", "blockquote", "tg-emoji"}
)
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
# What Telegram counts against a token's ~30 messages a second: everything
# that puts or changes a message in a chat (answering a button press does not).
LIMITED_METHODS = frozenset(
    {"sendMessage", "editMessageText", "editMessageReplyMarkup", "deleteMessage"}
    | {"sendDocument", "sendPhoto", "sendChatAction", "copyMessage", "forwardMessage"}
)
# Parameters PTB sends as JSON inside form fields.
JSON_FIELDS = frozenset({"reply_markup", "commands", "allowed_updates", "scope", "entities"})


class ApiFailure(Exception):
    """An error answer in Telegram's shape."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


@dataclass
class SentMessage:
    """A message the bot sent, as the customer's app would show it."""

    message_id: int
    chat_id: int
    html: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    date: int
    edits: int = 0

    @property
    def text(self) -> str:
        """What the customer reads: HTML parsed, entities decoded."""
        return visible_text(self.html) if self.parse_mode == "HTML" else self.html

    @property
    def buttons(self) -> list[list[tuple[str, str]]]:
        """Inline keyboard rows as (label, callback_data)."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [[(b["text"], b.get("callback_data", "")) for b in row] for row in rows]

    @property
    def button_data(self) -> list[str]:
        """Every inline button's callback data, row by row."""
        return [data for row in self.buttons for _, data in row]

    @property
    def contact_button(self) -> str | None:
        """The label of a share-contact reply-keyboard button, if the message shows one."""
        for row in (self.reply_markup or {}).get("keyboard") or []:
            for button in row:
                if isinstance(button, dict) and button.get("request_contact"):
                    return str(button["text"])
        return None

    @property
    def removes_keyboard(self) -> bool:
        return bool((self.reply_markup or {}).get("remove_keyboard"))


class _HtmlChecker(HTMLParser):
    """Parses a message the way Telegram does; collects the visible text or fails."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            raise ApiFailure(
                400, f"Bad Request: can't parse entities: unsupported start tag {tag!r}"
            )
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise ApiFailure(400, f"Bad Request: can't parse entities: unexpected end tag {tag!r}")
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


_BARE_LT = re.compile(r"<(?!/?[a-zA-Z])")
_BARE_AMP = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")


def visible_text(markup: str) -> str:
    """The text Telegram shows for HTML ``markup``; ApiFailure when it would not parse.

    As Telegram's docs say, every ``<``, ``>`` and ``&`` outside a tag or entity
    must be escaped; a bare ``<`` or ``&`` is refused here as it is there.
    """
    if _BARE_LT.search(markup) or _BARE_AMP.search(markup):
        raise ApiFailure(400, "Bad Request: can't parse entities: unescaped '<' or '&'")
    checker = _HtmlChecker()
    checker.feed(markup)
    checker.close()
    if checker.open:
        raise ApiFailure(400, "Bad Request: can't parse entities: unclosed tag")
    return "".join(checker.parts)


@dataclass(frozen=True)
class SentDocument:
    """A file the bot sent with ``sendDocument``, as the customer's app would save it."""

    message_id: int
    chat_id: int
    filename: str
    content_type: str
    content: bytes = field(repr=False)
    caption: str = ""


@dataclass
class _Chat:
    chat_id: int
    language_code: str | None = "en"
    next_message_id: int = 1
    sent: list[SentMessage] = field(default_factory=list)
    customer_messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: list[int] = field(default_factory=list)
    # Every time a message appeared or changed before the customer's eyes, in
    # order: a send, and an edit in place (which Telegram shows where it was).
    shown: list[SentMessage] = field(default_factory=list)
    mark: int = 0  # index into ``shown`` of the first reply to the customer's last action
    documents: list[SentDocument] = field(default_factory=list)


class BotApiStandIn:
    """The Bot API for one bot; start with ``async with BotApiStandIn() as api``."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.url = ""
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.call_times: list[float] = []  # when each of ``calls`` arrived (monotonic)
        self.commands: dict[str, list[tuple[str, str]]] = {}
        self.answered_callbacks: list[str] = []
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhook_deliveries: int = 0
        self.confirmed_offset = 0  # the highest getUpdates offset: every update below it is done
        # The update kinds the bot asked for (getUpdates/setWebhook); None: every kind.
        self.allowed_updates: list[str] | None = None
        self._chats: dict[int, _Chat] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(100_001)
        self._last_update_id = 0
        self._withhold_next = False  # see withhold_next
        self._queued: dict[int, dict[str, Any]] = {}  # every update ever queued, by id
        self._callback_ids = itertools.count(1)
        self._open_callbacks: set[str] = set()
        self._changed = asyncio.Condition()
        self._failures: dict[str, list[ApiFailure]] = defaultdict(list)
        self._delay: dict[str, float] = {}
        self._runner: web.AppRunner | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.on_send: Callable[[SentMessage], Awaitable[None]] | None = None
        # A load balancer in front of several bots (``balance``); None: the webhook URL.
        self._targets: list[str] | None = None
        self.delivered_to: list[tuple[int, str]] = []  # (update_id, bot URL) when balanced
        self._push_concurrency = 1
        self._closing = False

    # ---- life cycle -------------------------------------------------------

    async def __aenter__(self) -> BotApiStandIn:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        self._runner, self.url = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # A long poll of a bot process already gone would hold the server's
        # shutdown for the rest of its timeout (10 s a test): end them now.
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- what tests inject ------------------------------------------------

    def fail_next(
        self,
        method: str,
        code: int = 400,
        description: str = "Bad Request",
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error (429: give ``retry_after``)."""
        for _ in range(times):
            self._failures[method].append(ApiFailure(code, description, retry_after))

    def balance(self, urls: list[str], *, concurrency: int = 32) -> None:
        """Push webhook updates to ``urls`` in turn, up to ``concurrency`` at once.

        As Telegram does with ``max_connections`` towards a load balancer that
        spreads them over several bot processes. Call before the bots set the webhook.
        """
        self._targets = list(urls)
        self._push_concurrency = concurrency

    def slow_down(self, method: str, seconds: float) -> None:
        """Make every call of ``method`` take ``seconds`` longer (to show concurrency)."""
        self._delay[method] = seconds

    # ---- the customer's side ----------------------------------------------

    def _chat(self, chat_id: int, language_code: str | None = None) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(chat_id, language_code or "en")
        elif language_code is not None:
            chat.language_code = language_code
        return chat

    def _user(self, chat: _Chat) -> dict[str, Any]:
        user: dict[str, Any] = {"id": chat.chat_id, "is_bot": False, "first_name": "Customer"}
        if chat.language_code:
            user["language_code"] = chat.language_code
        return user

    def _customer_message(self, chat: _Chat, **content: Any) -> dict[str, Any]:
        message_id = chat.next_message_id
        chat.next_message_id += 1
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat.chat_id, "type": "private", "first_name": "Customer"},
            "from": self._user(chat),
            **content,
        }
        chat.customer_messages[message_id] = message
        chat.mark = len(chat.shown)
        return message

    @property
    def last_update_id(self) -> int:
        """The id of the newest update handed to the bot or waiting for it."""
        return self._last_update_id

    def withhold_next(self) -> None:
        """Keep the customer's next update back until ``redeliver``: Telegram delivering it late.

        Telegram may deliver a chat's updates out of order (its ``update_id``
        is there to restore the order, the Bot API says).
        """
        self._withhold_next = True

    async def _queue_update(self, update: dict[str, Any]) -> None:
        update["update_id"] = self._last_update_id = next(self._update_ids)
        self._queued[update["update_id"]] = update
        if self._withhold_next:
            self._withhold_next = False
            return
        if self.allowed_updates and not any(kind in update for kind in self.allowed_updates):
            # Telegram keeps no update of a kind the bot did not ask for.
            return
        async with self._changed:
            self._updates.append(update)
            self._changed.notify_all()

    async def send_text(self, chat: int, text: str, *, language_code: str | None = None) -> int:
        """The customer types ``text``; returns the message id."""
        c = self._chat(chat, language_code)
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        message = self._customer_message(c, **content)
        await self._queue_update({"message": message})
        return int(message["message_id"])

    async def redeliver(self, update_id: int) -> None:
        """Hand update ``update_id`` out again, with the same id."""
        async with self._changed:
            self._updates.append(self._queued[update_id])
            self._updates.sort(key=lambda u: int(u["update_id"]))
            self._changed.notify_all()

    async def edit_text(self, chat: int, message_id: int, text: str) -> None:
        """The customer edits their message ``message_id`` to read ``text``."""
        c = self._chat(chat)
        original = c.customer_messages.get(message_id)
        assert original is not None, f"no customer message {message_id} in chat {chat}"
        edited = {**original, "text": text, "edit_date": int(time.time())}
        c.customer_messages[message_id] = edited
        c.mark = len(c.shown)
        await self._queue_update({"edited_message": edited})

    async def send_group_text(self, group: int, user: int, text: str) -> None:
        """Someone types ``text`` in a group the bot was added to."""
        c = self._chat(group)
        message_id = c.next_message_id
        c.next_message_id += 1
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": group, "type": "group", "title": "Family"},
            "from": {"id": user, "is_bot": False, "first_name": "Member"},
            "text": text,
        }
        await self._queue_update({"message": message})

    async def share_contact(
        self, chat: int, phone: str, *, own: bool = True, language_code: str | None = None
    ) -> int:
        """The customer shares a contact: their own (``own``) or someone else's."""
        c = self._chat(chat, language_code)
        contact: dict[str, Any] = {"phone_number": phone, "first_name": "Customer"}
        contact["user_id"] = chat if own else chat + 999_999
        message = self._customer_message(c, contact=contact)
        await self._queue_update({"message": message})
        return int(message["message_id"])

    async def send_sticker(self, chat: int, *, language_code: str | None = None) -> int:
        """The customer sends a sticker."""
        c = self._chat(chat, language_code)
        sticker = {
            "file_id": "CAACAgIAAxkBAAIB",
            "file_unique_id": "AgADAgAD",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
        message = self._customer_message(c, sticker=sticker)
        await self._queue_update({"message": message})
        return int(message["message_id"])

    async def press(
        self, chat: int, message_id: int, data: str, *, language_code: str | None = None
    ) -> str:
        """The customer presses a button carrying ``data`` under message ``message_id``."""
        c = self._chat(chat, language_code)
        shown = next((m for m in c.sent if m.message_id == message_id), None)
        query_id = str(next(self._callback_ids))
        self._open_callbacks.add(query_id)
        query: dict[str, Any] = {
            "id": query_id,
            "from": self._user(c),
            "chat_instance": f"ci{chat}",
            "data": data,
        }
        chat_json = {"id": chat, "type": "private", "first_name": "Customer"}
        if shown is not None:
            query["message"] = {
                "message_id": shown.message_id,
                "date": shown.date,
                "chat": chat_json,
                "from": self._bot_user(),
                "text": shown.text,
            }
        else:
            # Telegram's InaccessibleMessage: a message too old (or unknown) to include.
            query["message"] = {"message_id": message_id, "date": 0, "chat": chat_json}
        c.mark = len(c.shown)
        await self._queue_update({"callback_query": query})
        return query_id

    async def press_button(self, chat: int, data: str) -> str:
        """Press the newest button carrying ``data`` (exact, or after a ``prefix:``)."""
        for message in reversed(self.messages(chat)):
            for candidate in message.button_data:
                if candidate == data or candidate.partition(":")[2] == data:
                    return await self.press(chat, message.message_id, candidate)
        raise AssertionError(f"no button {data!r} in chat {chat}: {self.transcript(chat)}")

    # ---- what tests inspect -----------------------------------------------

    def messages(self, chat: int) -> list[SentMessage]:
        """Every message the bot sent to ``chat``, oldest first."""
        return list(self._chats[chat].sent) if chat in self._chats else []

    def deleted(self, chat: int) -> list[int]:
        """Ids of messages the bot deleted in ``chat``."""
        return list(self._chats[chat].deleted) if chat in self._chats else []

    def transcript(self, chat: int) -> list[str]:
        """The bot's texts in ``chat``, for assertion messages."""
        return [m.text for m in self.messages(chat)]

    def since_last_action(self, chat: int) -> list[SentMessage]:
        """The bot's messages sent or edited after the customer's last message or press."""
        c = self._chats.get(chat)
        if c is None:
            return []
        seen: dict[int, SentMessage] = {}
        for message in c.shown[c.mark :]:
            seen.setdefault(message.message_id, message)
        return list(seen.values())

    def limited_calls(self, chat: int | None = None) -> int:
        """Calls Telegram counts against the flood limit (in ``chat``, or all)."""
        return sum(
            1
            for method, params in self.calls
            if method in LIMITED_METHODS
            and (chat is None or str(params.get("chat_id")) == str(chat))
        )

    async def wait_for_message(
        self,
        chat: int,
        contains: str | None = None,
        *,
        timeout: float = 15.0,  # noqa: ASYNC109 - the agreed test API names it
        since: int | None = None,
        buttons: str | None = None,
    ) -> SentMessage:
        """A copy of the first bot message sent or edited after the customer's last action (or
        sent after index ``since`` of ``messages``) whose text contains ``contains`` (any
        text if None) and, if given, that shows a button with data ``buttons``;
        AssertionError with the transcript on timeout."""

        def find() -> SentMessage | None:
            c = self._chats.get(chat)
            if c is None:
                return None
            candidates = c.shown[c.mark :] if since is None else c.sent[since:]
            for message in candidates:
                if contains is not None and contains not in message.text:
                    continue
                if buttons is not None and not any(
                    d == buttons or d.partition(":")[2] == buttons for d in message.button_data
                ):
                    continue
                return message
            return None

        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while (found := find()) is None:
                        await self._changed.wait()
                    # As it read then: a later edit in place does not rewrite what was seen.
                    return dataclasses.replace(found)
        except TimeoutError:
            raise AssertionError(
                f"chat {chat}: no message containing {contains!r} within {timeout}s; "
                f"the bot said {self.transcript(chat)!r}"
            ) from None

    async def wait_for_deleted(self, chat: int, message_id: int, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Until the bot deleted ``message_id`` in ``chat``."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while message_id not in self.deleted(chat):
                        await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"chat {chat}: message {message_id} was not deleted") from None

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Until ``predicate()`` holds after some call of the bot's."""
        async with asyncio.timeout(timeout), self._changed:
            while not predicate():
                await self._changed.wait()

    # ---- the bot's side: the Bot API --------------------------------------

    def _bot_user(self) -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "datadesk", "username": BOT_USERNAME}

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            body = await request.json()
            return dict(body) if isinstance(body, dict) else {}
        form = await request.post()
        params: dict[str, Any] = {**request.query}
        files: dict[str, web.FileField] = {}
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = value
                continue
            if not isinstance(value, str):
                continue
            params[key] = json.loads(value) if key in JSON_FIELDS else value
        if files:
            params["_files"] = files
        return params

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        try:
            params = await self._params(request)
        except (ValueError, json.JSONDecodeError):
            return web.json_response(
                ApiFailure(400, "Bad Request: invalid parameters").body(), status=400
            )
        self.calls.append((method, params))
        self.call_times.append(time.monotonic())
        try:
            if delay := self._delay.get(method):
                await asyncio.sleep(delay)
            if self._failures.get(method):
                raise self._failures[method].pop(0)
            handler = getattr(self, f"_m_{method.lower()}", None)
            if handler is None:
                raise ApiFailure(404, "Not Found: method not found")
            result = await handler(params)
        except ApiFailure as failure:
            return web.json_response(failure.body(), status=failure.code)
        return web.json_response({"ok": True, "result": result})

    async def _changed_now(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _m_getme(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._bot_user(),
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_getupdates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiFailure(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(p.get("offset") or 0)
        limit = int(p.get("limit") or 100)
        if p.get("allowed_updates") is not None:
            self.allowed_updates = list(p["allowed_updates"])
        timeout = float(p.get("timeout") or 0)
        async with self._changed:
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                self.confirmed_offset = max(self.confirmed_offset, offset)
                self._changed.notify_all()
            if not self._updates and timeout > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        while not self._updates and not self._closing:
                            await self._changed.wait()
            return list(self._updates[:limit])

    async def _m_setwebhook(self, p: dict[str, Any]) -> bool:
        self.webhook_url = str(p["url"])
        self.webhook_secret = p.get("secret_token")
        if p.get("allowed_updates") is not None:
            self.allowed_updates = list(p["allowed_updates"])
        if p.get("drop_pending_updates") in (True, "true", "True"):
            self._updates.clear()
        if self._pusher is None:
            self._pusher = asyncio.create_task(self._push_updates())
        return True

    async def _m_deletewebhook(self, p: dict[str, Any]) -> bool:
        self.webhook_url = None
        if p.get("drop_pending_updates") in (True, "true", "True"):
            self._updates.clear()
        return True

    async def _m_getwebhookinfo(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _push_updates(self) -> None:
        """Deliver queued updates to the webhook, one at a time, retrying until accepted."""
        self._http = aiohttp.ClientSession()
        if self._targets:
            targets = itertools.cycle(self._targets)
            await asyncio.gather(
                *(self._push_balanced(targets) for _ in range(self._push_concurrency))
            )
        while True:
            async with self._changed:
                while not (self.webhook_url and self._updates):
                    await self._changed.wait()
                update, url = self._updates[0], self.webhook_url
            headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret or ""}
            try:
                async with self._http.post(url, json=update, headers=headers) as response:
                    accepted = response.status == 200
            except aiohttp.ClientError:
                accepted = False
            if accepted:
                self.webhook_deliveries += 1
                async with self._changed:
                    self._updates.remove(update)
                    self._changed.notify_all()
            else:
                await asyncio.sleep(0.05)

    async def _push_balanced(self, targets: Iterator[str]) -> None:
        """One of ``concurrency`` connections: take the oldest update, POST it to the next bot."""
        assert self._http is not None
        while True:
            async with self._changed:
                while not (self.webhook_url and self._updates):
                    await self._changed.wait()
                update = self._updates.pop(0)
            headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret or ""}
            url = next(targets)
            try:
                async with self._http.post(url, json=update, headers=headers) as answer:
                    accepted = answer.status == 200
            except aiohttp.ClientError:
                accepted = False
            async with self._changed:
                if accepted:
                    self.webhook_deliveries += 1
                    self.delivered_to.append((int(update["update_id"]), url))
                else:
                    self._updates.insert(0, update)
                self._changed.notify_all()
            if not accepted:
                await asyncio.sleep(0.05)

    def _check_markup(self, markup: Any) -> dict[str, Any] | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiFailure(400, "Bad Request: can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard") or []:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                    raise ApiFailure(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup

    def _known_chat(self, p: dict[str, Any]) -> _Chat:
        try:
            chat_id = int(p["chat_id"])
        except (KeyError, ValueError):
            raise ApiFailure(400, "Bad Request: chat not found") from None
        return self._chat(chat_id)

    def _message_json(self, m: SentMessage) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message_id": m.message_id,
            "date": m.date,
            "chat": {"id": m.chat_id, "type": "private", "first_name": "Customer"},
            "from": self._bot_user(),
            "text": m.text,
        }
        if m.reply_markup and "inline_keyboard" in m.reply_markup:
            out["reply_markup"] = m.reply_markup
        return out

    def _check_text(self, text: str, parse_mode: str | None) -> None:
        visible = visible_text(text) if parse_mode == "HTML" else text
        if not visible.strip():
            raise ApiFailure(400, "Bad Request: message text is empty")
        if len(visible) > MAX_TEXT:
            raise ApiFailure(400, "Bad Request: message is too long")

    async def _m_sendmessage(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._known_chat(p)
        text = str(p.get("text") or "")
        parse_mode = p.get("parse_mode")
        self._check_text(text, parse_mode)
        markup = self._check_markup(p.get("reply_markup"))
        message = SentMessage(
            message_id=chat.next_message_id,
            chat_id=chat.chat_id,
            html=text,
            parse_mode=parse_mode,
            reply_markup=markup,
            date=int(time.time()),
        )
        chat.next_message_id += 1
        if self.on_send is not None:
            await self.on_send(message)
        async with self._changed:
            chat.sent.append(message)
            chat.shown.append(message)
            self._changed.notify_all()
        return self._message_json(message)

    async def _m_senddocument(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._known_chat(p)
        files: dict[str, web.FileField] = p.get("_files") or {}
        named = str(p.get("document") or "")
        # Uploaded as the ``document`` form field, or named by ``attach://<field>``.
        upload = files.get(named.removeprefix("attach://")) or files.get("document")
        if upload is None:
            raise ApiFailure(400, "Bad Request: there is no document in the request")
        content = upload.file.read()
        if not content:
            raise ApiFailure(400, "Bad Request: file must be non-empty")
        document = SentDocument(
            message_id=chat.next_message_id,
            chat_id=chat.chat_id,
            filename=upload.filename,
            content_type=upload.content_type,
            content=content,
            caption=str(p.get("caption") or ""),
        )
        chat.next_message_id += 1
        async with self._changed:
            chat.documents.append(document)
            self._changed.notify_all()
        return {
            "message_id": document.message_id,
            "date": int(time.time()),
            "chat": {"id": chat.chat_id, "type": "private"},
            "from": self._bot_user(),
            "document": {
                "file_id": f"doc-{chat.chat_id}-{document.message_id}",
                "file_unique_id": f"u{chat.chat_id}x{document.message_id}",
                "file_name": document.filename,
                "file_size": len(content),
            },
        }

    def documents(self, chat: int) -> list[SentDocument]:
        """Every file the bot sent into ``chat``, in order."""
        found = self._chats.get(chat)
        return list(found.documents) if found else []

    async def wait_for_documents(
        self,
        chat: int,
        count: int,
        timeout: float = 20.0,  # noqa: ASYNC109 - as wait_for_message
    ) -> list[SentDocument]:
        """Once ``chat`` received at least ``count`` files: all of them."""
        try:
            await self.wait_until(lambda: len(self.documents(chat)) >= count, timeout)
        except TimeoutError:
            raise AssertionError(
                f"chat {chat}: {len(self.documents(chat))} documents within {timeout}s; "
                f"the bot said {self.transcript(chat)!r}"
            ) from None
        return self.documents(chat)

    def _find_sent(self, p: dict[str, Any]) -> SentMessage:
        chat = self._known_chat(p)
        message_id = int(p.get("message_id") or 0)
        for message in chat.sent:
            if message.message_id == message_id and message_id not in chat.deleted:
                return message
        raise ApiFailure(400, "Bad Request: message to edit not found")

    async def _m_editmessagetext(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self._find_sent(p)
        text = str(p.get("text") or "")
        self._check_text(text, p.get("parse_mode"))
        markup = self._check_markup(p.get("reply_markup"))
        if text == message.html and markup == message.reply_markup:
            raise ApiFailure(400, "Bad Request: message is not modified")
        message.html, message.parse_mode, message.reply_markup = text, p.get("parse_mode"), markup
        message.edits += 1
        if self.on_send is not None:
            await self.on_send(message)
        async with self._changed:
            self._chat(message.chat_id).shown.append(message)
            self._changed.notify_all()
        return self._message_json(message)

    async def _m_editmessagereplymarkup(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self._find_sent(p)
        markup = self._check_markup(p.get("reply_markup"))
        if markup == message.reply_markup or (not markup and not message.buttons):
            raise ApiFailure(400, "Bad Request: message is not modified")
        message.reply_markup = markup
        message.edits += 1
        await self._changed_now()
        return self._message_json(message)

    async def _m_answercallbackquery(self, p: dict[str, Any]) -> bool:
        query_id = str(p.get("callback_query_id"))
        if query_id not in self._open_callbacks:
            raise ApiFailure(400, "Bad Request: query is too old and response timeout expired")
        self._open_callbacks.discard(query_id)
        self.answered_callbacks.append(query_id)
        await self._changed_now()
        return True

    async def _m_deletemessage(self, p: dict[str, Any]) -> bool:
        chat = self._known_chat(p)
        message_id = int(p.get("message_id") or 0)
        exists = message_id in chat.customer_messages or any(
            m.message_id == message_id for m in chat.sent
        )
        if not exists or message_id in chat.deleted:
            raise ApiFailure(400, "Bad Request: message to delete not found")
        async with self._changed:
            chat.deleted.append(message_id)
            self._changed.notify_all()
        return True

    async def _m_setmycommands(self, p: dict[str, Any]) -> bool:
        commands = p.get("commands") or []
        language = str(p.get("language_code") or "")
        self.commands[language] = [(c["command"], c["description"]) for c in commands]
        await self._changed_now()
        return True

    async def _m_getmycommands(self, p: dict[str, Any]) -> list[dict[str, str]]:
        language = str(p.get("language_code") or "")
        return [{"command": c, "description": d} for c, d in self.commands.get(language, [])]

    async def _m_deletemycommands(self, p: dict[str, Any]) -> bool:
        self.commands.pop(str(p.get("language_code") or ""), None)
        return True

    async def _m_sendchataction(self, p: dict[str, Any]) -> bool:
        self._known_chat(p)
        return True

    async def _m_close(self, p: dict[str, Any]) -> bool:
        return True

    async def _m_logout(self, p: dict[str, Any]) -> bool:
        return True


@contextlib.asynccontextmanager
async def running_stand_in(token: str = TOKEN) -> AsyncIterator[BotApiStandIn]:
    """A started stand-in, stopped on exit."""
    async with BotApiStandIn(token) as api:
        yield api


def escape(text: str) -> str:
    """How a test writes expected HTML for a plain text."""
    return html.escape(text, quote=False)
