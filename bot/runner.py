"""Runs the Telegram channel: ``datadesk bot`` alone, or inside ``datadesk run``.

``start_bot(settings)`` serves until cancelled: it opens the conversation
service, the backend client and the channel, and closes them again on the
way out. It is handed the bot's own ``BotSettings`` (never the backend's), so
the process holds no key but the bot's. While it runs it re-reads the dialog
files when ``datadesk dialogs reload`` asks, on any host, through the bot
database (``bot.dialogs.reloads``), and on SIGHUP (``kill -HUP``, the process
id in ``DATA_DIR/bot.pid``); a broken set is refused and the last good one
kept (``Conversations.reload``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

from bot.backend_client import BackendClient
from bot.conversation import Conversations
from bot.dialogs.reloads import latest_or_none, watch_reloads
from bot.engine import DialogErrors
from bot.metrics import monitoring
from bot.settings import BotSettings
from bot.state import BOT_MIGRATIONS
from bot.state_key import load_state_key
from bot.telegram.app import ChannelOptions, TelegramChannel
from common.db import make_engine, require_schema
from common.errors import ConfigError
from common.logs import configure
from common.monitoring import serve
from common.private_files import ensure_private_dir
from common.settings import SettingsError

log = logging.getLogger(__name__)

# Telegram delivers webhooks to ports 443, 80, 88 and 8443; without a port in
# WEBHOOK_URL the bot listens on 8443 behind the TLS proxy.
DEFAULT_WEBHOOK_PORT = 8443


def channel_options(settings: BotSettings) -> ChannelOptions:
    """The channel's options from the operator's settings.

    In webhook mode the bot listens on ``HTTP_HOST`` at ``WEBHOOK_PORT``, else
    the port named in ``WEBHOOK_URL`` (8443 when it names none), on the same
    path; a reverse proxy terminates TLS and forwards there.
    """
    port = DEFAULT_WEBHOOK_PORT
    if settings.webhook_url:
        port = urlsplit(settings.webhook_url).port or DEFAULT_WEBHOOK_PORT
    if settings.webhook_port is not None:
        port = settings.webhook_port
    return ChannelOptions(
        mode=settings.telegram_mode,
        webhook_url=settings.webhook_url,
        webhook_secret=settings.webhook_secret,
        webhook_host=settings.http_host,
        webhook_port=port,
        rate_limit=settings.telegram_rate_limit,
        order_wait=settings.webhook_order_wait,
        bot_database_url=settings.bot_database_url,
    )


def _with_inbox_key(options: ChannelOptions, settings: BotSettings) -> ChannelOptions:
    """Webhook updates go through the bot database's inbox, sealed with the bot's key."""
    if options.mode != "webhook":
        return options
    return dataclasses.replace(options, state_key=load_state_key(settings))


def pid_file(settings: BotSettings) -> str:
    """Where a running bot leaves its process id, for a reload by hand (``kill -HUP``)."""
    return str(settings.data_dir / "bot.pid")


@contextlib.contextmanager
def _reload_on_sighup(conversations: Conversations, settings: BotSettings) -> Iterator[None]:
    """SIGHUP → reload the dialogs; the pid file names this process meanwhile."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        log.info("SIGHUP: reloading dialog files")
        task = loop.create_task(conversations.reload())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    installed = False
    try:
        loop.add_signal_handler(signal.SIGHUP, reload)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):
        # Not the main thread (tests, embedding): reload stays available as a call.
        log.debug("SIGHUP reload not installed outside the main thread")
    path = pid_file(settings)
    with open(path, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    try:
        yield None
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGHUP)
        with contextlib.suppress(OSError):
            with open(path) as handle:
                mine = handle.read().strip() == str(os.getpid())
            if mine:
                os.remove(path)


async def start_bot(settings: BotSettings, *, options: ChannelOptions | None = None) -> None:
    """Serve the Telegram channel for ``settings`` until cancelled.

    SettingsError when the channel cannot run (``BotSettings.check_channel``)
    or no service token is to be had (``BotSettings.with_service_token``).
    """
    token = settings.check_channel()
    settings = settings.with_service_token()
    ensure_private_dir(settings.data_dir)
    backend = BackendClient(settings.backend_url, settings.service_token)
    # Its own engine: the reload request to watch from is read before the dialogs are.
    reloads = make_engine(settings.bot_database_url)
    try:
        await require_schema(reloads, BOT_MIGRATIONS, "BOT_DATABASE_URL")
        seen = await latest_or_none(reloads)
        conversations = await Conversations.open(settings, backend=backend)
        try:
            channel = TelegramChannel(
                token=token,
                api_url=settings.telegram_api_url,
                conversations=conversations,
                notifications=backend,
                options=options or _with_inbox_key(channel_options(settings), settings),
            )
            watch = monitoring(conversations.store.engine, backend.ready, channel.bot_api_ready)
            watcher = asyncio.create_task(
                watch_reloads(reloads, conversations.reload, seen=seen),
                name="dialog reloads",
            )
            try:
                async with serve(settings.http_host, settings.metrics_port, watch):
                    with _reload_on_sighup(conversations, settings):
                        await channel.run()
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        finally:
            await conversations.close()
    finally:
        await backend.close()
        await reloads.dispose()


async def _serve_until_signalled(settings: BotSettings) -> None:
    """``start_bot`` until SIGTERM or SIGINT, then a clean stop."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await start_bot(settings)


def run_bot(args: argparse.Namespace, settings: BotSettings) -> int:
    """``datadesk bot``: the Telegram channel in this process; exit status."""
    configure(settings.log_level, settings.log_format)
    try:
        settings.check_channel()
        settings = settings.with_service_token()
    except (SettingsError, ConfigError) as exc:
        print(f"datadesk bot: not started: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve_until_signalled(settings))
    except DialogErrors as exc:
        # Broken dialog files: refuse to start, saying where (file:line: what).
        print(f"datadesk bot: not started, the dialogs are broken:\n{exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        # A broken catalog or key file: the same, naming the file.
        print(f"datadesk bot: not started:\n{exc}", file=sys.stderr)
        return 1
    return 0
