"""The contract check in front of every test backend: what it lets pass, what it reports.

Each test serves the real backend (the ``backend`` fixture puts
``tests/openapi_contract.py`` in front of it) and checks it against the real
document or one altered to disagree with the code, then takes the reported
mismatches so that the ``api_contract`` fixture does not fail the test itself.
"""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import openapi_contract
import pytest
from conftest import LiveBackend
from openapi_core import OpenAPI

from backend.api.openapi import assemble


def _use(monkeypatch: pytest.MonkeyPatch, document: dict[str, Any]) -> None:
    monkeypatch.setattr(openapi_contract, "document", lambda: OpenAPI.from_dict(document))


async def test_an_exchange_that_fits_the_document_reports_nothing(backend: LiveBackend) -> None:
    async with backend.client.get(backend.api("/api/v1/verifications/channels")) as r:
        assert r.status == 200
    async with aiohttp.ClientSession() as anonymous, anonymous.get(backend.api("/api/v1/me")) as r:
        assert r.status == 401

    assert openapi_contract.take() == []


async def test_an_answer_the_document_does_not_describe_is_reported_with_the_reason(
    backend: LiveBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = copy.deepcopy(assemble())
    answer = document["paths"]["/api/v1/verifications/channels"]["get"]["responses"]["200"]
    answer["content"]["application/json"]["schema"]["required"].append("expires_at")
    _use(monkeypatch, document)

    async with backend.client.get(backend.api("/api/v1/verifications/channels")) as r:
        assert r.status == 200  # the answer itself is not touched

    [found] = openapi_contract.take()
    assert found.startswith("GET /api/v1/verifications/channels → 200: the answer disagrees")
    assert "'expires_at' is a required property" in found


async def test_a_request_the_document_refuses_but_the_backend_accepts_is_reported(
    backend: LiveBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = copy.deepcopy(assemble())
    document["paths"]["/api/v1/verifications/channels"]["get"]["parameters"] = [
        {"name": "chat", "in": "query", "required": True, "schema": {"type": "string"}}
    ]
    _use(monkeypatch, document)

    async with backend.client.get(backend.api("/api/v1/verifications/channels")) as r:
        assert r.status == 200

    [found] = openapi_contract.take()
    assert "the document refuses this request" in found
    assert "chat" in found


async def test_bad_input_refused_with_a_documented_error_is_the_contract(
    backend: LiveBackend,
) -> None:
    async with backend.client.post(
        backend.api("/api/v1/verifications"), json={"chat": "tg:1", "phone": "not a phone"}
    ) as r:
        assert r.status == 422
    async with backend.client.post(backend.api("/api/v1/verifications"), data=b"{") as r:
        assert r.status == 400

    assert openapi_contract.take() == []


async def test_a_route_served_but_not_in_the_document_is_reported(
    backend: LiveBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = copy.deepcopy(assemble())
    del document["paths"]["/api/v1/verifications/channels"]
    _use(monkeypatch, document)

    async with backend.client.get(backend.api("/api/v1/verifications/channels")) as r:
        assert r.status == 200
    async with backend.client.get(backend.api("/api/v1/no-such-route")) as r:
        assert r.status == 404
    # Without the token any /api/ URL is refused before it is looked up.
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(backend.api("/api/v1/no-such-route")) as r,
    ):
        assert r.status == 401

    [found] = openapi_contract.take()
    assert found.startswith("GET /api/v1/verifications/channels → 200: not in the document")


def test_every_operation_documents_the_answer_to_a_value_that_does_not_decrypt() -> None:
    # Found by this check: any route answers 503 stored_data_unreadable (tests/test_keys_tampering.py).
    for route, item in assemble()["paths"].items():
        for method, operation in item.items():
            assert "503" in operation["responses"], (method, route)
