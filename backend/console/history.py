"""The console's history: closed chats, read-only and masked as on the chat page.

``GET /console/history`` searches by customer reference, request reference
or the day a chat closed (``backend.chat_history``); ``GET
/console/history/{id}`` shows one closed chat: its heading, transcript,
requests and notes, with nothing to act on. A chat past the retention
policy's ``chat_history_kept`` is not found.
"""

from __future__ import annotations

from datetime import date

from aiohttp import web

from backend import chat_history, transcripts
from backend.api.http import SERVICES
from backend.console import chatview
from backend.console.web import page, refuse
from backend.references import is_reference
from backend.retention import Jurisdiction, load_policy
from backend.services import Services
from backend.validation import is_text


def _svc(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


def _jurisdiction(svc: Services) -> Jurisdiction:
    return load_policy().get(svc.settings.jurisdiction)


def _query(request: web.Request) -> tuple[chat_history.Query, list[str]]:
    """The search form's fields, and what was wrong with them (as codes)."""
    wrong: list[str] = []
    raw = {k: request.query.get(k, "").strip() for k in ("customer", "reference", "day")}
    if not all(is_text(v) and len(v) <= 64 for v in raw.values()):
        return chat_history.Query(), ["invalid"]
    reference = raw["reference"].upper()
    if reference and not is_reference(reference):
        wrong.append("bad_reference")
    day = None
    if raw["day"]:
        try:
            day = date.fromisoformat(raw["day"])
        except ValueError:
            wrong.append("bad_day")
    query = chat_history.Query(
        customer_ref=raw["customer"],
        reference=reference if "bad_reference" not in wrong else "",
        day=day,
    )
    return query, wrong


async def search(request: web.Request) -> web.Response:
    """The history search form and the closed chats it finds (the latest first)."""
    svc = _svc(request)
    query, wrong = _query(request)
    jurisdiction, now = _jurisdiction(svc), svc.clock.now()
    rows = []
    if not wrong:
        async with svc.sessions() as session:
            rows = await chat_history.search(session, jurisdiction, query, now)
    context = {
        "query": query,
        "raw": {k: request.query.get(k, "") for k in ("customer", "reference", "day")},
        "wrong": wrong,
        "rows": rows,
        "kept": jurisdiction.chat_history_kept,
    }
    return page(request, "history.html", context, status=422 if wrong else 200)


async def show(request: web.Request) -> web.Response:
    """One closed chat, read-only."""
    svc = _svc(request)
    jurisdiction, now = _jurisdiction(svc), svc.clock.now()
    async with svc.sessions() as session:
        row = await chat_history.closed_chat(session, jurisdiction, request.match_info["id"], now)
        if row is None:
            return refuse(request, 404, "not_found")
        # What was said up to the close; a later conversation in the same chat is not this one.
        entries = await transcripts.transcript(session, row.chat, until=row.closed_at)
        requests = await chatview.requests_of(session, row)
        notes = await chatview.notes_of(session, row.chat)
    record = await chatview.customer_record(svc, row.customer_ref)
    async with svc.sessions() as session:
        head = await chatview.heading(session, row, record, now)
    context = {
        "es": row,
        "entries": entries,
        "requests": requests,
        "notes": notes,
        "head": head,
        "actions": False,  # read-only: no retry or cancel from the history
    }
    return page(request, "history_chat.html", context)


def setup(console: web.Application) -> None:
    console.router.add_get("/history", search)
    console.router.add_get("/history/{id}", show)
