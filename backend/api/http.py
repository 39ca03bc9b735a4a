"""Small pieces every route module shares: the services key, JSON in and out."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from backend.errors import BadRequest, PayloadTooLarge
from backend.services import Services

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)

# Bot requests are small: a phone number, a code, a request payload.
MAX_BODY_BYTES = 64 * 1024


def services(request: web.Request) -> Services:
    """The process's services, from any handler."""
    return request.app[SERVICES]


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413 ApiError that says why not."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"request body over {MAX_BODY_BYTES} bytes") from exc
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object", code="malformed_json")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="malformed_json") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", code="malformed_json")
    return body


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer; ``ensure_ascii=False`` keeps customer-language text readable."""
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))
