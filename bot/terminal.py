"""``datadesk chat``: the same dialogs in a terminal, against the backend.

Each line typed is one event: a number or an option id presses that button,
``share`` shares the demo customer's phone as a contact (``share +371…``
another one), ``/language``, ``/status``, ``/agent``, ``/cancel``, ``/back``,
``/help`` are the global commands, ``/logout`` forgets who was verified,
``/quit`` (or end of input) leaves; anything else is a typed message.
``datadesk chat --as C-1101`` talks as that demo customer: a chat of its own,
and ``share`` shares its number. Outcomes and agent messages for this chat are printed as they
arrive. Input is read line by line, so a session can be scripted::

    printf '1\\nshare\\n1\\n' | datadesk chat --lang lv

Works beside a backend in another process (``DATADESK_BACKEND_URL``) and
inside ``datadesk run --chat`` (same process).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import re
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TextIO

from bot.backend_client import BackendClient, BackendError
from bot.channel import (
    Command,
    Contact,
    Delete,
    Document,
    Event,
    Outgoing,
    Press,
    Start,
    Text,
    storable,
    storable_event,
)
from bot.conversation import Conversations
from bot.settings import BotSettings
from common.private_files import ensure_private_dir, ensure_private_file

log = logging.getLogger(__name__)

# The demo seed's first customer (DEMO.md): what ``share`` shares by default.
DEMO_PHONE = "+37120000001"
# Under DATA_DIR: documents the chat sends (a copy of the customer's data), one file each.
CHAT_FILES = "chat-files"
QUIT = ("/quit", "/exit")
# How long to wait before polling again when the backend cannot be reached.
POLL_RETRY_SECONDS = 2.0


def chat_id(name: str | None = None) -> str:
    """``term:{name}``: one chat per terminal user, so a new session resumes the last one."""
    raw = name or getpass.getuser() or "demo"
    return "term:" + re.sub(r"[^\w.-]", "_", raw)[:64]


class Terminal:
    """Turns typed lines into events and the chat's answers into printed lines."""

    def __init__(self, out: TextIO, phone: str = DEMO_PHONE, files: Path | None = None) -> None:
        self.out = out
        self.phone = phone
        # Where documents sent into the chat are saved (``DATA_DIR/chat-files``).
        self.files = files or Path("chat-files")
        self.buttons: list[str] = []
        self.message_id = 0

    def show(self, outgoing: list[Outgoing]) -> None:
        """Print answers: text, then numbered buttons and the share-contact offer."""
        for item in outgoing:
            if isinstance(item, Delete):
                print(f"  ✂ [{item.reason}]", file=self.out)
                continue
            if isinstance(item, Document):
                print(f"  📎 {self.save(item)}", file=self.out)
                continue
            print(item.text, file=self.out)
            flat = [button for row in item.buttons for button in row]
            if flat:
                self.buttons = [b.data for b in flat]
                for number, button in enumerate(flat, start=1):
                    print(f"  {number}) {button.label}  [{button.data}]", file=self.out)
            if item.contact_button:
                print(f"  [share] {item.contact_button}", file=self.out)
            print(file=self.out)
        self.out.flush()

    def save(self, document: Document) -> Path:
        """Write a document the chat sent to the files folder, readable by its owner only."""
        ensure_private_dir(self.files)
        path = self.files / Path(document.filename).name
        ensure_private_file(path)
        path.write_bytes(document.content)
        return path

    def event(self, line: str, language: str | None) -> Event | None:
        """The event a typed line stands for, with storable text; None for an empty line."""
        found = self._event(line, language)
        return None if found is None else storable_event(found)

    def _event(self, line: str, language: str | None) -> Event | None:
        text = line.strip()
        if not text:
            return None
        if text.isdigit() and 1 <= int(text) <= len(self.buttons):
            return Press(self.buttons[int(text) - 1])
        if text in self.buttons:
            return Press(text)
        word, _, rest = text.partition(" ")
        if word == "share":
            return Contact(rest.strip() or self.phone, own=True, language_code=language)
        if word.startswith("/") and len(word) > 1:
            if word == "/start":
                return Start(language_code=language)
            return Command(word[1:], rest.strip())
        self.message_id += 1
        return Text(text, message_id=self.message_id, language_code=language)


