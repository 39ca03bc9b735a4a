"""Small pieces every route module shares: the services key, JSON in and out, client text.

Whatever a client sends is bounded here before a handler sees it, so that bad
input answers 4xx and never reaches the database as something it cannot hold:

- a body is at most 64 KiB of UTF-8 JSON, nested at most ``MAX_DEPTH`` levels,
  with integers of at most ``MAX_INT_DIGITS`` digits and no ``NaN``/``Infinity``
  (``400 malformed_json`` otherwise);
- every string in it, keys included, is text both databases can store: no
  lone surrogate (``"\\ud800"`` is valid JSON but not Unicode) and no NUL,
  which PostgreSQL refuses (``422 invalid`` with ``fields.<path>: invalid_text``,
  the path dotted like ``payload.address.line1``);
- headers read through ``header_text`` obey the same rule (the URL's path
  and query are checked once for every route, in ``backend.api.app``).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from backend.errors import BadRequest, Invalid, PayloadTooLarge
from backend.services import Services
from backend.validation import INVALID_TEXT, is_text

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)

# Bot requests are small: a phone number, a code, a request payload.
MAX_BODY_BYTES = 64 * 1024
# The deepest body the API defines nests three levels (payload.address.line1).
MAX_DEPTH = 32
# Ids are at most 19 digits; anything much longer is not a number we could use.
MAX_INT_DIGITS = 64
# The largest row id a client may name: id columns are 32-bit INTEGER on
# PostgreSQL (SQLite's are 64-bit, but both come from the same migrations and
# an embedded SQLite deployment does not reach two billion rows). A larger id
# names no row; passed on, it would fail in the driver instead.
MAX_ID = 2**31 - 1


def services(request: web.Request) -> Services:
    """The process's services, from any handler."""
    return request.app[SERVICES]


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number has more than {MAX_INT_DIGITS} digits")
    return int(digits)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON within the bounds of the module docstring; ``BadRequest`` says why not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"request body is not UTF-8 (byte {exc.start})", code="malformed_json"
        ) from None
    try:
        body = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest(
            f"request body nests deeper than {MAX_DEPTH} levels", code="malformed_json"
        ) from None
    except ValueError as exc:
        # JSONDecodeError says where; our own bounds say what. Neither quotes the body.
        raise BadRequest(f"request body is not valid JSON: {exc}", code="malformed_json") from None
    _check_tree(body)
    return body


def _check_tree(body: Any) -> None:
    """Depth and text of every node, without recursion (the depth is what is being checked)."""
    pending: list[tuple[Any, str, int]] = [(body, "", 1)]
    while pending:
        node, path, depth = pending.pop()
        if isinstance(node, str):
            if not is_text(node):
                raise Invalid(
                    {path or "body": INVALID_TEXT}, "text is not valid Unicode or has NUL"
                )
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise BadRequest(
                f"request body nests deeper than {MAX_DEPTH} levels", code="malformed_json"
            )
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not is_text(key):
                raise Invalid(
                    {path or "body": INVALID_TEXT}, "a key is not valid Unicode or has NUL"
                )
            pending.append((value, where, depth + 1))


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413/422 ApiError that says why not."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"request body over {MAX_BODY_BYTES} bytes") from exc
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object", code="malformed_json")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", code="malformed_json")
    return body


def header_text(request: web.Request, name: str) -> str:
    """A header's value, or ``""`` when absent or not text (aiohttp decodes stray bytes to surrogates)."""
    value = request.headers.get(name, "")
    return value if is_text(value) else ""


def query_number(
    request: web.Request,
    name: str,
    *,
    default: float,
    low: float,
    high: float,
    integer: bool = False,
) -> float:
    """A number from the query within ``[low, high]``; ``422 invalid_number | out_of_range``.

    Absent, it is ``default``; present but empty (``?wait=``) is no number.
    """
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise Invalid({name: "invalid_number"}) from None
    # NaN compares false to everything, so it lands here too.
    if not low <= value <= high:
        raise Invalid({name: "out_of_range"})
    if integer and not value.is_integer():
        raise Invalid({name: "invalid_number"})
    return value


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer; ``ensure_ascii=False`` keeps customer-language text readable."""
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))
