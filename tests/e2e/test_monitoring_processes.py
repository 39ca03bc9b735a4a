"""Monitoring as an operator sees it: ``datadesk backend``, ``worker`` and ``bot`` as processes.

The backend serves ``/metrics``, ``/livez`` and ``/readyz`` on its HTTP port;
the worker and the polling bot on listeners of their own
(``WORKER_METRICS_PORT``, ``BOT_METRICS_PORT``). After a customer's erasure
(and an agent's wrong password) each process's counters have moved; every
line the processes logged with ``LOG_FORMAT=json`` is a JSON object, the
access log among them, and none holds the customer's name, phone, email,
address or code. On PostgreSQL, ``/readyz`` of all three turns 503 while
their database refuses connections and 200 again when it takes them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from conftest import settings_for
from fakes.botapi import TOKEN, BotApiStandIn
from fakes.processes import Processes
from fakes.sms_sink import SmsSink, running_sms_sink
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from backend.crm import importer
from backend.services import open_services
from common.db import admin_execute
from common.monitoring import REFRESH_EVERY
from e2e.conftest import CUSTOMERS, free_port

CHAT = 8901
PHONE = "+37120000003"
SMS_TOKEN = "monitoring-sms-token"
START_TIMEOUT = 60.0
CLI = ["-m", "datadesk.cli"]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def sms() -> AsyncIterator[SmsSink]:
    async with running_sms_sink(SMS_TOKEN) as sink:
        yield sink


async def _status(port: int, path: str) -> int | None:
    """The HTTP status of ``GET path``, or None when nothing answers."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=5)
            ) as answer,
        ):
            return answer.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def _until_status(port: int, path: str, status: int, within: float = START_TIMEOUT) -> None:
    async with asyncio.timeout(within):
        while await _status(port, path) != status:  # noqa: ASYNC110 - polling an HTTP endpoint
            await asyncio.sleep(0.2)


