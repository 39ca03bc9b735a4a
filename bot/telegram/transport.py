"""The bot's HTTP client for the Bot API: python-telegram-bot's ``BaseRequest`` on aiohttp.

python-telegram-bot calls the Bot API through ``HTTPXRequest`` unless given
another ``BaseRequest``. py-spy on the bot process under ``bench/bot.py`` put
about half of the bot's own (event loop) samples in httpx and httpcore: on
every call httpcore's pool walks all its connections and asks each idle one
whether its socket is readable (a ``poll`` and a ``getpeername`` each), twice
per request, and a bot keeps a pool as large as the updates it handles at
once (64). aiohttp's connector hands out a kept-alive connection without a
system call, and aiohttp is already what the backend and the webhook server
run on.

Errors map as ``HTTPXRequest``'s do, so python-telegram-bot's own handling
(and ``bot.telegram.retries``) sees the same exceptions: a timeout is
``TimedOut`` (waiting for a free connection says so), anything else on the
way is ``NetworkError``; neither quotes the call's URL, which holds the
token. Parameters go form-encoded, files as multipart, as the Bot API takes
them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

# As HTTPXRequest's defaults: seconds to wait for a connection of the pool, to
# connect, between reads, to send (a file upload gets longer: MEDIA_WRITE).
POOL_TIMEOUT = 1.0
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 5.0
MEDIA_WRITE = 20.0


def _seconds(value: object, default: float | None) -> float | None:
    """A timeout python-telegram-bot passed (None: no limit), or ours when it passed none."""
    if value is BaseRequest.DEFAULT_NONE or not (value is None or isinstance(value, int | float)):
        return default
    return None if value is None else float(value)


class AiohttpRequest(BaseRequest):
    """Bot API calls over one aiohttp session of up to ``connection_pool_size`` connections."""

    __slots__ = ("_pool_size", "_read_timeout", "_session")

    def __init__(self, connection_pool_size: int = 8, read_timeout: float | None = READ_TIMEOUT):
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        # Made in initialize(): an aiohttp session belongs to the running event loop.
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                # The Bot API's answers are JSON; nothing here reads cookies.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data is not None else {}
        form = aiohttp.FormData(request_data.json_parameters if request_data is not None else {})
        for name, (filename, content, content_type) in files.items():
            form.add_field(name, content, filename=filename, content_type=content_type)
        pool = _seconds(pool_timeout, POOL_TIMEOUT)
        connect = _seconds(connect_timeout, CONNECT_TIMEOUT)
        read = _seconds(read_timeout, self._read_timeout)
        write = _seconds(write_timeout, MEDIA_WRITE if files else WRITE_TIMEOUT)
        parts = (pool, connect, write, read)
        timeout = aiohttp.ClientTimeout(
            # aiohttp has no write timeout: the whole call is bounded by the sum.
            total=None if None in parts else sum(p for p in parts if p is not None),
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=read,
        )
        try:
            async with session.request(
                method,
                url,
                data=form,
                headers={"User-Agent": self.USER_AGENT},
                timeout=timeout,
            ) as answer:
                return answer.status, await answer.read()
        except aiohttp.ConnectionTimeoutError as error:
            raise TimedOut(
                "Timed out waiting for a connection to the Bot API (the pool's "
                f"connections all busy, or connecting); the request was not sent: {_said(error, url)}"
            ) from None
        except TimeoutError as error:
            raise TimedOut(f"Timed out: {_said(error, url)}") from None
        except aiohttp.ClientError as error:
            raise NetworkError(_said(error, url)) from None


def _said(error: BaseException, url: str) -> str:
    """What aiohttp said, without the call's URL: its path holds the bot's token.

    The original error is not chained (``from None``) for the same reason:
    a traceback in the log would quote it.
    """
    text = str(error)
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc}/…"
    for secret in (url, url.rpartition("/")[0]):
        if secret:
            text = text.replace(secret, shown)
    return f"aiohttp.{type(error).__name__}: {text}"
