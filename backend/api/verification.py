"""``/api/v1/verifications``: start, resend and check one-time codes (``docs/backend-api.md``).

The answer never waits on the SMS gateway or the mail server: codes go out in
background tasks the application tracks and awaits on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from backend.api.http import json_response, read_json, services
from backend.api.profile import profile
from backend.codes import Started
from backend.errors import ApiError, Invalid
from backend.verification import Verifier, issued_session_customer
from common.vocabulary.locales import SHIPPED_LOCALES
from common.vocabulary.verification_channels import VERIFICATION_CHANNELS


class Deliveries:
    """Code deliveries still running, kept so none is lost or collected mid-flight."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()


DELIVERIES = web.AppKey("code_deliveries", Deliveries)


def verifier(request: web.Request) -> Verifier:
    """The verification operations for this request's services."""
    return Verifier(services(request))


def refuse_bad_options(body: dict[str, Any], *names: str) -> None:
    """``422`` for optional fields present with a value they cannot take (``null`` included).

    Left out, each has its default (``sms``, the customer's language, not
    shared); sent, it must be one of the documented values.
    """
    fields: dict[str, str] = {}
    if "locale" in names and "locale" in body and body["locale"] not in SHIPPED_LOCALES:
        fields["locale"] = "invalid_locale"
    if "channel" in names and "channel" in body and body["channel"] not in VERIFICATION_CHANNELS:
        fields["channel"] = "invalid_channel"
    if "shared_contact" in names and not isinstance(body.get("shared_contact", False), bool):
        fields["shared_contact"] = "invalid_bool"
    if fields:
        raise Invalid(fields)


def send_later(request: web.Request, started: Started) -> None:
    """Hand the code's delivery to a background task (nothing to do for unknown numbers)."""
    if started.delivery is None:
        return
    tasks = request.app[DELIVERIES].tasks
    task = asyncio.create_task(verifier(request).deliver(started.delivery))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def start_verification(request: web.Request) -> web.Response:
    """Send a code to the contact on file for a phone number; the same answer if there is none."""
    body = await read_json(request)
    refuse_bad_options(body, "locale", "channel", "shared_contact")
    started = await verifier(request).start(
        body.get("chat"),
        body.get("phone"),
        body.get("channel"),
        body.get("locale"),
        body.get("shared_contact") is True,
    )
    send_later(request, started)
    return json_response(started.to_json(), status=202)


async def resend_code(request: web.Request) -> web.Response:
    """Send a new code for the same verification, after the cooldown."""
    body = await read_json(request)
    refuse_bad_options(body, "locale")
    started = await verifier(request).resend(request.match_info["id"], body.get("locale"))
    send_later(request, started)
    return json_response(started.to_json(), status=202)


async def check_code(request: web.Request) -> web.Response:
    """Check a code: a session token (with the profile), a proof token, or why it failed."""
    body = await read_json(request)
    result = await verifier(request).check(request.match_info["id"], body.get("code"))
    token = result.get("session_token")
    if isinstance(token, str):
        # The bot's next step shows the profile: it comes with the token, not in a second call.
        svc = services(request)
        async with svc.sessions() as session:
            ref = await issued_session_customer(session, svc.keyring, token, svc.clock.now())
        if ref is not None:
            with contextlib.suppress(ApiError):
                result["profile"] = await profile(svc, ref)
    return json_response(result)


async def _drain(app: web.Application) -> None:
    """Let codes already promised go out before the process stops."""
    tasks = list(app[DELIVERIES].tasks)
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


async def channels(request: web.Request) -> web.Response:
    """Where codes can go now: ``email`` only while a mail server is configured."""
    mail = services(request).mailer is not None
    return json_response({"channels": [c for c in VERIFICATION_CHANNELS if c != "email" or mail]})


def setup(app: web.Application) -> None:
    app[DELIVERIES] = Deliveries()
    app.on_cleanup.append(_drain)
    app.router.add_get("/api/v1/verifications/channels", channels)
    app.router.add_post("/api/v1/verifications", start_verification)
    app.router.add_post("/api/v1/verifications/{id}/resend", resend_code)
    app.router.add_post("/api/v1/verifications/{id}/check", check_code)
