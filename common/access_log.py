"""aiohttp's access log without personal data, for the backend and the metrics listeners.

One line per request: the method, the path without its query string (tokens
travel there) and with the segment after ``/undo/`` (a customer's one-time
undo link) masked, the route pattern, the status, the size and the time
taken; never the client's address, headers or cookies. The line then goes
through the same redaction as every record (``common.logs``). Probes and
scrapes (``PROBE_PATHS``) are logged at DEBUG, not INFO.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from common.logs import redact

# Paths whose next segment is a secret (a customer's one-time undo link).
_SECRET_AFTER = frozenset({"undo"})
# Scraped every few seconds by monitoring: logged at DEBUG, not INFO.
PROBE_PATHS = frozenset({"/metrics", "/livez", "/readyz", "/healthz"})


def safe_path(path: str) -> str:
    """``path`` as a log may show it: the segment after ``/undo/`` masked, then ``redact``-ed.

    The query string is never passed in (``request.path`` has none).
    """
    parts = path.split("/")
    for index in range(1, len(parts)):
        if parts[index - 1] in _SECRET_AFTER and parts[index]:
            parts[index] = "[token]"
    return redact("/".join(parts))


def route_of(request: web.BaseRequest) -> str:
    """The route pattern that answered (``/api/v1/requests/{reference}``), never the raw path."""
    match_info = getattr(request, "match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return "unmatched"
    return str(resource.canonical)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log without personal data (see the module docstring)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = safe_path(request.path)
        level = logging.DEBUG if request.path in PROBE_PATHS else logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        route = route_of(request)
        self.logger.log(
            level,
            "%s %s status=%d bytes=%d time=%.3fs",
            request.method,
            path,
            response.status,
            response.body_length,
            time,
            extra={
                "method": request.method,
                "path": path,
                "route": route,
                "status": response.status,
                "bytes": response.body_length,
                "duration_s": round(time, 6),
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
