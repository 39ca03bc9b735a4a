"""Whole Telegram updates, whatever they hold, through the channel and the conversation.

Hypothesis draws short sequences of updates for a fresh private chat: text
(arbitrary, with lone surrogates, NUL, very long), ``/start`` and commands,
language codes from CLDR and arbitrary, shared contacts (own, someone
else's, malformed), the code the SMS gateway received, button presses whose
callback data is valid (a button the bot shows now), stale (one it showed
earlier) or arbitrary, edited messages, and updates the bot ignores on
purpose (groups, service messages). Each update is fed to the real PTB
application in this process (``Application.process_update``), whose handler
is the real channel, conversation, engine, dialogs, catalogs and bot
database; the backend is the real one at its HTTP edge on loopback, with its
SMS gateway; only Telegram's servers are the stand-in.

What must hold for every update: nothing reaches an error handler or logs an
error (no unhandled exception, no engine restart, no failed action), the
backend never answers 5xx, and an update the dialogs read is answered in its
chat (a message, a deletion or the button's spinner stopped) unless the chat
is waiting for a person, where silence is the promise.

One backend, bot and database serve every example; each example talks in a
chat of its own, so nothing needs resetting. ``CI=true`` selects the
``fuzz-ci`` profile (10,000 examples); elsewhere ``fuzz-dev`` runs a few
hundred. ``DATADESK_FUZZ_EXAMPLES`` overrides both (for measuring).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import babel.localedata
import pytest
from fakes.botapi import TOKEN
from fakes.botapi_inprocess import InProcessBotApi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Update

from bot.backend_client import BackendClient
from bot.conversation import Conversations
from bot.telegram.app import ChannelOptions, TelegramChannel
from bot.telegram.events import COMMANDS, read_update
from common.vocabulary.locales import SHIPPED_LOCALES
from e2e.conftest import CUSTOMERS, Stack
from e2e.steps import AGENT_WAITING

PHONES_ON_FILE = [c["phones"][0]["number"] for c in CUSTOMERS["customers"]]

settings.register_profile(
    "fuzz-ci",
    max_examples=10_000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz-dev",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILE = settings.get_profile("fuzz-ci" if os.environ.get("CI") == "true" else "fuzz-dev")
if examples := os.environ.get("DATADESK_FUZZ_EXAMPLES"):
    PROFILE = settings(PROFILE, max_examples=int(examples))

CLDR = sorted(babel.localedata.locale_identifiers())
language_codes = st.one_of(
    st.none(),
    st.sampled_from(CLDR).map(lambda tag: tag.replace("_", "-")),
    st.sampled_from(CLDR),
    st.sampled_from(["no", "no-NO", "en", "lv", "ru", "zh-hans", "zh-TW", "pt-BR"]),
    st.text(max_size=12),
)
texts = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "123456",
            "+37120000001",
            "anna@example.lv",
            "Brīvības iela 1, Rīga, LV-1010, LV",
            "jā",
            "да",
            "是",
            "yes",
            "4111 1111 1111 1111",
            "talk to a person",
            "delete my data",
            "\ud800",
            "a\x00b",
            "😀",
        ]
    ),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "ё", "\udfff", " "]), st.integers(0, 5000)),
    st.sampled_from([f"/{c}" for c in sorted(COMMANDS)] + ["/start", "/unknown", "/"]),
)
phones = st.one_of(
    st.sampled_from([p.lstrip("+") for p in PHONES_ON_FILE] + ["37129999901"]), st.text(max_size=20)
)


@dataclass(frozen=True)
class Move:
    """One thing the customer's app sends; ``pick`` chooses among what the chat shows at run time."""

    kind: str
    text: str = ""
    language_code: str | None = None
    own: bool = True
    pick: int = 0


