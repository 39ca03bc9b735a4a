"""``datadesk crm import / export / seed-demo``: all or nothing, every problem with its exact path."""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from backend.crm.builtin import BuiltinCrm
from backend.crm.cli import export_command, import_command, seed_demo_command
from backend.crm.demo import demo_document, well_known
from backend.crm.importer import validate
from backend.services import open_services
from backend.settings import Settings


def _write(tmp_path: Path, document: Any, name: str = "crm.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def _import(settings: Settings, path: Path) -> int:
    return import_command(argparse.Namespace(file=str(path)), settings)


def _export_all(settings: Settings, refs: list[str]) -> list[dict[str, object] | None]:
    async def run() -> list[dict[str, object] | None]:
        services = await open_services(settings)
        try:
            crm = BuiltinCrm(services.sessions, services.clock)
            return [await crm.export(ref) for ref in refs]
        finally:
            await services.close()

    return asyncio.run(run())


def _broken_document() -> dict[str, Any]:
    customers = copy.deepcopy(well_known()[:5])
    customers[3]["phones"][0]["number"] = "+371 123"
    customers[1]["emails"] = [{"address": "not-an-email", "primary": True}]
    customers[1]["products"][1]["id"] = "4111 1111 1111 1111"
    customers[0]["language"] = "de"
    customers[2]["transactions"] = [
        {"date": "2024-13-01", "amount": 12.5, "currency": "eur", "product": "X"}
    ]
    customers[4]["ref"] = customers[0]["ref"]
    return {"customers": customers}


def test_a_bad_file_is_reported_line_by_line_with_exact_paths_and_nothing_is_written(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = _write(tmp_path, _broken_document())
    assert _import(settings, path) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}: customers[0].language: must be one of en, lv, ru, zh_Hans, zh_Hant",
        f"{path}: customers[1].emails[0].address: not a valid email address",
        f"{path}: customers[1].products[1].id: a full card number; keep BIN and last 4 only (411111******1111)",
        f"{path}: customers[2].transactions[0].date: not a date (YYYY-MM-DD)",
        f'{path}: customers[2].transactions[0].amount: must be a decimal number as text, e.g. "-12.50"',
        f"{path}: customers[2].transactions[0].currency: must be a three-letter ISO 4217 code",
        f"{path}: customers[2].transactions[0].product: names no product of this customer",
        f"{path}: customers[3].phones[0].number: not a valid phone number",
        f"{path}: customers[4].ref: the same ref appears twice in this file",
    ]
    assert _export_all(settings, ["C-1001", "C-1002"]) == [None, None]


def test_an_import_is_all_or_nothing_even_when_one_customer_is_bad(
    settings: Settings, tmp_path: Path
):
    document = {"customers": copy.deepcopy(well_known())}
    document["customers"][-1]["address"] = {
        "line1": "x",
        "city": "Rīga",
        "postcode": "Rīga",
        "country": "LV",
    }
    assert _import(settings, _write(tmp_path, document)) == 1
    assert _export_all(settings, ["C-1001"]) == [None]


def test_a_file_that_is_not_json_says_where(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = tmp_path / "bad.json"
    path.write_text('{"customers": [\n  {"ref": "C-1",}\n]}')
    assert _import(settings, path) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}: line 2 column ")
    assert _import(settings, tmp_path / "missing.json") == 1
    assert _import(settings, _write(tmp_path, [1, 2], "list.json")) == 1


