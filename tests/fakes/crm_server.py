"""A bank CRM speaking ``docs/crm-http.md``, on loopback, delegating to a ``BuiltinCrm``.

``async with running_crm_server(crm, token) as server:`` serves the protocol
at ``server.url``; ``server.fail_next(n, status)`` makes the next ``n`` calls
answer ``status``; ``server.calls`` lists (method, path) seen. ``GET
/customers/{ref}/export`` answers the whole record, or, with
``server.exports = False``, ``501`` as a CRM that cannot export does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from aiohttp import web

from backend.crm.builtin import BuiltinCrm
from backend.crm.connector import CustomerNotFound
from backend.crm.shape import address_from_json, hold_from_json
from fakes.loopback import serve


class CrmServer:
    def __init__(self, crm: BuiltinCrm, token: str) -> None:
        self.crm = crm
        self.token = token
        self.url = ""
        self.calls: list[tuple[str, str]] = []
        self._failures: list[int] = []
        self.exports = True

    def fail_next(self, count: int, status: int = 500) -> None:
        self._failures.extend([status] * count)

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if self._failures:
            return web.json_response({"error": "down"}, status=self._failures.pop(0))
        try:
            return await handler(request)
        except CustomerNotFound:
            return web.json_response({"error": "customer_not_found"}, status=404)

    async def lookup(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"ref": await self.crm.find_by_phone(body["phone"])})

    async def contact(self, request: web.Request) -> web.Response:
        c = await self.crm.contact_on_file(request.match_info["ref"])
        return web.json_response({"phone": c.phone, "email": c.email, "language": c.language})

    async def customer(self, request: web.Request) -> web.Response:
        data = await self.crm.export(request.match_info["ref"])
        if data is None:
            raise CustomerNotFound(request.match_info["ref"])
        return web.json_response(data)

    async def export(self, request: web.Request) -> web.Response:
        if not self.exports:
            return web.json_response({"error": "not_implemented"}, status=501)
        data = await self.crm.access_export(request.match_info["ref"])
        if data is None:
            raise CustomerNotFound(request.match_info["ref"])
        return web.json_response(data)

    async def change(self, request: web.Request) -> web.Response:
        ref, what = request.match_info["ref"], request.match_info["what"]
        body = await request.json()
        key = body["idempotency_key"]
        if what == "phone":
            await self.crm.update_phone(ref, body["phone"], idempotency_key=key)
        elif what == "email":
            await self.crm.update_email(ref, body["email"], idempotency_key=key)
        elif what == "address":
            address = address_from_json(body["address"])
            assert address is not None
            await self.crm.update_address(ref, address, idempotency_key=key)
        elif what == "marketing":
            await self.crm.set_marketing(ref, body["consent"], idempotency_key=key)
        elif what == "erase":
            holds = tuple(hold_from_json(h) for h in body["holds"])
            await self.crm.erase(ref, frozenset(body["erase"]), holds, idempotency_key=key)
        else:
            raise web.HTTPNotFound()
        return web.Response(status=204)

    async def purge(self, request: web.Request) -> web.Response:
        body = await request.json()
        purged = await self.crm.purge_expired_holds(date.fromisoformat(body["today"]))
        return web.json_response({"purged": [list(p) for p in purged]})


@contextlib.asynccontextmanager
async def running_crm_server(crm: BuiltinCrm, token: str = "crm-token") -> AsyncIterator[CrmServer]:  # noqa: S107
    server = CrmServer(crm, token)
    app = web.Application(middlewares=[server.guard])
    app.router.add_post("/lookup", server.lookup)
    app.router.add_get("/customers/{ref}/contact", server.contact)
    app.router.add_get("/customers/{ref}", server.customer)
    app.router.add_get("/customers/{ref}/export", server.export)
    app.router.add_post("/customers/{ref}/{what}", server.change)
    app.router.add_post("/purge", server.purge)
    runner, server.url = await serve(app)
    try:
        yield server
    finally:
        await runner.cleanup()