async def stdin_lines() -> AsyncIterator[str]:
    """Lines from standard input, read by a daemon thread so notifications print meanwhile.

    A daemon thread (not ``asyncio.to_thread``) so that leaving the chat never
    waits for one more line to be typed.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=read, name="chat-stdin", daemon=True).start()
    while line := await queue.get():
        yield line


async def _notifications(
    conversations: Conversations,
    chat: str,
    show: Callable[[list[Outgoing]], None],
    wait: float,
) -> None:
    """Print this chat's notifications as they arrive; acknowledge only those shown here."""
    backend = conversations.backend
    while True:
        try:
            found = await backend.poll_notifications(prefix=chat, wait=wait)
        except BackendError:
            await asyncio.sleep(POLL_RETRY_SECONDS)
            continue
        mine = [n for n in found if n.get("chat") == chat and isinstance(n.get("id"), int)]
        for notification in mine:
            show(await conversations.notify(notification))
        try:
            await backend.ack_notifications([int(n["id"]) for n in mine])
        except BackendError:
            log.warning("chat %s: notifications not acknowledged; they will come again", chat)


def _language(settings_language: str | None) -> str | None:
    if settings_language:
        return storable(settings_language)
    # The terminal's own locale (LANG=lv_LV.UTF-8) is what Telegram's language_code is elsewhere.
    # The environment decodes stray bytes to lone surrogates: storable() replaces them.
    raw = os.environ.get("LC_ALL") or os.environ.get("LANG") or ""
    tag = storable(raw.split(".")[0])
    return tag if tag and tag not in ("C", "POSIX") else None


async def run_chat(
    settings: BotSettings,
    *,
    language: str | None = None,
    name: str | None = None,
    phone: str | None = None,
    lines: AsyncIterator[str] | None = None,
    out: TextIO | None = None,
    poll_wait: float = 25.0,
) -> None:
    """Talk to the dialogs until ``/quit`` or the end of input.

    ``name`` picks the chat (a demo customer's ref: each customer a chat of its
    own, so one's verified session never opens for another); ``phone`` is what
    ``share`` shares.

    SettingsError when no service token is to be had (``BotSettings.with_service_token``).
    """
    from bot.state import BOT_MIGRATIONS
    from common.db import upgrade

    settings = settings.with_service_token()
    ensure_private_dir(settings.data_dir)
    await upgrade(settings.bot_database_url, BOT_MIGRATIONS)
    terminal = Terminal(out or sys.stdout, phone or DEMO_PHONE, settings.data_dir / CHAT_FILES)
    chat = chat_id(name)
    language = _language(language)
    backend = BackendClient(settings.backend_url, settings.service_token)
    try:
        conversations = await Conversations.open(settings, backend=backend)
        try:
            await _talk(conversations, terminal, chat, language, lines, poll_wait)
        finally:
            await conversations.close()
    finally:
        await backend.close()


async def _talk(
    conversations: Conversations,
    terminal: Terminal,
    chat: str,
    language: str | None,
    lines: AsyncIterator[str] | None,
    poll_wait: float,
) -> None:
    """Start the chat, then one event per typed line, with notifications printed meanwhile."""
    poller = asyncio.create_task(_notifications(conversations, chat, terminal.show, poll_wait))
    try:
        terminal.show(await conversations.handle(chat, Start(language_code=language)))
        async for line in lines or stdin_lines():
            if line.strip() in QUIT:
                break
            event = terminal.event(line, language)
            if event is not None:
                terminal.show(await conversations.handle(chat, event))
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)


def chat_command(args: argparse.Namespace, settings: BotSettings) -> int:
    """``datadesk chat [--lang xx]``: the dialogs in this terminal, against ``BACKEND_URL``."""
    from bot.engine import DialogErrors
    from common.errors import ConfigError
    from common.logs import configure
    from common.settings import SettingsError

    # The chat owns the terminal: only warnings and errors go to stderr beside it.
    configure("WARNING")
    try:
        asyncio.run(
            run_chat(
                settings,
                language=getattr(args, "lang", None),
                name=getattr(args, "as_ref", None),
                phone=getattr(args, "phone", None),
            )
        )
    except SettingsError as exc:
        print(f"datadesk chat: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"datadesk chat: {exc}", file=sys.stderr)
        return 1
    except DialogErrors as exc:
        print(f"datadesk chat: the dialogs have errors:\n{exc}", file=sys.stderr)
        return 1
    return 0
