"""``GET /api/v1/openapi.yaml``: the API description, assembled from one fragment per feature.

Each ``backend/api/openapi/*.yaml`` holds the ``paths`` (and any
``components``) of one route module; this module merges them under a common
header, in file-name order, and refuses two fragments that describe the same
path or component (``file: … defined twice``). Public: no token needed.

Answers the application gives on every route, whatever the route (a URL or
body it cannot read, a missing service token, a body too large or holding
text no database can store, a stored value that does not decrypt:
``backend/api/app.py``, ``backend/api/http.py``)
are added to every operation here, unless its fragment describes that status
itself, so that the document lists every status an operation can answer.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from common.errors import ConfigError

FRAGMENTS = Path(__file__).resolve().parent / "openapi"

HEADER: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "datadesk backend API",
        "version": "1",
        "description": "The HTTP contract between channels (the bot, the terminal chat) and "
        "the backend; the prose version is docs/backend-api.md.",
    },
    "servers": [{"url": "/"}],
    "security": [{"serviceToken": []}],
    "components": {
        "securitySchemes": {
            "serviceToken": {"type": "http", "scheme": "bearer"},
            "customerSession": {"type": "apiKey", "in": "header", "name": "X-Customer-Session"},
            # The chat the session was issued in; a session is refused from any other.
            "customerChat": {"type": "apiKey", "in": "header", "name": "X-Customer-Chat"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "fields": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "retry_after": {"type": "integer"},
                        },
                    }
                },
            }
        },
        "responses": {
            "BadRequest": {
                "description": "`malformed_json`: the body is not a UTF-8 JSON object within "
                "the bounds (32 levels deep, numbers of at most 64 digits); "
                "`malformed_url`: the path or query holds NUL or a lone surrogate",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "Unauthorized": {
                "description": "`unauthorized`: the service token is missing or wrong; "
                "`session_expired`: X-Customer-Session is missing, wrong or expired, "
                "or was issued in another chat than X-Customer-Chat",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "PayloadTooLarge": {
                "description": "`payload_too_large`: the body is over 64 KiB",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "ServiceUnavailable": {
                "description": "`stored_data_unreadable`: a stored value the answer needs "
                "does not decrypt (altered, moved, or under a key not configured; "
                "docs/security.md); `internal_error`: an unexpected failure, rolled back, "
                "to try again",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "Invalid": {
                "description": "`invalid`, with one code per field in `fields` "
                "(`invalid_text` for a string holding NUL or a lone surrogate)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    },
    "paths": {},
}

_EVERY_ROUTE = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "503": {"$ref": "#/components/responses/ServiceUnavailable"},
}
_EVERY_BODY = {
    "413": {"$ref": "#/components/responses/PayloadTooLarge"},
    "422": {"$ref": "#/components/responses/Invalid"},
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def assemble(folder: Path = FRAGMENTS) -> dict[str, Any]:
    """The whole document: the header plus every fragment's paths and components."""
    document: dict[str, Any] = yaml.safe_load(yaml.safe_dump(HEADER))
    for path in sorted(folder.glob("*.yaml")):
        try:
            fragment = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(path.name, mark.line + 1 if mark else None, str(exc)) from exc
        if not isinstance(fragment, dict):
            raise ConfigError(path.name, 1, "a fragment must be a mapping with 'paths'")
        for route, item in (fragment.get("paths") or {}).items():
            if route in document["paths"]:
                raise ConfigError(path.name, None, f"path {route} defined twice")
            document["paths"][route] = item
        for section, entries in (fragment.get("components") or {}).items():
            target = document["components"].setdefault(section, {})
            for name, value in (entries or {}).items():
                if name in target:
                    raise ConfigError(path.name, None, f"components.{section}.{name} defined twice")
                target[name] = value
    _add_common_responses(document)
    return document


def _add_common_responses(document: dict[str, Any]) -> None:
    """Give every operation the answers every route can give (module docstring)."""
    for item in document["paths"].values():
        for method in _METHODS:
            operation = item.get(method) if isinstance(item, dict) else None
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            common = {**_EVERY_ROUTE, **(_EVERY_BODY if "requestBody" in operation else {})}
            for status, answer in common.items():
                responses.setdefault(status, answer)


@cache
def document_text() -> str:
    """The assembled description as YAML text, built once per process."""
    return yaml.safe_dump(assemble(), sort_keys=False, allow_unicode=True)


async def openapi(request: web.Request) -> web.Response:
    """Serve the assembled description."""
    return web.Response(text=document_text(), content_type="application/yaml")


def setup(app: web.Application) -> None:
    """Add the description's route."""
    app.router.add_get("/api/v1/openapi.yaml", openapi)