async def scrape(port: int) -> Samples:
    """Every sample ``/metrics`` on ``port`` shows, by name and labels."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape_until(port: int, name: str, **labels: str) -> Samples:
    """Scrape until ``name`` with ``labels`` shows a value above 0 (within ``REFRESH_EVERY`` and a bit)."""
    async with asyncio.timeout(REFRESH_EVERY + 10):
        while True:
            samples = await scrape(port)
            if value(samples, name, **labels) > 0:
                return samples
            await asyncio.sleep(0.5)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def _prepare(tmp_path: Path, backend_db_url: str) -> dict[str, str]:
    settings = settings_for(tmp_path, backend_db_url)
    services = await open_services(settings)
    customers, problems = importer.validate(CUSTOMERS)
    assert problems == []
    await importer.apply(services.sessions, customers, services.clock)
    await services.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")}
    env.update(
        {
            "DATADESK_DATA_DIR": str(tmp_path / "var"),
            "DATADESK_DATABASE_URL": backend_db_url,
            "DATADESK_SECRET_KEY": settings.secret_key or "",
            "DATADESK_BOT_SECRET_KEY": "monitoring-bot-key-not-for-production",
            "DATADESK_SERVICE_TOKEN": settings.service_token,
            "DATADESK_TELEGRAM_TOKEN": TOKEN,
            "DATADESK_LOG_LEVEL": "INFO",
        }
    )
    return env


class Ports:
    def __init__(self) -> None:
        self.backend, self.worker, self.bot = free_port(), free_port(), free_port()


async def _start_all(
    processes: Processes, env: dict[str, str], api: BotApiStandIn, bot_db_url: str
) -> Ports:
    ports = Ports()
    env = {**env, "DATADESK_HTTP_PORT": str(ports.backend)}
    await processes.start("backend", [*CLI, "backend"], env)
    worker = {**env, "DATADESK_WORKER_METRICS_PORT": str(ports.worker)}
    await processes.start("worker", [*CLI, "worker"], worker)
    await _until_status(ports.backend, "/readyz", 200)
    bot = {
        **env,
        "DATADESK_BOT_DATABASE_URL": bot_db_url,
        "DATADESK_TELEGRAM_API_URL": api.url,
        "DATADESK_BACKEND_URL": f"http://127.0.0.1:{ports.backend}",
        "DATADESK_BOT_METRICS_PORT": str(ports.bot),
    }
    await processes.start("bot", [*CLI, "bot"], bot)
    return ports


async def test_each_process_serves_metrics_whose_counters_move_with_a_journey_and_logs_json_lines_without_personal_data(
    tmp_path: Path, backend_db_url: str, bot_db_url: str, sms: SmsSink
) -> None:
    env = await _prepare(tmp_path, backend_db_url)
    env.update(
        {
            "DATADESK_SMS_GATEWAY": "http",
            "DATADESK_SMS_GATEWAY_URL": sms.url,
            "DATADESK_SMS_GATEWAY_TOKEN": SMS_TOKEN,
            "DATADESK_LOG_FORMAT": "json",
        }
    )
    processes = Processes(tmp_path, grace=20)
    async with BotApiStandIn() as api:
        try:
            ports = await _start_all(processes, env, api, bot_db_url)
            for port in (ports.backend, ports.worker, ports.bot):
                await _until_status(port, "/readyz", 200)
                assert await _status(port, "/livez") == 200
                assert await _status(port, "/healthz") == 200
            before = {p: await scrape(p) for p in (ports.backend, ports.worker, ports.bot)}
            await _erasure(api, sms)
            await _wrong_console_password(ports.backend)
            # The bot acknowledges the outcome notice after showing it; the ledger's
            # gauges are read again at most every REFRESH_EVERY seconds.
            done = {"kind": "erasure", "state": "done"}
            backend = await scrape_until(ports.backend, "datadesk_requests", **done)
            worker = await scrape_until(ports.worker, "datadesk_requests", **done)
            bot = await scrape(ports.bot)
            early = processes.ended_early()
        finally:
            await processes.stop()
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("backend", "worker", "bot")}
    assert early == [], logs
    assert [p.returncode for p in processes.running] == [0, 0, 0], logs

    was = before[ports.backend]
    # Requests by route pattern and status: never the raw path with its ids.
    route = "/api/v1/verifications/{id}/check"
    checked = value(backend, "datadesk_http_requests_total", route=route, status="200")
    assert checked > value(was, "datadesk_http_requests_total", route=route, status="200"), [
        k for k in backend if k[0].startswith("datadesk_http_requests")
    ]
    assert not any(
        re.search(r"vf_|tg:", dict(labels).get("route", ""))
        for name, labels in backend
        if name == "datadesk_http_requests_total"
    )
    assert value(backend, "datadesk_http_request_seconds_count", route=route) >= 1
    assert value(
        backend,
        "datadesk_verification_outcomes_total",
        step="verification.check",
        outcome="verified",
    ) > value(
        was, "datadesk_verification_outcomes_total", step="verification.check", outcome="verified"
    )
    assert value(backend, "datadesk_console_login_failures_total", reason="wrong_password") > value(
        was, "datadesk_console_login_failures_total", reason="wrong_password"
    )
    assert value(backend, "datadesk_notification_delivery_lag_seconds_count") > value(
        was, "datadesk_notification_delivery_lag_seconds_count"
    )
    # The ledger's gauges, read at scrape time, in the backend and the worker alike.
    for samples in (backend, worker):
        done = value(samples, "datadesk_requests", kind="erasure", state="done")
        assert done == 1, samples
        assert value(samples, "datadesk_queue_depth") == 0
        assert ("datadesk_queue_oldest_age_seconds", frozenset()) in samples
        assert ("datadesk_audit_sealing_lag_seconds", frozenset()) in samples
        assert ("datadesk_escalations_waiting", frozenset()) in samples
    # The worker's own counters.
    erased = {"kind": "erasure", "result": "done"}
    assert value(worker, "datadesk_worker_attempts_total", **erased) == 1
    assert value(before[ports.worker], "datadesk_worker_attempts_total", **erased) == 0
    assert value(worker, "datadesk_worker_request_seconds_count", kind="erasure") == 1
    # The bot's updates by kind, and their latency.
    was_bot = before[ports.bot]
    for kind, at_least in (("command", 1), ("button", 3), ("contact", 1), ("text", 1)):
        moved = value(bot, "datadesk_bot_updates_total", kind=kind) - value(
            was_bot, "datadesk_bot_updates_total", kind=kind
        )
        assert moved >= at_least, (kind, moved)
        assert value(bot, "datadesk_bot_update_seconds_count", kind=kind) >= at_least
    # Each process has a registry of its own: no process shows another's metrics.
    assert value(bot, "datadesk_http_requests_total") == 0
    assert value(worker, "datadesk_bot_updates_total") == 0
    assert value(worker, "process_resident_memory_bytes") > 0

    _assert_json_logs_without_personal_data(logs, sms)


def _assert_json_logs_without_personal_data(logs: dict[str, str], sms: SmsSink) -> None:
    [emma] = [c for c in CUSTOMERS["customers"] if c["phones"][0]["number"] == PHONE]
    codes = sms.codes_for(PHONE)
    assert codes
    personal = [
        emma["name"],
        PHONE,
        PHONE.lstrip("+"),
        emma["emails"][0]["address"],
        emma["address"]["line1"],
        *codes,
    ]
    access: list[dict[str, object]] = []
    for name, text in logs.items():
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines, name
        for line in lines:
            record = json.loads(line)  # every line is one JSON object
            assert isinstance(record, dict), line
            assert {"time", "level", "logger", "message"} <= record.keys(), line
            if record["logger"] == "aiohttp.access":
                access.append(record)
        found = [v for v in personal if v.casefold() in text.casefold()]
        assert found == [], (name, found)
    # The access log is on: by route, without query strings or ids in the route.
    routes = {str(r["route"]) for r in access}
    assert "/api/v1/verifications/{id}/check" in routes, routes
    assert all("?" not in str(r["path"]) for r in access)
    assert any(str(r["path"]).startswith("/api/v1/notifications") for r in access)


async def _erasure(api: BotApiStandIn, sms: SmsSink) -> None:
    """An erasure of marketing data, every step waiting for the answer, as a customer does.

    It goes through the queue: a worker carries it out and the outcome comes back.
    """
    await api.send_text(CHAT, "/start", language_code="en")
    await api.wait_for_message(CHAT, buttons="erasure", timeout=30)
    await api.press_button(CHAT, "erasure")
    await api.wait_until(lambda: any(m.contact_button for m in api.messages(CHAT)), timeout=20)
    await api.share_contact(CHAT, PHONE.lstrip("+"))
    await api.wait_for_message(CHAT, buttons="resend", timeout=20)
    await sms.wait_for(1, within=20)
    await api.send_text(CHAT, sms.codes_for(PHONE)[-1])
    await api.wait_for_message(CHAT, buttons="marketing", timeout=20)
    await api.press_button(CHAT, "marketing")
    await api.wait_for_message(CHAT, buttons="yes", timeout=20)
    await api.press_button(CHAT, "yes")
    await api.wait_for_message(CHAT, "DD-", timeout=20)
    await api.wait_until(lambda: any(" is done" in m.text for m in api.messages(CHAT)), timeout=30)


async def _wrong_console_password(port: int) -> None:
    """An agent mistypes their password once."""
    base = f"http://127.0.0.1:{port}/console"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{base}/login") as form:
            page = await form.text()
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match, page
        fields = {"csrf": match.group(1), "name": "nobody", "password": "wrong password"}
        async with http.post(f"{base}/login", data=fields) as answer:
            assert answer.status in (200, 401, 429), answer.status


@pytest.mark.postgres_only
async def test_readyz_turns_503_while_postgresql_refuses_connections_and_200_when_it_takes_them_again(
    tmp_path: Path, backend_db_url: str, bot_db_url: str
) -> None:
    env = await _prepare(tmp_path, backend_db_url)
    name = make_url(backend_db_url).database
    admin = backend_db_url.replace(f"/{name}", "/postgres")
    processes = Processes(tmp_path, grace=20)
    async with BotApiStandIn() as api:
        try:
            ports = await _start_all(processes, env, api, bot_db_url)
            every = (ports.backend, ports.worker, ports.bot)
            for port in every:
                await _until_status(port, "/readyz", 200)
            # The database goes away under the running processes.
            await admin_execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin_execute(
                admin,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
            )
            for port in every:
                await _until_status(port, "/readyz", 503, within=20)
                # Still alive: a restart would not bring the database back.
                assert await _status(port, "/livez") == 200
            assert await _status(ports.backend, "/healthz") == 503
            await admin_execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            for port in every:
                await _until_status(port, "/readyz", 200, within=30)
            early = processes.ended_early()
        finally:
            with contextlib.suppress(Exception):
                await admin_execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await processes.stop()
    assert early == [], processes.logs()


async def test_datadesk_run_serves_every_part_s_metrics_once_on_the_backend_port(
    tmp_path: Path,
) -> None:
    backend_port, bot_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATADESK_")}
    env |= {
        "DATADESK_DATA_DIR": str(tmp_path / "var"),
        "DATADESK_TELEGRAM_TOKEN": TOKEN,
        "DATADESK_HTTP_PORT": str(backend_port),
        # Read, and ignored: in one process the backend's port serves them all.
        "DATADESK_BOT_METRICS_PORT": str(bot_port),
        "DATADESK_LOG_LEVEL": "INFO",
    }
    processes = Processes(tmp_path, grace=20)
    async with BotApiStandIn() as api:
        env["DATADESK_TELEGRAM_API_URL"] = api.url
        try:
            await processes.start("run", [*CLI, "run"], env)
            await _until_status(backend_port, "/readyz", 200)
            await api.send_text(CHAT, "/start", language_code="en")
            await api.wait_for_message(CHAT, buttons="erasure", timeout=60)
            samples = await scrape_until(backend_port, "datadesk_bot_updates_total", kind="command")
            assert value(samples, "datadesk_http_requests_total") > 0
            assert ("datadesk_queue_depth", frozenset()) in samples
            assert await _status(bot_port, "/metrics") is None
            early = processes.ended_early()
        finally:
            await processes.stop()
    assert early == [], processes.logs()
