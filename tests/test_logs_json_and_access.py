"""``LOG_FORMAT=json`` and the access log: one JSON object a line, redacted like text; no tokens in paths.

The access log runs through a real aiohttp server (``common.logs.AccessLogger``),
in both formats: the query string (where tokens travel) is never written, the
segment after ``/undo/`` is masked, the route is the pattern, and the client's
address is not there at all.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from common.access_log import AccessLogger, safe_path
from common.logs import WITHHELD, configure, redacting_handler
from common.settings import SettingsError

EMAIL = "olga.petrova@example.lv"
PHONE = "+37126123456"
UNDO_TOKEN = "u7Q-secret-undo-token-9xZ"
QUERY_TOKEN = "q-token-in-the-query-42"


def _capture(fmt: str, name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    log = logging.getLogger(name)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.handlers[:] = [redacting_handler(stream, fmt=fmt)]
    return log, stream


def test_a_json_line_is_one_object_with_the_message_masked_and_extra_fields_masked_too() -> None:
    log, stream = _capture("json", "test.json.mask")
    log.warning("code went to %s", PHONE, extra={"detail": f"write to {EMAIL}"})
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "test.json.mask"
    assert record["message"] == "code went to [phone]"
    assert record["detail"] == "write to [email]"
    assert record["time"].endswith("+00:00")
    assert PHONE not in line
    assert EMAIL not in line


def test_a_json_line_withholds_another_library_s_exception_message_but_keeps_the_frames() -> None:
    log, stream = _capture("json", "test.json.exc")
    try:
        raise ValueError(f"invalid literal: {EMAIL}")
    except ValueError:
        log.exception("request 42 failed")
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert f"ValueError: {WITHHELD}" in record["exc_info"]
    assert "Traceback (most recent call last)" in record["exc_info"]
    assert "olga.petrova" not in line


def test_a_json_line_never_writes_a_traceback_another_handler_cached() -> None:
    log, stream = _capture("json", "test.json.cached")
    record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "failed", (), None)
    record.exc_text = f"Traceback ...\nValueError: {EMAIL}"
    log.handle(record)
    data = json.loads(stream.getvalue())
    assert data["exc_info"] == WITHHELD


def test_the_segment_after_undo_is_masked_and_other_paths_are_kept() -> None:
    assert safe_path(f"/undo/{UNDO_TOKEN}") == "/undo/[token]"
    assert safe_path(f"/undo/{UNDO_TOKEN}/confirm") == "/undo/[token]/confirm"
    assert safe_path("/api/v1/requests") == "/api/v1/requests"


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/undo/{token}", ok)
    app.router.add_get("/api/v1/things/{id}", ok)
    app.router.add_get("/metrics", ok)
    runner = web.AppRunner(app, access_log_class=AccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _visit(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in (f"/undo/{UNDO_TOKEN}?t={QUERY_TOKEN}", "/api/v1/things/7?x=1", "/nowhere"):
            async with http.get(url + path) as answer:
                await answer.read()
        async with http.get(url + "/metrics") as answer:
            await answer.read()


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_the_access_log_shows_the_route_and_status_without_tokens_query_strings_or_addresses(
    server: str, fmt: str
) -> None:
    access = logging.getLogger("aiohttp.access")
    saved = (access.handlers[:], access.level, access.propagate)
    stream = io.StringIO()
    access.handlers[:] = [redacting_handler(stream, fmt=fmt)]
    access.setLevel(logging.INFO)
    access.propagate = False
    try:
        await _visit(server)
    finally:
        access.handlers[:], access.level, access.propagate = saved
    written = stream.getvalue()
    lines = written.splitlines()
    # Three requests logged; the scrape of /metrics is DEBUG, not INFO.
    assert len(lines) == 3, written
    assert UNDO_TOKEN not in written
    assert QUERY_TOKEN not in written
    assert "?" not in written
    assert "127.0.0.1" not in written
    assert "/undo/[token]" in written
    assert "/metrics" not in written
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        assert [(r["route"], r["status"]) for r in records] == [
            ("/undo/{token}", 200),
            ("/api/v1/things/{id}", 200),
            ("unmatched", 404),
        ]
        assert records[1]["path"] == "/api/v1/things/7"
        assert all(r["method"] == "GET" and r["duration_s"] >= 0 for r in records)
    else:
        assert re.search(r"GET /api/v1/things/7 status=200 bytes=\d+ time=\d", lines[1]), lines[1]
        assert "GET /nowhere status=404" in lines[2]


def test_configure_writes_json_to_stderr_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure("INFO", "json")
        logging.getLogger("test.configure").info("request %d queued", 42)
        for handler in root.handlers:
            handler.flush()
    finally:
        root.handlers[:], root.level = saved
    err = capsys.readouterr().err
    record = json.loads(err.splitlines()[-1])
    assert record["message"] == "request 42 queued"


def test_an_unknown_log_format_is_refused_with_the_setting_s_name() -> None:
    from backend.settings import Settings
    from bot.settings import BotSettings

    for settings in (Settings, BotSettings):
        with pytest.raises(SettingsError, match="DATADESK_LOG_FORMAT"):
            settings.from_env({"DATADESK_LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError, match="DATADESK_WORKER_METRICS_PORT"):
        Settings.from_env({"DATADESK_WORKER_METRICS_PORT": "70000"})
    with pytest.raises(SettingsError, match="DATADESK_BOT_METRICS_PORT"):
        BotSettings.from_env({"DATADESK_BOT_METRICS_PORT": "port"})
    assert BotSettings.from_env({"DATADESK_BOT_METRICS_PORT": "9102"}).metrics_port == 9102
    assert Settings.from_env({}).worker_metrics_port == 0
