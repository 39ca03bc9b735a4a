"""``datadesk crm import FILE`` / ``crm export REF`` / ``crm seed-demo`` on the built-in CRM."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from backend.crm import importer
from backend.crm.builtin import BuiltinCrm, customer_by_ref
from backend.crm.demo import demo_document
from backend.crypto import CryptoError
from backend.services import open_services
from backend.settings import Settings
from common.clock import SystemClock
from common.logs import configure


def read_document(path: Path) -> tuple[Any, list[str]]:
    """The parsed JSON file, or the problems that stop it being read."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [f"cannot read the file: {exc.strerror}"]
    except UnicodeDecodeError:
        return None, ["not UTF-8 text"]
    try:
        return json.loads(raw), []
    except json.JSONDecodeError as exc:
        return None, [f"line {exc.lineno} column {exc.colno}: not valid JSON: {exc.msg}"]


async def import_document(settings: Settings, document: Any) -> tuple[list[str], int, int]:
    """Validate then write ``document``; return (problems, created, replaced)."""
    customers, problems = importer.validate(document)
    if problems:
        return problems, 0, 0
    services = await open_services(settings, clock=SystemClock())
    try:
        created, replaced = await importer.apply(services.sessions, customers, services.clock)
    finally:
        await services.close()
    return [], created, replaced


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    """Import a CRM JSON file, all or nothing; every problem on its own line, exit 1."""
    configure(settings.log_level)
    document, problems = read_document(Path(args.file))
    if not problems:
        problems, created, replaced = asyncio.run(import_document(settings, document))
    if problems:
        for line in problems:
            print(f"{args.file}: {line}", file=sys.stderr)
        return 1
    print(f"{args.file}: {created} customers created, {replaced} replaced")
    return 0


async def _export(settings: Settings, ref: str) -> dict[str, object] | None:
    services = await open_services(settings)
    try:
        return await BuiltinCrm(services.sessions, services.clock).export(ref)
    finally:
        await services.close()


def export_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print one customer as ``{"customers": [record]}``, which imports back unchanged."""
    configure(settings.log_level)
    try:
        record = asyncio.run(_export(settings, args.ref))
    except CryptoError as exc:
        # Altered or moved in the database, or under a key not configured.
        print(f"datadesk crm export: {args.ref}: {exc}", file=sys.stderr)
        return 1
    if record is None:
        print(f"datadesk crm export: no customer with ref {args.ref}", file=sys.stderr)
        return 1
    print(json.dumps({"customers": [record]}, ensure_ascii=False, indent=2))
    return 0


async def seed_demo(settings: Settings) -> tuple[list[str], int, int]:
    """Create the demo customers not there yet; return (problems, created, left alone).

    A customer already in the CRM is left as it is: what a demo did to it (a
    changed email, an erasure) stays done when ``make demo`` runs again.
    """
    customers, problems = importer.validate(demo_document())
    if problems:
        return problems, 0, 0
    services = await open_services(settings, clock=SystemClock())
    try:
        async with services.sessions() as session:
            existing = {c["ref"] for c in customers if await customer_by_ref(session, c["ref"])}
        new = [c for c in customers if c["ref"] not in existing]
        created, _ = await importer.apply(services.sessions, new, services.clock)
    finally:
        await services.close()
    return [], created, len(existing)


def seed_demo_command(args: argparse.Namespace, settings: Settings) -> int:
    """Load the demo customers that are not there yet; existing customers are left alone."""
    configure(settings.log_level)
    problems, created, kept = asyncio.run(seed_demo(settings))
    if problems:
        # The seed is ours: a problem here is a bug, reported like any bad file.
        for line in problems:
            print(f"demo seed: {line}", file=sys.stderr)
        return 1
    print(
        f"demo customers: {created} created, {kept} already there left as they are"
        " (see backend/crm/DEMO.md)"
    )
    return 0
