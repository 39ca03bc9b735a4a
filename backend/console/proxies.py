"""Which address a console request comes from, when the operator runs it behind a reverse proxy.

With ``DATADESK_TRUSTED_PROXIES`` unset the client is the socket peer and
``X-Forwarded-For`` is ignored: anyone can write that header. When it names the
proxies, and only for a request whose socket peer is one of them, the client
is the right-most address in ``X-Forwarded-For`` that is not a trusted proxy
(aiohttp-remotes' ``XForwardedFiltered``), which also takes the scheme and host
the proxy saw from ``X-Forwarded-Proto`` and ``X-Forwarded-Host``. A spoofed
header from anyone else changes nothing.

Login limits key on ``request.remote`` after this middleware has run.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp_remotes import XForwardedFiltered

from backend.console.web import Handler

Network = IPv4Network | IPv6Network


def _from(trusted: Sequence[Network], peer: str | None) -> bool:
    if peer is None:
        return False
    try:
        address = ip_address(peer)
    except ValueError:  # a Unix socket or an unusual transport: not a proxy we know
        return False
    return any(address in network for network in trusted)


def middlewares(trusted_proxies: Sequence[str]) -> list[Middleware]:
    """The middleware that reads the client address behind ``trusted_proxies`` (none if empty)."""
    if not trusted_proxies:
        return []
    trusted = [ip_network(item, strict=False) for item in trusted_proxies]
    filtered = XForwardedFiltered(trusted)

    @web.middleware
    async def client_behind_proxy(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Believe X-Forwarded-For only from a trusted proxy."""
        if not _from(trusted, request.remote):
            return await handler(request)
        return await filtered.middleware(request, handler)

    return [client_behind_proxy]
