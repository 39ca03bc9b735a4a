"""The CRM JSON shape (DESIGN.md "CRM import / export") to and from connector values.

Every connector speaks this shape at its edge: the built-in CRM exports it,
the HTTP CRM receives it, and both turn it into a ``CustomerRecord`` here.
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from backend.crm.connector import Address, CustomerRecord, Hold, Product
from common.vocabulary.categories import CATEGORIES, Category
from common.vocabulary.marketing_channels import MARKETING_CHANNELS


def address_json(address: Address | None) -> dict[str, str] | None:
    """An address as JSON; ``line2`` only when there is one."""
    if address is None:
        return None
    data = {"line1": address.line1}
    if address.line2:
        data["line2"] = address.line2
    data.update(city=address.city, postcode=address.postcode, country=address.country)
    return data


def address_from_json(data: Any) -> Address | None:
    """The inverse of ``address_json``."""
    if not data:
        return None
    return Address(
        line1=str(data["line1"]),
        line2=data.get("line2") or None,
        city=str(data["city"]),
        postcode=str(data["postcode"]),
        country=str(data["country"]),
    )


def hold_json(hold: Hold) -> dict[str, str | None]:
    """A hold as JSON: ``until`` is null when a product's being open keeps the data."""
    return {
        "category": hold.category,
        "basis": hold.basis,
        "until": hold.until.isoformat() if hold.until else None,
        "while_open": hold.while_open,
    }


def hold_from_json(data: Any) -> Hold:
    """The inverse of ``hold_json``."""
    category = str(data["category"])
    if category not in CATEGORIES:
        raise ValueError(f"unknown data category {category!r}")
    until = data.get("until")
    return Hold(
        category=category,
        basis=str(data["basis"]),
        until=date.fromisoformat(until) if until else None,
        while_open=data.get("while_open"),
    )


def record_from_export(data: dict[str, Any]) -> CustomerRecord:
    """A ``CustomerRecord`` from one customer in the export shape."""
    marketing = data.get("marketing") or {}
    transactions = data.get("transactions") or []
    last = max((date.fromisoformat(t["date"]) for t in transactions), default=None)
    return CustomerRecord(
        ref=str(data["ref"]),
        name=str(data.get("name") or ""),
        language=str(data.get("language") or "en"),
        phones=tuple((str(p["number"]), bool(p.get("primary"))) for p in data.get("phones") or []),
        emails=tuple((str(e["address"]), bool(e.get("primary"))) for e in data.get("emails") or []),
        address=address_from_json(data.get("address")),
        marketing={c: bool(marketing.get(c, False)) for c in MARKETING_CHANNELS},
        products=tuple(
            Product(
                kind=str(p["kind"]),
                id=str(p["id"]),
                opened=date.fromisoformat(p["opened"]),
                closed=date.fromisoformat(p["closed"]) if p.get("closed") else None,
            )
            for p in data.get("products") or []
        ),
        last_transaction=last,
        erased_categories=frozenset(
            cast(Category, c) for c in data.get("erased_categories") or [] if c in CATEGORIES
        ),
        holds=tuple(hold_from_json(h) for h in data.get("holds") or []),
    )
