"""The Bot API stand-in answering PTB in this process, without a socket between them.

``InProcessBotApi(stand_in)`` is a PTB ``BaseRequest``: each Bot API call goes
to the same ``BotApiStandIn`` method that would answer it over HTTP (so the
same checks of HTML, markup and ids apply, and ``stand_in.calls`` and
``stand_in.messages`` record it), only without the HTTP round trip. For
tests that feed thousands of updates (the update fuzz), where that round
trip is half the time; everything else uses the stand-in over HTTP.
"""

from __future__ import annotations

import json
from typing import Any

from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, RequestData

from fakes.botapi import JSON_FIELDS, ApiFailure, BotApiStandIn


class InProcessBotApi(BaseRequest):
    """Answers PTB's requests with ``stand_in``'s handlers, in process."""

    def __init__(self, stand_in: BotApiStandIn) -> None:
        self.stand_in = stand_in

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        raw = request_data.json_parameters if request_data is not None else {}
        params: dict[str, Any] = {
            key: json.loads(value) if key in JSON_FIELDS else value for key, value in raw.items()
        }
        self.stand_in.calls.append((name, params))
        handler = getattr(self.stand_in, f"_m_{name.lower()}", None)
        try:
            if handler is None:
                raise ApiFailure(404, "Not Found: method not found")
            result = await handler(params)
        except ApiFailure as failure:
            return failure.code, json.dumps(failure.body()).encode()
        return 200, json.dumps({"ok": True, "result": result}).encode()
