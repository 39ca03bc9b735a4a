"""The long-running processes: backend API, worker, and everything in one (``datadesk run``).

Each entry point takes the parsed command-line arguments and the settings and
returns an exit status (``backend/cli.py``). They stop gracefully on SIGTERM
and SIGINT: the HTTP server stops accepting, workers finish the request in
hand (its lease protects it if they cannot), connections are released.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from backend.clock import Clock, FakeClock
from backend.errors import ConfigError
from backend.logs import configure
from backend.retention import load_policy
from backend.services import Services, open_services
from backend.settings import Settings

log = logging.getLogger(__name__)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Not the main thread, or not POSIX: the caller stops us some other way.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def serve_backend(
    services: Services, stop: asyncio.Event, started: asyncio.Event | None = None
) -> None:
    """Serve the API and console on HTTP_HOST:HTTP_PORT until ``stop`` is set."""
    from backend.api.app import create_app

    runner = web.AppRunner(create_app(services), access_log=None)
    await runner.setup()
    settings = services.settings
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    log.info("backend listening on http://%s:%d/", settings.http_host, settings.http_port)
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        # shutdown() runs on_shutdown first, which ends waiting long polls at once.
        await runner.shutdown()
        await runner.cleanup()


async def _with_services(
    settings: Settings,
    body: Callable[[Services, asyncio.Event], Awaitable[int]],
    clock: Clock | None = None,
) -> int:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    services = await open_services(settings.with_service_token(), clock=clock)
    try:
        # A file an operator or compliance edits is wrong: say where, not a traceback.
        load_policy().get(settings.jurisdiction)
        return await body(services, stop)
    except ConfigError as exc:
        print(f"datadesk: {exc}", file=sys.stderr)
        return 1
    finally:
        await services.close()


def run_backend(args: argparse.Namespace, settings: Settings) -> int:
    """``datadesk backend``: the HTTP API and the agent console."""
    configure(settings.log_level)

    async def body(services: Services, stop: asyncio.Event) -> int:
        await serve_backend(services, stop)
        return 0

    return asyncio.run(_with_services(settings, body))


async def _workers(services: Services, stop: asyncio.Event, concurrency: int, once: bool) -> int:
    from backend.ledger import connector
    from backend.worker import run_workers

    count = await run_workers(
        services, connector(services), concurrency=concurrency, stop=stop, once=once
    )
    log.info("worker stopped after %d requests", count)
    return 0


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """``datadesk worker [--concurrency N] [--once]``: carry out queued requests."""
    configure(settings.log_level)
    concurrency = int(getattr(args, "concurrency", 1) or 1)
    once = bool(getattr(args, "once", False))
    clock: Clock | None = None
    if getattr(args, "now", None):
        clock = FakeClock(datetime.fromisoformat(args.now))

    async def body(services: Services, stop: asyncio.Event) -> int:
        return await _workers(services, stop, concurrency, once)

    return asyncio.run(_with_services(settings, body, clock))


def worker_main(args: argparse.Namespace) -> int:
    """``python -m backend.worker``: ``run_worker`` with settings from the environment."""
    from backend.settings import SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"datadesk: {exc}", file=sys.stderr)
        return 2
    return run_worker(args, settings)


async def _run_all(args: argparse.Namespace, settings: Settings) -> int:
    from backend.db import upgrade
    from backend.migrate import BOT_MIGRATIONS

    await upgrade(settings.database_url)
    await upgrade(settings.bot_database_url, BOT_MIGRATIONS)

    async def body(services: Services, stop: asyncio.Event) -> int:
        concurrency = int(getattr(args, "concurrency", 1) or 1)
        listening = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(serve_backend(services, stop, listening), name="backend"),
            asyncio.create_task(_workers(services, stop, concurrency, False), name="worker"),
        ]
        print(
            f"agent console: http://{settings.http_host}:{settings.http_port}/console/", flush=True
        )
        # The channel talks to the backend over HTTP: start it once the backend listens.
        await _first(listening.wait(), *tasks)
        channel: asyncio.Task[Any] | None = None
        if settings.telegram_token:
            from bot.runner import start_bot

            channel = asyncio.create_task(start_bot(services.settings), name="bot")
        elif getattr(args, "chat", False):
            from bot.terminal import run_chat

            channel = asyncio.create_task(
                run_chat(services.settings, language=getattr(args, "lang", None)), name="chat"
            )
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait(), name="stop")]
        if channel is not None:
            waiters.append(channel)
        # Wait for a signal, the end of the terminal chat, or any part failing.
        finished, _ = await asyncio.wait([*tasks, *waiters], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        status = 0
        for task in finished:
            if task.cancelled() or task.get_name() == "stop":
                continue
            error = task.exception()
            if error is not None:
                log.error("%s stopped with an error", task.get_name(), exc_info=error)
                status = 1
        if channel is not None and not channel.done():
            channel.cancel()
        await asyncio.gather(*tasks, *waiters, return_exceptions=True)
        return status

    return await _with_services(settings, body)


async def _first(wanted: Awaitable[Any], *failing: asyncio.Task[Any]) -> None:
    """Wait for ``wanted``, or return early if one of ``failing`` ends first."""
    waiter = asyncio.ensure_future(wanted)
    await asyncio.wait([waiter, *failing], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def run_all(args: argparse.Namespace, settings: Settings) -> int:
    """``datadesk run``: migrate, then backend, worker(s) and the chosen channel in one process."""
    terminal_chat = bool(getattr(args, "chat", False)) and not settings.telegram_token
    # The terminal chat owns the screen: only warnings and errors go to stderr beside it.
    configure("WARNING" if terminal_chat else settings.log_level)
    return asyncio.run(_run_all(args, settings))