def test_known_refs_are_replaced_and_new_ones_created(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert _import(settings, _write(tmp_path, {"customers": well_known()[:2]})) == 0
    changed = copy.deepcopy(well_known()[:3])
    changed[0]["phones"] = [{"number": "+37129999999", "primary": True}]
    changed[0]["products"] = changed[0]["products"][:1]
    changed[0]["transactions"] = changed[0]["transactions"][:1]
    assert _import(settings, _write(tmp_path, {"customers": changed})) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("1 customers created, 2 replaced")
    anna, _, james = _export_all(settings, ["C-1001", "C-1002", "C-1003"])
    assert anna is not None
    assert james is not None
    assert anna["phones"] == [{"number": "+37129999999", "primary": True}]
    assert len(anna["products"]) == 1  # type: ignore[arg-type]


def test_an_unknown_product_kind_is_refused_with_the_kinds_there_are(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    customer = copy.deepcopy(well_known()[1])
    customer["products"][0]["kind"] = "spaceship"
    path = _write(tmp_path, {"customers": [customer]})
    assert _import(settings, path) == 1
    assert capsys.readouterr().err.strip() == (
        f"{path}: customers[0].products[0].kind: unknown product kind; "
        "one of current_account, savings_account, card, loan"
    )


def test_a_card_must_be_kept_as_bin_and_last_four(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    customer = copy.deepcopy(well_known()[1])
    customer["products"][1]["id"] = "4111-1111"
    path = _write(tmp_path, {"customers": [customer]})
    assert _import(settings, path) == 1
    assert capsys.readouterr().err.strip() == (
        f"{path}: customers[0].products[1].id: a card must be BIN and last 4 only (411111******1111)"
    )


def test_an_export_prints_a_file_that_imports_back_unchanged(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert _import(settings, _write(tmp_path, {"customers": well_known()})) == 0
    capsys.readouterr()
    assert export_command(argparse.Namespace(ref="C-1001"), settings) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [c["ref"] for c in printed["customers"]] == ["C-1001"]
    assert set(printed["customers"][0]) >= {
        "holds",
        "erased_categories",
        "products",
        "transactions",
    }
    assert _import(settings, _write(tmp_path, printed, "again.json")) == 0
    assert _export_all(settings, ["C-1001"]) == printed["customers"]
    assert export_command(argparse.Namespace(ref="C-0000"), settings) == 1


def test_the_demo_seed_is_deterministic_and_idempotent(
    settings: Settings, capsys: pytest.CaptureFixture[str]
):
    document = demo_document()
    assert document == demo_document()
    refs = [c["ref"] for c in document["customers"]]
    assert len(refs) >= 30
    assert {c["language"] for c in document["customers"]} == {
        "en",
        "lv",
        "ru",
        "zh_Hans",
        "zh_Hant",
    }
    assert any(all(p["closed"] for p in c["products"]) for c in document["customers"])
    assert any(not c["emails"] for c in document["customers"])
    assert seed_demo_command(argparse.Namespace(), settings) == 0
    first = _export_all(settings, refs)
    assert seed_demo_command(argparse.Namespace(), settings) == 0
    assert _export_all(settings, refs) == first
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith(f"demo customers: 0 created, {len(refs)} already there left as they are")
    )


def test_seeding_again_leaves_a_changed_demo_customer_as_it_is(
    settings: Settings, tmp_path: Path
) -> None:
    anna = {**well_known()[0], "emails": [{"address": "anna.new@example.lv", "primary": True}]}
    assert _import(settings, _write(tmp_path, {"customers": [anna]})) == 0
    assert seed_demo_command(argparse.Namespace(), settings) == 0
    [kept, other] = _export_all(settings, [anna["ref"], "C-1002"])
    assert kept is not None
    assert kept["emails"] == [{"address": "anna.new@example.lv", "primary": True}]
    assert other is not None


def test_a_customer_after_an_erasure_exports_and_imports_back(settings: Settings, tmp_path: Path):
    from backend.crm.connector import Hold

    assert _import(settings, _write(tmp_path, {"customers": well_known()[:1]})) == 0

    async def erase() -> None:
        services = await open_services(settings)
        try:
            crm = BuiltinCrm(services.sessions, services.clock)
            hold = Hold("transactions", "eu_aml_records", date(2029, 6, 30))
            await crm.erase(
                "C-1001", frozenset({"contact", "marketing"}), (hold,), idempotency_key="DD-E"
            )
        finally:
            await services.close()

    asyncio.run(erase())
    [before] = _export_all(settings, ["C-1001"])
    assert before is not None
    assert before["name"] == ""
    assert _import(settings, _write(tmp_path, {"customers": [before]}, "erased.json")) == 0
    assert _export_all(settings, ["C-1001"]) == [before]


def test_the_documented_example_file_imports_as_it_stands() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "crm-json.md").read_text("utf-8")
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    customers, problems = validate(json.loads(example))
    assert problems == []
    assert [c["ref"] for c in customers] == ["C-1001"]
    assert customers[0]["products"][1]["closed"] == date(2024, 6, 30)
