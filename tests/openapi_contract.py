"""Every exchange with a test backend checked against the OpenAPI document (openapi-core).

``check(app)`` puts a middleware in front of a backend application (one that
serves ``/api/v1/openapi.yaml``) before the tests start it: each ``/api/v1/``
request and the answer it got are validated against ``backend.api.openapi.assemble()``,
whoever sent it (the bot's backend client, a test's own client, the terminal
chat). What the backend answers is never changed; each disagreement is
written down, and the ``api_contract`` fixture in ``tests/conftest.py`` fails
the test during which it happened, naming the method, path, status and what
the document says instead.

The rules:

- a request the document accepts must get an answer the document describes
  (status, content type, body schema);
- a request the document refuses (bad input on purpose, a missing token) must
  get a 4xx answer the document describes for that operation: the backend
  refusing it is the contract, the backend accepting it is a mismatch;
- a path or method the document does not name must be answered 404 or 405,
  or refused before routing as any URL is (``400 malformed_url`` for a URL
  holding NUL, ``401 unauthorized`` without the service token).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Awaitable, Callable
from functools import cache

from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.contrib.aiohttp import AIOHTTPOpenAPIWebRequest, AIOHTTPOpenAPIWebResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound

from backend.api.openapi import assemble

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Served by the application but not part of the API it describes.
UNDESCRIBED = frozenset({"/api/v1/openapi.yaml"})

# Answers the application gives before it looks the route up (backend/api/app.py).
BEFORE_ROUTING = frozenset({"malformed_url", "unauthorized"})

# What went wrong since the last ``take()``, one line each (this process only).
_mismatches: list[str] = []


@cache
def document() -> OpenAPI:
    """The assembled description, parsed once per test process."""
    return OpenAPI.from_dict(assemble())


def explain(exc: BaseException) -> str:
    """openapi-core's error and the schema errors beneath it, on one line."""
    parts = [str(exc)]
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if cause is not exc:
            parts.append(f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__)
        for error in getattr(cause, "schema_errors", ()) or ():
            where = "/".join(str(p) for p in error.absolute_path) or "(body)"
            parts.append(f"{where}: {error.message}")
        cause = cause.__cause__ or cause.__context__
    return "; ".join(dict.fromkeys(parts))


def take() -> list[str]:
    """The mismatches seen since the last call, and forget them."""
    found = list(_mismatches)
    _mismatches.clear()
    return found


def _code(response: web.Response) -> str | None:
    """The ``error.code`` of a JSON error answer, if it is one."""
    try:
        body = json.loads(response.body) if isinstance(response.body, bytes) else None
        return str(body["error"]["code"])
    except (ValueError, TypeError, KeyError):
        return None


class _ReadAsJson(AIOHTTPOpenAPIWebRequest):
    """A request whose body the backend reads as JSON, whatever its ``Content-Type`` says."""

    @property
    def content_type(self) -> str:
        return "application/json"


def _validate(request: web.Request, body: bytes, response: web.Response) -> str | None:
    openapi = document()
    # The backend parses every body as JSON (backend/api/http.py) and the document
    # describes JSON bodies: a body sent as text/plain is checked as the JSON it is read as.
    wrapped = _ReadAsJson(request, body=body)
    answer = AIOHTTPOpenAPIWebResponse(response)
    try:
        with warnings.catch_warnings():
            # notifications' `prefix` allows an empty value (OpenAPI deprecates saying so).
            warnings.filterwarnings("ignore", "Use of allowEmptyValue", DeprecationWarning)
            openapi.validate_request(wrapped)
    except (PathNotFound, OperationNotFound) as exc:
        if response.status in (404, 405) or _code(response) in BEFORE_ROUTING:
            return None
        return f"not in the document ({exc}), yet answered {response.status}"
    except Exception as exc:
        if not 400 <= response.status < 500:
            return f"the document refuses this request ({explain(exc)}), yet it was answered"
    try:
        openapi.validate_response(wrapped, answer)
    except Exception as exc:
        return f"the answer disagrees with the document: {explain(exc)}"
    return None


@web.middleware
async def contract_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Validate one ``/api/v1/`` exchange after the fact; the answer goes out unchanged."""
    if not request.path.startswith("/api/v1/") or request.path in UNDESCRIBED:
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # Raised past every inner middleware (not an /api/ error they turn to JSON).
        _mismatches.append(f"{request.method} {request.path} → {exc.status}: raised, not JSON")
        raise
    if not isinstance(response, web.Response):
        _mismatches.append(f"{request.method} {request.path} → {response.status}: a stream")
        return response
    try:
        # After the handler: the body it read is cached; one it never read (a
        # refused token, a body over the limit) is read now or taken as empty.
        body = await request.read()
    except web.HTTPException:
        body = b""
    problem = _validate(request, body, response)
    if problem is not None:
        _mismatches.append(f"{request.method} {request.path} → {response.status}: {problem}")
    return response


def check(app: web.Application) -> web.Application:
    """Put the contract check in front of ``app`` when it is the backend; return ``app``."""
    serves_api = any(
        getattr(resource, "canonical", None) == "/api/v1/openapi.yaml"
        for resource in app.router.resources()
    )
    if serves_api and contract_middleware not in app.middlewares:
        app.middlewares.insert(0, contract_middleware)
    return app
