"""Serve an aiohttp application on a free loopback port: the fakes' and the tests' servers."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def serve(app: web.Application, **runner: Any) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1 on a free port; the runner (clean it up) and the base URL.

    ``runner``: ``web.AppRunner``'s options; the access log is off unless given.
    """
    started = web.AppRunner(app, **{"access_log": None, **runner})
    await started.setup()
    site = web.TCPSite(started, "127.0.0.1", 0)
    await site.start()
    port = started.addresses[0][1]
    return started, f"http://127.0.0.1:{port}"