moves = st.one_of(
    st.builds(Move, st.just("text"), texts, language_codes),
    st.builds(Move, st.just("start"), st.just("/start"), language_codes),
    st.builds(Move, st.just("contact"), phones, language_codes, st.booleans()),
    st.builds(Move, st.just("code"), st.just(""), language_codes),
    st.builds(Move, st.just("press"), st.just(""), language_codes, pick=st.integers(0, 20)),
    st.builds(Move, st.just("stale_press"), st.just(""), language_codes, pick=st.integers(0, 50)),
    st.builds(
        Move,
        st.just("press_data"),
        st.one_of(st.text(max_size=64), st.sampled_from(["o:", ":", "o:yes", "o:all", "x" * 64])),
        language_codes,
    ),
    st.builds(Move, st.just("edit"), texts, language_codes, pick=st.integers(0, 20)),
    st.builds(Move, st.just("sticker"), st.just(""), language_codes),
    st.builds(Move, st.just("group"), texts, language_codes),
    st.builds(Move, st.just("service"), st.just(""), language_codes),
)


@dataclass
class Fuzzer:
    """Builds updates as Telegram would and feeds them to the PTB application in-process."""

    stack: Stack
    channel: TelegramChannel
    chat_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(900_000_001))
    update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    message_ids: dict[int, itertools.count[int]] = field(default_factory=dict)
    customer_messages: dict[int, list[int]] = field(default_factory=dict)
    queries: dict[int, set[str]] = field(default_factory=dict)

    def _user(self, chat: int, language_code: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": chat, "is_bot": False, "first_name": "Customer"}
        if language_code is not None:
            user["language_code"] = language_code
        return user

    def _message(self, chat: int, language_code: str | None, **content: Any) -> dict[str, Any]:
        # Far above the bot's own message ids in the stand-in, so the two never meet.
        ids = self.message_ids.setdefault(chat, itertools.count(1_000_000))
        message_id = next(ids)
        self.customer_messages.setdefault(chat, []).append(message_id)
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private", "first_name": "Customer"},
            "from": self._user(chat, language_code),
            **content,
        }

    def update(self, chat: int, move: Move) -> dict[str, Any] | None:
        """The update ``move`` stands for in ``chat``; None when there is nothing to press."""
        lang = move.language_code
        api = self.stack.api
        if move.kind in ("text", "start"):
            content: dict[str, Any] = {"text": move.text}
            if move.text.startswith("/") and len(move.text) > 1:
                length = len(move.text.split()[0])
                content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
            return {"message": self._message(chat, lang, **content)}
        if move.kind == "contact":
            contact: dict[str, Any] = {"phone_number": move.text, "first_name": "Customer"}
            contact["user_id"] = chat if move.own else chat + 1
            return {"message": self._message(chat, lang, contact=contact)}
        if move.kind == "code":
            codes = [c for p in PHONES_ON_FILE for c in self.stack.codes_sent_to(p)]
            text = codes[-1] if codes else "000000"
            return {"message": self._message(chat, lang, text=text)}
        if move.kind in ("press", "stale_press", "press_data"):
            shown = [m for m in api.messages(chat) if m.button_data]
            if move.kind == "press_data":
                data, message_id = move.text, (shown[-1].message_id if shown else 1)
            else:
                if not shown:
                    return None
                message = shown[-1] if move.kind == "press" else shown[move.pick % len(shown)]
                data = message.button_data[move.pick % len(message.button_data)]
                message_id = message.message_id
            bot = {"id": 1, "is_bot": True, "first_name": "Bank"}
            query = {
                "id": str(next(self.update_ids)),
                "from": self._user(chat, lang),
                "chat_instance": str(chat),
                "data": data,
                "message": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private", "first_name": "Customer"},
                    "from": bot,
                    "text": "…",
                },
            }
            return {"callback_query": query}
        if move.kind == "edit":
            sent = self.customer_messages.get(chat) or []
            if not sent:
                return None
            edited = self._message(chat, lang, text=move.text, edit_date=int(time.time()))
            edited["message_id"] = sent[move.pick % len(sent)]
            return {"edited_message": edited}
        if move.kind == "sticker":
            sticker = {
                "file_id": "s1",
                "file_unique_id": "u1",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            }
            return {"message": self._message(chat, lang, sticker=sticker)}
        if move.kind == "group":
            in_group = self._message(chat, lang, text=move.text)
            in_group["chat"] = {"id": -chat, "type": "group", "title": "Friends"}
            return {"message": in_group}
        assert move.kind == "service"
        return {"message": self._message(chat, lang, new_chat_title="Renamed")}

    def answered(self, chat: int, since: int) -> bool:
        """Whether a Bot API call after index ``since`` showed the customer something in ``chat``."""
        ids = {str(chat), *self.queries.get(chat, set())}
        return any(
            method in ("sendMessage", "deleteMessage", "answerCallbackQuery")
            and str(params.get("chat_id", params.get("callback_query_id", ""))) in ids
            for method, params in self.stack.api.calls[since:]
        )

    async def feed(self, chat: int, raw: dict[str, Any]) -> Update:
        """Round-trip ``raw`` through JSON as Telegram's servers would, then process it."""
        raw["update_id"] = next(self.update_ids)
        if "callback_query" in raw:
            self.queries.setdefault(chat, set()).add(raw["callback_query"]["id"])
        update = Update.de_json(json.loads(json.dumps(raw)), self.channel.application.bot)
        await self.channel.application.process_update(update)
        return update


