"""Access requests at the backend's edge and in the terminal chat: ``POST /api/v1/access``.

The real backend on SQLite and PostgreSQL with the demo's customers; the
HTTP CRM through its reference server; ``datadesk chat`` saving the files it
is sent under ``DATA_DIR``.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import bot_settings_for
from fakes.crm_server import running_crm_server
from fakes.verification_world import ANNA, ANNA_REF, World, world
from pypdf import PdfReader
from sqlalchemy import func, select

from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import ExportUnsupported
from backend.crm.http import HttpCrm
from backend.ledger.submit import SUBMIT_LEASE_SECONDS
from backend.ledger.worker import run_one
from backend.models.audit import AuditEntry
from backend.models.ledger import Request
from bot.terminal import run_chat

__all__ = ["world"]


class Screen(io.StringIO):
    """A terminal's output that tells a waiter when something new was printed."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def write(self, text: str) -> int:
        self.changed.set()
        return super().write(text)

    async def until(self, pattern: str) -> None:
        async with asyncio.timeout(30):
            while not re.search(pattern, self.getvalue()):
                self.changed.clear()
                await self.changed.wait()


async def ask_copy(
    world: World, session: str, key: str = "k-1", body: Any = None
) -> tuple[int, dict[str, Any]]:
    chat = world.session_chats.get(session, "tg:1")
    headers = {"X-Customer-Session": session, "X-Customer-Chat": chat, "Idempotency-Key": key}
    body = {"chat": chat, "locale": "lv"} if body is None else body
    async with world.backend.client.post(
        world.backend.api("/api/v1/access"), json=body, headers=headers
    ) as resp:
        return resp.status, await resp.json()


async def access_rows(world: World) -> list[Request]:
    async with world.services.sessions() as session:
        return list(await session.scalars(select(Request).where(Request.kind == "access")))


async def test_the_answer_carries_the_crm_record_its_summary_and_a_reference(world: World) -> None:
    session = await world.verify(ANNA)
    status, body = await ask_copy(world, session)
    assert status == 201, body
    assert re.fullmatch(r"DD-[0-9A-HJKMNP-TV-Z]{6}", body["reference"])
    assert body["state"] == "done"
    on_file = await world.services.crm.export(ANNA_REF)
    assert on_file is not None
    copy = body["copy"]
    assert {k: v for k, v in copy.items() if k not in ("requests", "marketing_history")} == on_file
    assert [r["reference"] for r in copy["requests"]] == [body["reference"]]
    categories = [entry["category"] for entry in body["summary"]]
    assert "contact" in categories
    assert "chat_history" not in categories
    [row] = await access_rows(world)
    assert row.state == "done"
    assert json.loads(row.result or "{}") == {"categories": categories}


async def test_a_replay_sends_the_copy_again_without_a_second_request(world: World) -> None:
    session = await world.verify(ANNA)
    first_status, first = await ask_copy(world, session)
    again_status, again = await ask_copy(world, session)
    assert (first_status, again_status) == (201, 200)
    assert again["reference"] == first["reference"]
    assert again["copy"]["name"] == first["copy"]["name"]
    assert len(await access_rows(world)) == 1
    async with world.services.sessions() as session_db:
        sent = await session_db.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.action == "access_copy_sent", AuditEntry.subject == first["reference"]
            )
        )
    assert sent == 2


async def test_a_copy_is_not_filed_through_the_general_requests_route(world: World) -> None:
    session = await world.verify(ANNA)
    headers = {"X-Customer-Session": session, "X-Customer-Chat": "tg:1", "Idempotency-Key": "x"}
    body = {"kind": "access", "chat": "tg:1", "locale": "lv", "payload": {}}
    async with world.backend.client.post(
        world.backend.api("/api/v1/requests"), json=body, headers=headers
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "unknown_kind"
    assert await access_rows(world) == []


async def test_bad_input_is_refused_field_by_field_and_nothing_is_filed(world: World) -> None:
    session = await world.verify(ANNA)
    status, body = await ask_copy(world, session, body={"chat": "tg:1", "locale": "xx"})
    assert status == 422
    assert body["error"]["fields"] == {"locale": "invalid_locale"}
    status, body = await ask_copy(world, session, body={"chat": "tg:2", "locale": "lv"})
    assert status == 401
    status, body = await ask_copy(world, "not-a-session")
    assert status == 401
    assert await access_rows(world) == []


async def test_an_http_crm_that_cannot_export_says_so_and_the_request_goes_to_an_agent(
    world: World,
) -> None:
    async with running_crm_server(BuiltinCrm(world.services.sessions, world.clock)) as crm:
        crm.exports = False
        http = HttpCrm(crm.url, crm.token)
        with pytest.raises(ExportUnsupported):
            await http.access_export(ANNA_REF)
        world.services.crm = http
        session = await world.verify(ANNA)
        status, body = await ask_copy(world, session)
    assert status == 201
    assert body["state"] == "failed"
    assert body["reason"] == "export_unavailable"
    assert "copy" not in body
    [row] = await access_rows(world)
    assert (row.state, row.reason) == ("failed", "export_unavailable")


async def test_the_http_crm_export_is_the_record_it_serves(world: World) -> None:
    async with running_crm_server(BuiltinCrm(world.services.sessions, world.clock)) as crm:
        copy = await HttpCrm(crm.url, crm.token).access_export(ANNA_REF)
        assert await HttpCrm(crm.url, crm.token).access_export("C-0000") is None
    assert copy == await world.services.crm.export(ANNA_REF)


async def test_a_request_whose_submitter_died_is_failed_by_a_worker_for_an_agent(
    world: World,
) -> None:
    from backend.ledger.submit import submit

    # As if the process died between filing and answering: held, never answered.
    await submit(
        world.services,
        customer_ref=ANNA_REF,
        chat="tg:1",
        locale="lv",
        kind="access",
        payload={},
        idempotency_key="died",
    )
    world.clock.advance(SUBMIT_LEASE_SECONDS + 1)
    assert await run_one(world.services, world.services.crm, "w1") is True
    [row] = await access_rows(world)
    assert (row.state, row.reason) == ("failed", "copy_not_delivered")


async def test_the_terminal_chat_saves_both_files_under_the_data_folder_and_prints_where(
    world: World, bot_db_url: str, tmp_path: Path
) -> None:
    chat_settings = bot_settings_for(tmp_path, world.backend.url, bot_db_url)
    printed = Screen()

    async def typed() -> AsyncIterator[str]:
        yield "access"
        yield "share"
        yield await world.code_for(ANNA)
        await printed.until(r"📎 \S+\.json")
        yield "/quit"

    await asyncio.wait_for(
        run_chat(
            chat_settings, language="en", name="anna", lines=typed(), out=printed, poll_wait=1
        ),
        timeout=60,
    )
    shown = printed.getvalue()
    paths = [Path(p) for p in re.findall(r"📎 (\S+)", shown)]
    assert [p.suffix for p in paths] == [".pdf", ".json"]
    for path in paths:
        assert path.parent == chat_settings.data_dir / "chat-files"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(paths[1].read_text(encoding="utf-8"))
    assert data["name"] == (await world.services.crm.export(ANNA_REF) or {})["name"]
    text = " ".join(page.extract_text() or "" for page in PdfReader(paths[0]).pages)
    assert data["name"] in re.sub(r"\s+", " ", text)
