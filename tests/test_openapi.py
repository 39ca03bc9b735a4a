"""The OpenAPI description: public, assembled from every fragment, naming every route served."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import yaml
from conftest import LiveBackend

from backend.api.openapi import assemble
from common.errors import ConfigError


async def test_the_description_is_served_without_a_token_and_lists_the_ledger_routes(
    backend: LiveBackend,
) -> None:
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(backend.api("/api/v1/openapi.yaml")) as r,
    ):
        assert r.status == 200
        document = yaml.safe_load(await r.text())
    assert document["openapi"].startswith("3.")
    for path in (
        "/api/v1/requests",
        "/api/v1/erasure-preview",
        "/api/v1/notifications",
        "/api/v1/notifications/ack",
    ):
        assert path in document["paths"]


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_every_reference_in_the_description_resolves() -> None:
    document = assemble()
    for ref in _refs(document):
        target: object = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict), ref
            assert part in target, ref
            target = target[part]


def test_two_fragments_describing_one_path_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("paths:\n  /api/v1/x: {get: {}}\n")
    (tmp_path / "b.yaml").write_text("paths:\n  /api/v1/x: {post: {}}\n")
    with pytest.raises(ConfigError, match=r"b\.yaml: path /api/v1/x defined twice"):
        assemble(tmp_path)


def test_every_operation_lists_the_answers_every_route_can_give() -> None:
    document = assemble()
    for route, item in document["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            assert {"400", "401"} <= statuses, (method, route)
            if "requestBody" in operation:
                assert {"413", "422"} <= statuses, (method, route)


def test_a_fragment_s_own_description_of_a_common_status_is_kept(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "paths:\n  /api/v1/x:\n    get:\n      responses:\n        '400': {description: mine}\n"
    )
    responses = assemble(tmp_path)["paths"]["/api/v1/x"]["get"]["responses"]
    assert responses["400"] == {"description": "mine"}
    assert responses["401"] == {"$ref": "#/components/responses/Unauthorized"}
