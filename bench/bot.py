"""The Telegram channel under load: datadesk next to a bare python-telegram-bot echo bot.

This process plays Telegram and the customers: the Bot API stand-in
(``tests/fakes/botapi.py``) and 100 simulated customers, each waiting for the
bot's answer before its next step, as people do. The bots under test run as
processes of their own, in webhook mode: the stand-in POSTs updates with up
to ``CONNECTIONS`` at once (Telegram's ``max_connections``), round robin over
the bots as a load balancer would. Rows, one run:

- **echo (bare PTB)**: PTB's echo bot (``run_webhook``, concurrent updates);
  customers type and wait for their text to come back.
- **datadesk**: ``datadesk backend``, ``datadesk worker`` and ``datadesk bot``
  as processes on SQLite files; each customer walks /start →
  marketing opt-out (share contact, SMS code, channel, confirm) → reference,
  7 updates, then waits for the outcome notice.
- **datadesk 10 cust.**: the same with 10 customers, for confirm → outcome
  latency when nothing queues behind 100 customers' steps.
- **datadesk 2×2 (PostgreSQL)**, when ``DATADESK_BENCH_POSTGRES_URL`` or
  ``DATADESK_TEST_POSTGRES_URL`` names a server: 2 backends, 2 workers and
  2 bots on fresh PostgreSQL databases, the customers spread over both bots;
  every engine's pool sized so that the processes stay within the server's
  connections and none opens a connection per use (`PG_POOL_SIZE`,
  `PG_MAX_OVERFLOW`), as `docs/operators.md` asks.

Measured: updates handled per second; latency from an action to the bot's
first message (sent or edited) after it, p50 and p99; journeys that reached
their outcome; confirm → outcome latency (p50); limited Bot API calls (send,
edit, delete) per completed journey; the most limited calls in any one
second. Flood limits are off (``TELEGRAM_RATE_LIMIT=0``) except in the row
"2 bots 30/s": two bot processes on SQLite with the limit as shipped, which
they share (journeys/s there is the budget spent: 30/s ÷ calls per journey).

A second table gives the CPU seconds each kind of process used during each
row (from ``/proc``), the bot's per update, and how busy the machine's cores
were meanwhile, anyone's work included: on a machine with few cores, more bot
processes only help while cores are idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:
    # The Bot API stand-in lives with the tests' fakes.
    sys.path.insert(0, str(REPO / "tests"))

from fakes.botapi import LIMITED_METHODS, TOKEN, BotApiStandIn, SentMessage  # noqa: E402
from fakes.processes import Processes  # noqa: E402

CUSTOMERS = int(os.environ.get("DATADESK_BENCH_CUSTOMERS") or 100)  # fewer for a quick look
FEW = 10  # customers in the row that measures confirm → outcome unhurried
CONNECTIONS = 40  # webhook deliveries at once, as setWebhook's max_connections
ECHO_SECONDS = 5.0
RUN_SECONDS = 60.0  # the datadesk rows stop here even if customers are mid-journey
STEP_TIMEOUT = 40.0
START_TIMEOUT = 60.0
SECRET = "bench-webhook-secret"  # noqa: S105 - a throw-away bench webhook
SMS_TOKEN = "bench-sms-token"  # noqa: S105 - a throw-away bench gateway
# PostgreSQL rows: each engine's pool (DB_POOL_SIZE, DB_MAX_OVERFLOW). A pair
# (backend, worker, bot: 5 engines) may then hold 40 of the server's 100. No
# overflow: under steady load a connection beyond the pool is opened for one
# checkout and closed after it (SQLAlchemy's QueuePool), so every statement
# past the pool forked a server process. py-spy on the bot (4 + 4) put a
# tenth of its samples in asyncpg's connect and prepare; in three alternating
# runs of the 1×1 row, 8 + 0 handled 1.1 to 1.6 times the updates/s of 4 + 4
# (the machine's speed drifted between runs by more than that).
PG_POOL_SIZE = 8
PG_MAX_OVERFLOW = 0


@dataclass
class Figures:
    """One row: what was handled, in how long, how quickly each was answered."""

    name: str
    updates: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    outcomes: list[float] = field(default_factory=list)  # confirm → outcome, seconds
    journeys: int = 0
    limited: int = 0  # limited Bot API calls in the chats of completed journeys
    peak: float = 0.0  # the most limited calls a second the stand-in got in any one second
    peak5: float = 0.0  # the same over any five seconds
    failures: int = 0
    customers: int = CUSTOMERS
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per kind of process
    machine_busy: float = float("nan")  # share of all the machine's cores busy, anyone's

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    @staticmethod
    def _quantile(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] * 1000

    def percentile(self, q: float) -> float:
        """Update latency at quantile ``q`` in milliseconds."""
        return self._quantile(self.latencies, q)

    @property
    def outcome_p50(self) -> float:
        return self._quantile(self.outcomes, 0.5)

    @property
    def journeys_per_second(self) -> float:
        return self.journeys / self.seconds if self.seconds else 0.0

    @property
    def calls_per_journey(self) -> float:
        return self.limited / self.journeys if self.journeys else float("nan")


class Replies:
    """Per chat, wakes the customer waiting for the bot's next message (sent or edited)."""

    def __init__(self, api: BotApiStandIn) -> None:
        self._waiting: dict[int, tuple[Callable[[SentMessage], bool], asyncio.Future[float]]] = {}
        self._first: dict[int, asyncio.Future[float]] = {}
        api.on_send = self._sent

    async def _sent(self, message: SentMessage) -> None:
        now = time.perf_counter()
        first = self._first.pop(message.chat_id, None)
        if first is not None and not first.done():
            first.set_result(now)
        waiting = self._waiting.get(message.chat_id)
        if waiting is not None and waiting[0](message) and not waiting[1].done():
            waiting[1].set_result(now)

    async def act(
        self,
        chat: int,
        action: Awaitable[Any],
        until: Callable[[SentMessage], bool],
        figures: Figures | None,
    ) -> float:
        """Do ``action``; wait for a message satisfying ``until``; count it; when it came."""
        loop = asyncio.get_running_loop()
        first: asyncio.Future[float] = loop.create_future()
        done: asyncio.Future[float] = loop.create_future()
        self._first[chat] = first
        self._waiting[chat] = (until, done)
        began = time.perf_counter()
        await action
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                await done
        finally:
            self._waiting.pop(chat, None)
            self._first.pop(chat, None)
        if figures is not None:
            figures.updates += 1
            figures.latencies.append((first.result() if first.done() else done.result()) - began)
        return done.result()


