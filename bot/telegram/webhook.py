"""The HTTPS endpoint Telegram POSTs updates to in webhook mode, served with aiohttp.

aiohttp rather than PTB's own webhook server (tornado): the backend is already
aiohttp, so one HTTP stack serves both; it runs inside the caller's event loop
(``datadesk run`` shares one loop between backend, worker and bot, where
``Application.run_webhook`` wants to own it); and the secret check and body
limit are a few visible lines here. TLS is the reverse proxy's job.

Telegram sends ``X-Telegram-Bot-Api-Secret-Token`` with the secret given to
``setWebhook``; a request without the right one is refused before its body is
read. An accepted update is handed to ``accept`` (the Application's queue, or
with several bot processes the bot database's inbox, ``bot.telegram.inbox``)
and answered 200 once it took it, so Telegram's delivery never waits on a
dialog and an update Telegram was told it delivered is not lost.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.ext import Application

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# Updates are a few KiB; anything far larger is not from Telegram.
MAX_UPDATE_BYTES = 1024 * 1024


class WebhookServer:
    """Serves ``POST {path of url}`` on ``host:port`` into ``application.update_queue``."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        *,
        url: str,
        secret: str,
        host: str,
        port: int,
        accept: Callable[[Update, dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.application = application
        self.accept = accept
        self.path = urlsplit(url).path or "/"
        self.secret = secret
        self.host = host
        self.port = port
        self.received = 0
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        """One update from Telegram."""
        # Compared in constant time, so the secret cannot be guessed byte by byte.
        offered = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(offered.encode(), self.secret.encode()):
            log.warning("webhook call without the right secret token refused")
            return web.Response(status=403)
        try:
            data = json.loads(await request.read())
            if not isinstance(data, dict):
                raise TypeError("not an object")
            update = Update.de_json(data, self.application.bot)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("webhook body is not an update (%s)", type(exc).__name__)
            return web.Response(status=400)
        if self.accept is None:
            await self.application.update_queue.put(update)
        else:
            try:
                await self.accept(update, data)
            except Exception as exc:
                # Not stored: Telegram delivers it again later.
                log.error("webhook update %s not stored (%s)", update.update_id, type(exc).__name__)
                return web.Response(status=503)
        self.received += 1
        return web.Response()

    async def start(self) -> None:
        """Listen; the bound port is in ``self.port`` afterwards (0 picks a free one)."""
        app = web.Application(client_max_size=MAX_UPDATE_BYTES)
        app.router.add_post(self.path, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and self.port == 0:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        log.info("webhook listening on %s:%s%s", self.host, self.port, self.path)

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
