"""The backend's long-running processes: the HTTP API (with the console) and the worker.

Each entry point takes the parsed command-line arguments and the settings and
returns an exit status (``datadesk/cli.py``); ``datadesk run`` assembles the
same parts with the bot in one process (``datadesk/run.py``). They stop
gracefully on SIGTERM and SIGINT: the HTTP server stops accepting, workers
finish the request in hand (its lease protects it if they cannot),
connections are released.
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

from aiohttp import web

from backend import messages
from backend.audit import Sealer
from backend.audit.key_check import check_keys
from backend.metrics import monitoring
from backend.retention import load_policy
from backend.services import Services, open_services
from backend.settings import Settings
from common.access_log import AccessLogger
from common.clock import Clock, FakeClock
from common.errors import ConfigError
from common.logs import configure
from common.monitoring import serve

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

    # The access log holds no personal data (common.logs.AccessLogger).
    runner = web.AppRunner(create_app(services), access_log_class=AccessLogger)
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


async def with_services(
    settings: Settings,
    body: Callable[[Services, asyncio.Event], Awaitable[int]],
    clock: Clock | None = None,
) -> int:
    """Open the services, run ``body`` until it returns or a signal sets its stop event, close them.

    A wrong retention policy or other ConfigError is printed as ``datadesk: file:line: …``
    and answers exit status 1. Audit keys that are not the ones the database's
    chain and the latest checkpoint were made with raise ``KeyMismatch``
    (``backend.audit.key_check``) before anything is sealed with them.
    """
    stop = asyncio.Event()
    _stop_on_signals(stop)
    services = await open_services(settings.with_service_token(), clock=clock)
    sealing: asyncio.Task[None] | None = None
    sealer_stop = asyncio.Event()
    try:
        # A file an operator or compliance edits is wrong: say where, not a traceback.
        load_policy().get(settings.jurisdiction)
        # Every backend process takes its turn at sealing the audit log (docs/audit.md),
        # and only with the keys the chain and checkpoints were made with.
        sealer = Sealer(services)
        async with services.sessions() as session:
            await check_keys(session, settings, sealer.keys)
        sealing = asyncio.create_task(sealer.run(sealer_stop), name="audit-sealer")
        return await body(services, stop)
    except ConfigError as exc:
        print(f"datadesk: {exc}", file=sys.stderr)
        return 1
    finally:
        if sealing is not None:
            # After the body: what it audited is sealed and checkpointed before exit.
            sealer_stop.set()
            await sealing
        await services.close()


def run_backend(args: argparse.Namespace, settings: Settings) -> int:
    """``datadesk backend``: the HTTP API and the agent console."""
    configure(settings.log_level, settings.log_format)

    async def body(services: Services, stop: asyncio.Event) -> int:
        await serve_backend(services, stop)
        return 0

    return asyncio.run(with_services(settings, body))


async def work_queue(services: Services, stop: asyncio.Event, concurrency: int, once: bool) -> int:
    """Carry out queued requests until ``stop`` is set (or the queue is empty, with ``once``)."""
    from backend.ledger import connector
    from backend.ledger.worker import run_workers

    count = await run_workers(
        services, connector(services), concurrency=concurrency, stop=stop, once=once
    )
    log.info("worker stopped after %d requests", count)
    return 0


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """``datadesk worker [--concurrency N] [--once]``: carry out queued requests."""
    configure(settings.log_level, settings.log_format)
    concurrency = int(getattr(args, "concurrency", 1) or 1)
    once = bool(getattr(args, "once", False))
    clock: Clock | None = None
    if getattr(args, "now", None):
        clock = FakeClock(datetime.fromisoformat(args.now))

    async def body(services: Services, stop: asyncio.Event) -> int:
        # The texts and catalogs of the "Was this you?" notices, read now: a broken one
        # stops the start with its file and line, and the first notice does not wait for
        # them (under the bench, reading them was most of the first drain's notices).
        messages.load()
        messages.catalogs()
        async with serve(settings.http_host, settings.worker_metrics_port, monitoring(services)):
            return await work_queue(services, stop, concurrency, once)

    return asyncio.run(with_services(settings, body, clock))


def worker_main(args: argparse.Namespace) -> int:
    """``python -m backend.worker``: ``run_worker`` with settings from the environment."""
    from common.settings import SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"datadesk: {exc}", file=sys.stderr)
        return 2
    return run_worker(args, settings)
