"""Assembles the backend's aiohttp application from one module per feature.

Each module in ``ROUTE_MODULES`` exposes ``setup(app)`` which adds its routes.
Everything under ``/api/`` needs the service token (``Authorization: Bearer``);
errors are JSON ``{"error": {"code", "message", ...}}`` with a stable code. A
URL whose path or query holds NUL or a lone surrogate is refused before any
route sees it (``400 malformed_url``): no database can store or compare it.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from backend import messages
from backend.api.http import MAX_BODY_BYTES, SERVICES, header_text, json_response
from backend.crypto import CryptoError, constant_time_equal
from backend.errors import ApiError, BadRequest, PayloadTooLarge, ServiceUnavailable, Unauthorized
from backend.metrics import HTTP_REQUESTS, HTTP_SECONDS
from backend.services import Services
from backend.validation import is_text
from common.access_log import route_of

log = logging.getLogger(__name__)

ROUTE_MODULES: tuple[str, ...] = (
    "backend.api.health",
    "backend.api.verification",
    "backend.api.customer",
    "backend.api.escalations",
    "backend.console.web",
    "backend.api.requests",
    "backend.api.access",
    "backend.api.notifications",
    "backend.api.openapi",
    "backend.undo_page",
)

# Routes under /api/ that answer without the service token.
PUBLIC_API_PATHS = frozenset({"/api/v1/openapi.yaml"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every answer by method, route pattern (never the raw path: it holds ids) and status."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = route_of(request)
        method = request.method if request.method in hdrs.METH_ALL else "other"
        HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
        HTTP_SECONDS.labels(route=route).observe(time.perf_counter() - started)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON answer with a code; never let one escape as HTML."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.to_json(), status=exc.status)
    except CryptoError as exc:
        # A stored value was altered, moved or is under a key not configured: the
        # message names the column and key id, never the value or its row.
        log.error("stored data unreadable in %s %s: %s", request.method, request.path, exc)
        unreadable = ServiceUnavailable(
            "stored data could not be decrypted; an operator has been told",
            code="stored_data_unreadable",
        )
        return json_response(unreadable.to_json(), status=unreadable.status)
    except web.HTTPRequestEntityTooLarge:
        err = PayloadTooLarge(f"request body over {MAX_BODY_BYTES} bytes")
        return json_response(err.to_json(), status=err.status)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return json_response({"error": {"code": code, "message": exc.reason}}, status=exc.status)
    except Exception:
        # The path, never the body: bodies carry personal data. Whatever failed
        # rolled back, so the caller is told to try again (503), never a bare 500.
        log.exception("unhandled error in %s %s", request.method, request.path)
        body = {"error": {"code": "internal_error", "message": "internal error; try again"}}
        return json_response(body, status=503)


@web.middleware
async def url_text_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a path or query that is not storable text (``400 malformed_url``)."""
    pairs = request.query.items()
    if not is_text(request.path) or not all(is_text(k) and is_text(v) for k, v in pairs):
        raise BadRequest(
            "the URL holds NUL or text that is not valid Unicode", code="malformed_url"
        )
    return await handler(request)


@web.middleware
async def service_token_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reject /api/ calls without the service token, in constant time."""
    if request.path.startswith("/api/") and request.path not in PUBLIC_API_PATHS:
        expected = request.app[SERVICES].settings.service_token
        header = header_text(request, "Authorization")
        scheme, _, token = header.partition(" ")
        if not expected or scheme.lower() != "bearer" or not constant_time_equal(token, expected):
            raise Unauthorized("missing or wrong service token", code="unauthorized")
    return await handler(request)


def create_app(services: Services) -> web.Application:
    """The backend application for ``services``; start it with any aiohttp runner."""
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            metrics_middleware,
            errors_middleware,
            url_text_middleware,
            service_token_middleware,
        ],
    )
    app[SERVICES] = services
    # The backend's own texts (code SMS and emails, undo notices and page) and their
    # catalogs, read now: a broken one stops the start with its file and line, and
    # the first code SMS does not wait for them.
    messages.load()
    messages.catalogs()
    for name in ROUTE_MODULES:
        importlib.import_module(name).setup(app)
    return app
