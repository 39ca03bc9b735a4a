"""``datadesk run``: backend, worker(s), the console and a chat channel in one process.

The one place that wires the backend and the bot together: it migrates both
databases, serves the backend's HTTP API and console, runs a worker, and once
the backend listens starts the Telegram bot (when a token is set) or the
terminal chat (``--chat``), which reach the backend over HTTP like separate
processes do. Both sides' settings are read from the same environment, and
each side is handed only its own: the bot gets ``BotSettings`` (with the
backend's service token handed over in memory), never the backend's keys.
Exit status 0 after a signal or the end of the terminal chat, 1 when any part
fails, 2 when the settings are wrong.

Stopping (SIGTERM, SIGINT) drains in order: the channel stops taking updates
and finishes those in hand (their backend calls, replies and transcript),
then the backend and the worker stop; no customer action fails because the
process is stopping.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from backend.models.base import BACKEND_MIGRATIONS
from backend.runner import serve_backend, with_services, work_queue
from backend.services import Services
from bot.runner import start_bot
from bot.state import BOT_MIGRATIONS
from bot.terminal import run_chat
from common.db import upgrade
from common.logs import configure
from common.private_files import ensure_private_dir
from common.settings import SettingsError
from datadesk.deployment import Deployment

log = logging.getLogger(__name__)

# How long a stopping ``datadesk run`` lets the channel finish the updates in hand.
DRAIN_SECONDS = 30


async def _run_all(args: argparse.Namespace, deployment: Deployment) -> int:
    settings = deployment.backend
    for data_dir in {settings.data_dir, deployment.bot.data_dir}:
        ensure_private_dir(data_dir)
    await upgrade(settings.database_url, BACKEND_MIGRATIONS)
    await upgrade(deployment.bot.bot_database_url, BOT_MIGRATIONS)

    async def body(services: Services, stop: asyncio.Event) -> int:
        concurrency = int(getattr(args, "concurrency", 1) or 1)
        listening = asyncio.Event()
        # Set only once the channel has drained: the backend and worker outlive it.
        halt = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(serve_backend(services, halt, listening), name="backend"),
            asyncio.create_task(work_queue(services, halt, concurrency, False), name="worker"),
        ]
        print(
            f"agent console: http://{settings.http_host}:{settings.http_port}/console/", flush=True
        )
        # The channel talks to the backend over HTTP: start it once the backend listens.
        await _first(listening.wait(), *tasks)
        # One process, one service token: the bot gets the backend's, whichever made it.
        # One process, one registry: the backend's port serves the bot's metrics too.
        bot = replace(deployment.bot, service_token=services.settings.service_token, metrics_port=0)
        channel: asyncio.Task[Any] | None = None
        if bot.telegram_token:
            channel = asyncio.create_task(start_bot(bot), name="bot")
        elif getattr(args, "chat", False):
            chat = run_chat(
                bot,
                language=getattr(args, "lang", None),
                name=getattr(args, "as_ref", None),
                phone=getattr(args, "phone", None),
            )
            channel = asyncio.create_task(chat, name="chat")
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait(), name="stop")]
        if channel is not None:
            waiters.append(channel)
        # Wait for a signal, the end of the terminal chat, or any part failing.
        finished, _ = await asyncio.wait([*tasks, *waiters], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        if channel is not None and not channel.done():
            # First the channel: it stops taking updates, answers those in hand and
            # files their transcript, all against a backend that is still serving.
            channel.cancel()
            drained, _ = await asyncio.wait([channel], timeout=DRAIN_SECONDS)
            if not drained:
                log.warning("the channel did not stop within %d s; stopping anyway", DRAIN_SECONDS)
        # Then the backend and the worker.
        halt.set()
        status = 0
        for task in finished:
            if task.cancelled() or task.get_name() == "stop":
                continue
            error = task.exception()
            if error is not None:
                log.error("%s stopped with an error", task.get_name(), exc_info=error)
                status = 1
        await asyncio.gather(*tasks, *waiters, return_exceptions=True)
        return status

    return await with_services(settings, body)


async def _first(wanted: Awaitable[Any], *failing: asyncio.Task[Any]) -> None:
    """Wait for ``wanted``, or return early if one of ``failing`` ends first."""
    waiter = asyncio.ensure_future(wanted)
    await asyncio.wait([waiter, *failing], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def run_all(args: argparse.Namespace, deployment: Deployment) -> int:
    """``datadesk run``: migrate, then backend, worker(s) and the chosen channel in one process."""
    if deployment.bot.telegram_token:
        try:
            deployment.bot.check_channel()
        except SettingsError as exc:
            print(f"datadesk: {exc}", file=sys.stderr)
            return 2
    terminal_chat = bool(getattr(args, "chat", False)) and not deployment.bot.telegram_token
    if terminal_chat:
        from datadesk.demo_chat import resolve

        problem = resolve(args)
        if problem is not None:
            print(f"datadesk: {problem}", file=sys.stderr)
            return 2
    # The terminal chat owns the screen: only warnings and errors go to stderr beside it.
    configure(
        "WARNING" if terminal_chat else deployment.backend.log_level,
        deployment.backend.log_format,
    )
    return asyncio.run(_run_all(args, deployment))