def has_button(data: str) -> Callable[[SentMessage], bool]:
    return lambda m: any(d == data or d.endswith(f":{data}") for d in m.button_data)


def contains(text: str) -> Callable[[SentMessage], bool]:
    return lambda m: text in m.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- processes ----------------------------------------------------------------


async def webhooks_set(api: BotApiStandIn, bots: int) -> None:
    """Until ``bots`` processes called setWebhook (each does once it is ready)."""
    async with asyncio.timeout(START_TIMEOUT):
        while sum(1 for method, _ in api.calls if method == "setWebhook") < bots:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


# ---- the bare echo bot ----------------------------------------------------------


def echo_bot(api_url: str, port: int) -> None:
    """PTB's echo bot in webhook mode; runs in its own process (``echo-bot`` below)."""
    from telegram import Update
    from telegram.ext import Application, ContextTypes, MessageHandler, filters

    async def echo(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        assert update.message.text is not None
        await update.message.reply_text(update.message.text)

    application = (
        Application.builder()
        .token(TOKEN)
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        .concurrent_updates(True)
        .connection_pool_size(64)
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.run_webhook(
        listen="127.0.0.1",
        port=port,
        url_path="hook",
        secret_token=SECRET,
        webhook_url=f"http://127.0.0.1:{port}/hook",
        max_connections=CONNECTIONS,
    )


async def run_echo(workdir: Path) -> Figures:
    """The echo bot, 100 customers typing for ``ECHO_SECONDS``."""
    figures = Figures("echo (bare PTB)")
    processes = Processes(workdir)
    async with BotApiStandIn() as api:
        port = free_port()
        api.balance([f"http://127.0.0.1:{port}/hook"], concurrency=CONNECTIONS)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        await processes.start("echo", ["-m", "bench.bot", "echo-bot", api.url, str(port)], env)
        try:
            await webhooks_set(api, 1)
            replies = Replies(api)
            began = time.perf_counter()
            deadline = began + ECHO_SECONDS

            async def customer(chat: int) -> None:
                n = 0
                while time.perf_counter() < deadline:
                    n += 1
                    text = f"hello {n}"
                    await replies.act(chat, api.send_text(chat, text), contains(text), figures)

            await asyncio.gather(*(customer(1_000 + i) for i in range(CUSTOMERS)))
            figures.seconds = time.perf_counter() - began
        finally:
            await processes.stop()
    return figures


# ---- datadesk -------------------------------------------------------------------


class SmsPhones:
    """The SMS gateway's far end: keeps each phone's codes, wakes whoever waits for one."""

    def __init__(self) -> None:
        self.codes: dict[str, list[str]] = {}
        self.arrived: dict[str, asyncio.Event] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.json()
        to = str(body["to"])
        self.codes.setdefault(to, []).extend(re.findall(r"\b(\d{6})\b", str(body["text"])))
        self.arrived.setdefault(to, asyncio.Event()).set()
        return web.json_response({"ok": True})

    async def code(self, to: str, after: int = 0) -> str:
        while len(self.codes.get(to, [])) <= after:
            event = self.arrived.setdefault(to, asyncio.Event())
            event.clear()
            await event.wait()
        return self.codes[to][-1]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[SmsPhones]:
        app = web.Application()
        app.router.add_post("/sms", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/sms"
        try:
            yield self
        finally:
            await self._runner.cleanup()


def _customers(count: int) -> dict[str, Any]:
    return {
        "customers": [
            {
                "ref": f"B-{i:04d}",
                "name": f"Bench Customer {i}",
                "language": "en",
                "phones": [{"number": f"+3712{i:07d}", "primary": True}],
                "emails": [{"address": f"c{i}@example.lv", "primary": True}],
                "address": {"line1": "Brīvības iela 1", "city": "Rīga", "postcode": "LV-1010", "country": "LV"},
                "marketing": {"email": True, "sms": True, "phone": True, "post": True},
                "products": [],
                "transactions": [],
                "documents": [],
            }
            for i in range(1, count + 1)
        ]
    }  # fmt: skip


@contextlib.asynccontextmanager
async def databases(workdir: Path, pg_base: str | None) -> AsyncIterator[tuple[str, str]]:
    """(backend URL, bot URL): SQLite files in ``workdir``, or fresh PostgreSQL databases."""
    if pg_base is None:
        yield (
            f"sqlite+aiosqlite:///{workdir / 'backend.sqlite3'}",
            f"sqlite+aiosqlite:///{workdir / 'bot.sqlite3'}",
        )
        return

    from common.db import admin_execute

    names = [f"dd_bench_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("backend", "bot")]
    for name in names:
        await admin_execute(pg_base, f'CREATE DATABASE "{name}"')
    try:
        urls = [
            make_url(pg_base).set(database=n).render_as_string(hide_password=False) for n in names
        ]
        yield urls[0], urls[1]
    finally:
        for name in names:
            await admin_execute(pg_base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def walk(
    chat: int, phone: str, api: BotApiStandIn, sms: SmsPhones, replies: Replies, figures: Figures
) -> None:
    """One customer's journey, each step waiting for the answer a person would wait for."""

    async def press(data: str, until: Callable[[SentMessage], bool]) -> float:
        message = next(m for m in reversed(api.messages(chat)) if data in m.button_data)
        return await replies.act(chat, api.press(chat, message.message_id, data), until, figures)

    await replies.act(
        chat, api.send_text(chat, "/start", language_code="en"), has_button("status"), figures
    )
    await press("marketing_opt_out", lambda m: m.contact_button is not None)
    # No mail server here: the code goes by SMS without asking where.
    await replies.act(
        chat, api.share_contact(chat, phone.lstrip("+")), has_button("resend"), figures
    )
    code = await sms.code(phone)
    await replies.act(chat, api.send_text(chat, code), has_button("all"), figures)
    await press("email", has_button("yes"))
    confirmed = time.perf_counter()
    await press("yes", contains("DD-"))
    if any(" is done" in m.text for m in api.messages(chat)):
        outcome_at = time.perf_counter()  # the outcome came with the answer
    else:
        outcome_at = await replies.act(chat, asyncio.sleep(0), contains(" is done"), None)
    figures.outcomes.append(outcome_at - confirmed)
    figures.journeys += 1
    figures.limited += api.limited_calls(chat)


def peak_per_second(api: BotApiStandIn, window: float = 1.0) -> float:
    """The most limited calls (send, edit, delete) a second the stand-in received in any ``window``.

    Measured where they arrive: a busy stand-in process takes calls in late
    bunches, so a one-second window overstates the bots' own peaks; a
    five-second window shows the rate they kept.
    """
    times = sorted(
        at for (m, _), at in zip(api.calls, api.call_times, strict=True) if m in LIMITED_METHODS
    )
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most / window


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, every core and process."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def server_pids(databases: list[str]) -> list[int]:
    """PostgreSQL's server processes serving these databases (their titles name them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if any(f" {name} " in title for name in databases):
            found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a running process has used so far; 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_datadesk(
    workdir: Path,
    name: str,
    *,
    pairs: int,
    pg_base: str | None = None,
    rate_limit: int = 0,
    customers: int = CUSTOMERS,
    order_wait: float | None = None,
) -> Figures:
    """``pairs`` backends, workers and bots; ``customers`` walking their journeys at once.

    ``order_wait``: the bots' ``WEBHOOK_ORDER_WAIT`` (None: as shipped).
    """
    figures = Figures(name, customers=customers)
    processes = Processes(workdir)
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATADESK_DATA_DIR": str(workdir / "var"),
        "DATADESK_SECRET_KEY": "bench-secret-key-not-for-production",
        "DATADESK_BOT_SECRET_KEY": "bench-bot-secret-key-not-for-production",
        "DATADESK_SERVICE_TOKEN": "bench-service-token",
        "DATADESK_SMS_GATEWAY": "http",
        "DATADESK_SMS_GATEWAY_TOKEN": SMS_TOKEN,
        "DATADESK_TELEGRAM_TOKEN": TOKEN,
        "DATADESK_TELEGRAM_MODE": "webhook",
        "DATADESK_TELEGRAM_RATE_LIMIT": str(rate_limit),
        "DATADESK_WEBHOOK_SECRET": SECRET,
        "DATADESK_LOG_LEVEL": "WARNING",
    }
    if order_wait is not None:
        base_env["DATADESK_WEBHOOK_ORDER_WAIT"] = str(order_wait)
    if pg_base:
        # As docs/operators.md asks: every process's pools together within the
        # server's max_connections (100 here), 2 pairs' worth at most.
        base_env["DATADESK_DB_POOL_SIZE"] = str(PG_POOL_SIZE)
        base_env["DATADESK_DB_MAX_OVERFLOW"] = str(PG_MAX_OVERFLOW)
    async with (
        databases(workdir, pg_base) as (backend_db, bot_db),
        SmsPhones().running() as sms,
        BotApiStandIn() as api,
    ):
        env = {
            **base_env,
            "DATADESK_DATABASE_URL": backend_db,
            "DATADESK_BOT_DATABASE_URL": bot_db,
            "DATADESK_SMS_GATEWAY_URL": sms.url,
            "DATADESK_TELEGRAM_API_URL": api.url,
        }
        listing = workdir / "customers.json"
        listing.write_text(json.dumps(_customers(customers)))
        await processes.run("db upgrade", ["-m", "datadesk", "db", "upgrade"], env)
        await processes.run("crm import", ["-m", "datadesk", "crm", "import", str(listing)], env)
        backends = [free_port() for _ in range(pairs)]
        hooks = [free_port() for _ in range(pairs)]
        api.balance([f"http://127.0.0.1:{p}/hook" for p in hooks], concurrency=CONNECTIONS)
        try:
            for i in range(pairs):
                # Each pair its own data folder, as on hosts of their own.
                host = {**env, "DATADESK_DATA_DIR": str(workdir / f"var{i}")}
                at = {**host, "DATADESK_HTTP_PORT": str(backends[i])}
                await processes.start(f"backend{i}", ["-m", "datadesk", "backend"], at)
                await processes.start(f"worker{i}", ["-m", "datadesk", "worker"], host)
            await _healthy([f"http://127.0.0.1:{p}/healthz" for p in backends])
            for i in range(pairs):
                bot_env = {
                    **env,
                    "DATADESK_DATA_DIR": str(workdir / f"var{i}"),
                    "DATADESK_BACKEND_URL": f"http://127.0.0.1:{backends[i]}",
                    "DATADESK_WEBHOOK_URL": f"http://127.0.0.1:{hooks[i]}/hook",
                }
                await processes.start(f"bot{i}", ["-m", "datadesk", "bot"], bot_env)
            await webhooks_set(api, pairs)
            replies = Replies(api)
            pids = {n: p.pid for n, p in zip(processes.names, processes.running, strict=True)}
            pids["harness"] = os.getpid()
            cpu_before = {n: cpu_seconds(pid) for n, pid in pids.items()}
            names = [make_url(u).database or "" for u in (backend_db, bot_db)] if pg_base else []
            server_before = {pid: cpu_seconds(pid) for pid in server_pids(names)}
            machine_before = machine_ticks()
            began = time.perf_counter()
            walking = [
                asyncio.create_task(walk(5_000 + i, f"+3712{i:07d}", api, sms, replies, figures))
                for i in range(1, customers + 1)
            ]
            await asyncio.wait(walking, timeout=RUN_SECONDS)
            figures.seconds = time.perf_counter() - began
            for n, pid in pids.items():
                kind = n.rstrip("0123456789")
                used = cpu_seconds(pid) - cpu_before[n]
                figures.cpu[kind] = figures.cpu.get(kind, 0.0) + used
            if names:
                figures.cpu["postgres"] = sum(
                    cpu_seconds(pid) - server_before.get(pid, 0.0) for pid in server_pids(names)
                )
            busy, total = (a - b for a, b in zip(machine_ticks(), machine_before, strict=True))
            figures.machine_busy = busy / total if total else float("nan")
            for customer in walking:
                customer.cancel()
            results = await asyncio.gather(*walking, return_exceptions=True)
            figures.failures = sum(
                isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
                for r in results
            )
            figures.peak = peak_per_second(api)
            if ended := processes.ended_early():
                print(f"{name}: processes ended during the run: {', '.join(ended)}", flush=True)
            if figures.failures:
                # What the processes said went wrong (their own, personal-data-free logs).
                said = {
                    line.split(" ", 2)[-1][:200]
                    for line in processes.logs().splitlines()
                    if " ERROR " in line or "Error:" in line
                }
                for line in sorted(said)[:12]:
                    print(f"{name}: {line}", flush=True)
            figures.peak5 = peak_per_second(api, 5.0)
        finally:
            await processes.stop()
    return figures


async def _healthy(urls: list[str]) -> None:
    async with ClientSession() as http, asyncio.timeout(START_TIMEOUT):
        for url in urls:
            while True:
                with contextlib.suppress(OSError):
                    async with http.get(url) as answer:
                        if answer.status == 200:
                            break
                await asyncio.sleep(0.2)


async def measure() -> list[Figures]:
    """Every row, one after the other, each against a fresh stand-in."""
    workdir = Path(tempfile.mkdtemp(prefix="dd-bench-bot-"))
    try:
        rows = [await run_echo(workdir)]
        (workdir / "one").mkdir()
        rows.append(await run_datadesk(workdir / "one", "datadesk", pairs=1))
        # Confirm → outcome when the system is not queueing 100 customers' steps.
        (workdir / "few").mkdir()
        rows.append(
            await run_datadesk(
                workdir / "few", f"datadesk {FEW} cust.", pairs=1, customers=min(FEW, CUSTOMERS)
            )
        )
        # As shipped: the token's 30 calls/s shared by two bot processes.
        (workdir / "limited").mkdir()
        rows.append(
            await run_datadesk(workdir / "limited", "datadesk 2 bots 30/s", pairs=2, rate_limit=30)
        )
        pg = os.environ.get("DATADESK_BENCH_POSTGRES_URL") or os.environ.get(
            "DATADESK_TEST_POSTGRES_URL"
        )
        if pg:
            for pairs in (1, 2):
                folder = workdir / f"pg{pairs}"
                folder.mkdir()
                rows.append(
                    await run_datadesk(
                        folder, f"datadesk {pairs}×{pairs} pg", pairs=pairs, pg_base=pg
                    )
                )
        return rows
    finally:
        if os.environ.get("DATADESK_BENCH_KEEP"):
            print(f"bench folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def report(results: list[Figures]) -> str:
    """The figures as a table, then the ratios the targets name."""
    lines = [
        f"bot: {CUSTOMERS} concurrent customers, bots in webhook mode in their own processes, "
        f"flood limits off",
        f"{'bot':<20}{'updates':>8}{'s':>6}{'upd/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'journeys':>9}{'j/s':>6}{'outcome p50':>12}{'calls/j':>8}{'peak/s':>7}{'5s/s':>6}{'failed':>7}",
    ]
    for f in results:
        outcome = f"{f.outcome_p50:.0f} ms" if f.outcomes else "-"
        calls = f"{f.calls_per_journey:.1f}" if f.journeys else "-"
        lines.append(
            f"{f.name:<20}{f.updates:>8}{f.seconds:>6.1f}{f.per_second:>8.1f}"
            f"{f.percentile(0.5):>8.0f}{f.percentile(0.99):>8.0f}{f.journeys:>9}"
            f"{f.journeys_per_second:>6.1f}{outcome:>12}{calls:>8}{f.peak:>7.0f}{f.peak5:>6.1f}{f.failures:>7}"
        )
    lines += [
        "",
        "CPU seconds used during each row (bot, backend, worker processes; harness = the "
        "stand-in and the customers; postgres = its server processes of the row's "
        "databases), and how busy the machine's cores were, anyone's work",
        f"{'bot':<20}{'bot':>7}{'backend':>8}{'worker':>7}{'harness':>8}{'postgres':>9}"
        f"{'bot/upd ms':>11}{'machine busy':>13}",
    ]
    for f in results[1:]:
        per_update = f.cpu.get("bot", 0.0) / f.updates * 1000 if f.updates else float("nan")
        postgres = f"{f.cpu['postgres']:.1f}" if "postgres" in f.cpu else "-"
        lines.append(
            f"{f.name:<20}{f.cpu.get('bot', 0.0):>7.1f}{f.cpu.get('backend', 0.0):>8.1f}"
            f"{f.cpu.get('worker', 0.0):>7.1f}{f.cpu.get('harness', 0.0):>8.1f}"
            f"{postgres:>9}{per_update:>11.1f}{f.machine_busy:>12.0%}"
        )
    lines.append("")
    echo = results[0]
    for other in results[1:]:
        if other.customers != CUSTOMERS:
            lines.append(
                f"{other.name}: confirm → outcome p50 {other.outcome_p50:.0f} ms "
                f"(target < 500 ms); {other.journeys}/{other.customers} journeys"
            )
            continue
        if "30/s" in other.name:
            lines.append(
                f"{other.name}: {other.journeys_per_second:.1f} journeys/s (target ≥ 3); limited "
                f"calls of both processes together, as the stand-in received them: at most "
                f"{other.peak:.0f} in one second, {other.peak5:.1f}/s over five (target ≤ 30)"
            )
            continue
        if echo.per_second:
            lines.append(
                f"{other.name} / echo: {other.per_second / echo.per_second:.2f}× the updates/s "
                f"(target ≥ 0.5×), {other.percentile(0.5) / echo.percentile(0.5):.1f}× the p50 "
                f"(target ≤ 2×); {other.journeys}/{CUSTOMERS} journeys"
            )
        if other.journeys:
            lines.append(
                f"{other.name}: {other.calls_per_journey:.1f} limited calls per journey → "
                f"{30 / other.calls_per_journey:.1f} journeys/s at 30 calls/s (target ≥ 3)"
            )
    by = {f.name: f for f in results}
    one, two = by.get("datadesk 1×1 pg"), by.get("datadesk 2×2 pg")
    if one is not None and two is not None and one.per_second:
        lines.append(
            f"2 bots ÷ 1 bot on PostgreSQL: {two.per_second / one.per_second:.2f}× (target ≥ 1.5×)"
        )
    return "\n".join(lines)


def main() -> int:
    """Run the bench, print the table; 1 when customers could not finish their journeys."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    results = asyncio.run(measure())
    print(report(results))
    return 1 if any(f.failures for f in results) else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["echo-bot"]:
        echo_bot(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