@pytest.fixture
async def fuzzer(stack: Stack) -> AsyncIterator[Fuzzer]:
    """The bot's pieces as ``datadesk bot`` builds them, PTB initialised but not polling."""
    bot = stack.bot_settings
    client = BackendClient(bot.backend_url, bot.service_token)
    conversations = await Conversations.open(bot, backend=client)
    channel = TelegramChannel(
        token=TOKEN,
        api_url=stack.api.url,
        conversations=conversations,
        options=ChannelOptions(rate_limit=False),
    )
    # Telegram's servers answer in process: the same stand-in, without the HTTP round trip.
    telegram = InProcessBotApi(stack.api)
    channel.application.bot._request = (telegram, telegram)
    await channel.application.initialize()
    try:
        yield Fuzzer(stack, channel)
    finally:
        await channel.application.shutdown()
        await conversations.close()
        await client.close()


def _waiting_for_a_person(stack: Stack, chat: int) -> bool:
    """Whether the bot told this chat a colleague was asked to join (then silence is right)."""
    waiting = {stack.t(locale, AGENT_WAITING) for locale in SHIPPED_LOCALES}
    return any(w in m.text for m in stack.api.messages(chat) for w in waiting)


@pytest.mark.parametrize("db_kind", ["sqlite"])
@pytest.mark.parametrize("bot_in_process", [False])
@pytest.mark.timeout(1800)
async def test_any_sequence_of_whole_updates_is_answered_or_deliberately_ignored(
    fuzzer: Fuzzer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    api = fuzzer.stack.api
    count = updates = 0

    async def play(sequence: list[Move]) -> None:
        nonlocal updates
        chat = next(fuzzer.chat_ids)
        for move in sequence:
            raw = fuzzer.update(chat, move)
            if raw is None:
                continue
            calls = len(api.calls)
            logged = len(caplog.records)
            update = await fuzzer.feed(chat, raw)
            updates += 1
            errors = [r for r in caplog.records[logged:] if r.levelno >= logging.ERROR]
            assert errors == [], [(r.name, r.getMessage()) for r in errors]
            incoming = read_update(update)
            if incoming is None or update.edited_message is not None:
                continue  # not for the dialogs, or an edit: nothing to answer unless screened
            assert fuzzer.answered(chat, calls) or _waiting_for_a_person(fuzzer.stack, chat), (
                move,
                api.transcript(chat),
            )

    @PROFILE
    @given(st.lists(moves, min_size=1, max_size=4))
    def run(sequence: list[Move]) -> None:
        nonlocal count
        count += 1
        asyncio.run_coroutine_threadsafe(play(sequence), loop).result(timeout=60)

    started, cpu = time.perf_counter(), time.process_time()
    # Hypothesis drives synchronously: from a thread, each example hopping onto this loop.
    await asyncio.to_thread(run)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"\nupdate fuzz: {count} examples, {updates} updates in {elapsed:.1f}s "
        f"({elapsed / count * 1000:.1f} ms an example; CPU {cpu / count * 1000:.1f} ms)"
    )
