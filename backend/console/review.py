"""The review queue (supervisors only): approve or reject requests held for back-office review.

The guard in ``backend.console.web`` refuses every ``/console/review`` route to
anyone but a supervisor. Decisions go through ``backend.ledger``, which moves
the request on, writes the audit entry and, on rejection, tells the customer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from backend import escalations, ledger
from backend.api.http import SERVICES
from backend.console.web import PREFIX, me, page
from backend.errors import ApiError

log = logging.getLogger(__name__)

# Stable codes: the customer is told ``review_rejected:{code}`` in their
# language by the bot's catalog; the console shows the English label.
REJECT_REASONS = {
    "identity_not_confirmed": "The customer's identity could not be confirmed",
    "legal_obligation": "The bank must keep this data by law",
    "open_dispute": "An open dispute or investigation prevents it",
    "duplicate_request": "The same request is already being handled",
}


def _preview_items(preview: dict[str, Any]) -> list[tuple[str, str]]:
    # Anything that is not the erasure plan is shown as plain key/value pairs.
    return [
        (str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        for k, v in preview.items()
        if k not in ("categories", "warnings", "preview_id")
    ]


async def review_page(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.Response:
    """Requests awaiting review, the oldest first, with the preview the customer confirmed."""
    async with request.config_dict[SERVICES].sessions() as session:
        items = await ledger.awaiting_review(session)
    shown = [
        {
            "item": item,
            "categories": item.preview.get("categories", []),
            "warnings": item.preview.get("warnings", []),
            "other": _preview_items(item.preview),
        }
        for item in items
    ]
    context = {"items": shown, "reasons": REJECT_REASONS, "error": error}
    return page(request, "review.html", context, status=status)


async def show_review(request: web.Request) -> web.Response:
    """GET the review queue."""
    return await review_page(request)


async def decide(request: web.Request) -> web.StreamResponse:
    """Approve or reject one request, then show the queue again."""
    svc, current = request.config_dict[SERVICES], me(request)
    reference = request.match_info["reference"]
    decision = request.path.rsplit("/", 1)[-1]
    form = await request.post()
    agent, now = escalations.actor(current.id), svc.clock.now()
    try:
        async with svc.sessions() as session, session.begin():
            if decision == "approve":
                await ledger.approve(session, reference, agent=agent, at=now)
            else:
                code = str(form.get("reason_code", ""))
                if code not in REJECT_REASONS:
                    return await review_page(request, error="invalid_reason", status=422)
                await ledger.reject(session, reference, agent=agent, reason_code=code, at=now)
    except ApiError as exc:
        return await review_page(request, error=exc.code, status=exc.status)
    log.info("supervisor %s decided %s on a request", current.id, decision)
    raise web.HTTPFound(f"{PREFIX}/review")


def setup(console: web.Application) -> None:
    console.router.add_get("/review", show_review)
    console.router.add_post("/review/{reference}/approve", decide)
    console.router.add_post("/review/{reference}/reject", decide)
