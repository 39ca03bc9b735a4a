"""Importing customers into the built-in CRM from the DESIGN.md JSON shape: all or nothing.

``validate`` reads the whole document and returns every problem as
``customers[3].phones[0].number: not a valid phone number``; only a document
without problems is written, in one transaction. A ref already on file is
replaced (its rows rewritten, its internal id and creation time kept); a new
ref is created. Exported records (with ``holds`` and ``erased_categories``)
import back unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend import crypto
from backend.crm.builtin import customer_by_ref
from backend.models.crm import (
    Customer,
    Email,
    ErasedCategory,
    HoldRow,
    IdentityDocument,
    MarketingConsent,
    Phone,
    PostalAddress,
    ProductRow,
    TransactionRow,
)
from backend.validation import (
    check_address,
    email_key,
    looks_like_full_pan,
    normalize_email,
    normalize_phone,
)
from common.clock import Clock
from common.vocabulary.categories import CATEGORIES
from common.vocabulary.locales import SHIPPED_LOCALES
from common.vocabulary.marketing_channels import MARKETING_CHANNELS
from common.vocabulary.product_kinds import PRODUCT_KINDS

_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CURRENCY = re.compile(r"[A-Z]{3}")
# A card kept as the rules allow: BIN (6 digits), masked middle, last 4.
_MASKED_CARD = re.compile(r"\d{6}[*•Xx]{2,9}\d{4}")
_KNOWN_KEYS = frozenset(
    {
        "ref", "name", "language", "phones", "emails", "address", "marketing",
        "products", "transactions", "documents", "holds", "erased_categories",
    }
)  # fmt: skip


@dataclass
class Problems:
    """Every problem found, each as ``path: message``."""

    lines: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")


def _text(value: Any, path: str, problems: Problems, *, limit: int = 200) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.add(path, "must be a non-empty text")
        return None
    if len(value) > limit:
        problems.add(path, f"longer than {limit} characters")
        return None
    return value.strip()


def _date(value: Any, path: str, problems: Problems, *, nullable: bool = False) -> date | None:
    if value is None and nullable:
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problems.add(path, "not a date (YYYY-MM-DD)" + (" or null" if nullable else ""))
    return None


def _list(value: Any, path: str, problems: Problems) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(path, "must be a list")
        return []
    return value


def _objects(value: Any, path: str, problems: Problems) -> list[tuple[str, dict[str, Any]]]:
    """The list's items that are objects, with their paths; others reported."""
    items = []
    for i, item in enumerate(_list(value, path, problems)):
        if isinstance(item, dict):
            items.append((f"{path}[{i}]", item))
        else:
            problems.add(f"{path}[{i}]", "must be an object")
    return items


def _primary(items: list[dict[str, Any]], path: str, problems: Problems) -> None:
    flags = [item.get("primary", False) for item in items]
    for i, flag in enumerate(flags):
        if not isinstance(flag, bool):
            problems.add(f"{path}[{i}].primary", "must be true or false")
    if sum(1 for f in flags if f is True) > 1:
        problems.add(path, "more than one is marked primary")


def _customer(path: str, raw: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """Check one customer; return it normalised (phones in E.164, …)."""
    out: dict[str, Any] = {}
    for key in sorted(set(raw) - _KNOWN_KEYS):
        problems.add(f"{path}.{key}", "unknown field")
    ref = raw.get("ref")
    if not isinstance(ref, str) or not _REF.fullmatch(ref):
        problems.add(f"{path}.ref", "must be 1–64 letters, digits, '.', '_' or '-'")
    out["ref"] = ref
    erased_contact = "contact" in (raw.get("erased_categories") or [])
    if erased_contact and raw.get("name") == "":
        out["name"] = ""  # anonymised by an erasure, as exported
    else:
        out["name"] = _text(raw.get("name"), f"{path}.name", problems)
    language = raw.get("language")
    if language not in SHIPPED_LOCALES:
        problems.add(f"{path}.language", f"must be one of {', '.join(SHIPPED_LOCALES)}")
    out["language"] = language

    phones, raw_phones = [], _objects(raw.get("phones"), f"{path}.phones", problems)
    for p, item in raw_phones:
        number = normalize_phone(item.get("number"))
        if number is None:
            problems.add(f"{p}.number", "not a valid phone number")
        phones.append({"number": number, "primary": item.get("primary") is True})
    _primary([item for _, item in raw_phones], f"{path}.phones", problems)
    out["phones"] = phones

    emails, raw_emails = [], _objects(raw.get("emails"), f"{path}.emails", problems)
    for p, item in raw_emails:
        address = normalize_email(item.get("address"))
        if address is None:
            problems.add(f"{p}.address", "not a valid email address")
        emails.append({"address": address, "primary": item.get("primary") is True})
    _primary([item for _, item in raw_emails], f"{path}.emails", problems)
    out["emails"] = emails

    out["address"] = None
    if raw.get("address") is not None:
        address_value, fields = check_address(raw.get("address"))
        for name in fields:
            suffix = "" if name == "address" else f".{name}"
            problems.add(f"{path}.address{suffix}", "not a valid postal address field")
        out["address"] = address_value

    marketing = raw.get("marketing") or {}
    if not isinstance(marketing, dict):
        problems.add(f"{path}.marketing", "must be an object")
        marketing = {}
    for channel, value in marketing.items():
        if channel not in MARKETING_CHANNELS:
            problems.add(f"{path}.marketing.{channel}", "unknown channel")
        elif not isinstance(value, bool):
            problems.add(f"{path}.marketing.{channel}", "must be true or false")
    out["marketing"] = {c: marketing.get(c) is True for c in MARKETING_CHANNELS}

    products, product_ids = [], set()
    for p, item in _objects(raw.get("products"), f"{path}.products", problems):
        kind = item.get("kind")
        if kind not in PRODUCT_KINDS:
            problems.add(f"{p}.kind", f"unknown product kind; one of {', '.join(PRODUCT_KINDS)}")
        pid = _text(item.get("id"), f"{p}.id", problems, limit=64)
        if pid is not None and looks_like_full_pan(pid):
            problems.add(
                f"{p}.id", "a full card number; keep BIN and last 4 only (411111******1111)"
            )
        elif pid is not None and kind == "card" and not _MASKED_CARD.fullmatch(pid):
            problems.add(f"{p}.id", "a card must be BIN and last 4 only (411111******1111)")
        opened = _date(item.get("opened"), f"{p}.opened", problems)
        closed = _date(item.get("closed"), f"{p}.closed", problems, nullable=True)
        if opened and closed and closed < opened:
            problems.add(f"{p}.closed", "before the product was opened")
        if pid in product_ids:
            problems.add(f"{p}.id", "the same product is listed twice")
        product_ids.add(pid)
        products.append({"kind": kind, "id": pid, "opened": opened, "closed": closed})
    out["products"] = products

    transactions = []
    for p, item in _objects(raw.get("transactions"), f"{path}.transactions", problems):
        booked = _date(item.get("date"), f"{p}.date", problems)
        amount = item.get("amount")
        try:
            if not isinstance(amount, str) or not Decimal(amount).is_finite():
                raise InvalidOperation
        except InvalidOperation:
            problems.add(f"{p}.amount", 'must be a decimal number as text, e.g. "-12.50"')
        currency = item.get("currency")
        if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            problems.add(f"{p}.currency", "must be a three-letter ISO 4217 code")
        product = item.get("product")
        if product not in product_ids:
            problems.add(f"{p}.product", "names no product of this customer")
        transactions.append(
            {"date": booked, "amount": amount, "currency": currency, "product": product}
        )
    out["transactions"] = transactions

    documents = []
    for p, item in _objects(raw.get("documents"), f"{path}.documents", problems):
        kind = item.get("kind")
        if not isinstance(kind, str) or not _KIND.fullmatch(kind):
            problems.add(f"{p}.kind", "must be a lower-case word such as passport_copy")
        collected = _date(item.get("collected"), f"{p}.collected", problems)
        documents.append({"kind": kind, "collected": collected})
    out["documents"] = documents

    holds = []
    for p, item in _objects(raw.get("holds"), f"{path}.holds", problems):
        if item.get("category") not in CATEGORIES:
            problems.add(f"{p}.category", f"must be one of {', '.join(CATEGORIES)}")
        basis = _text(item.get("basis"), f"{p}.basis", problems, limit=64)
        until = _date(item.get("until"), f"{p}.until", problems, nullable=True)
        holds.append(
            {
                "category": item.get("category"),
                "basis": basis,
                "until": until,
                "while_open": item.get("while_open"),
            }
        )
    out["holds"] = holds

    erased = _list(raw.get("erased_categories"), f"{path}.erased_categories", problems)
    for i, category in enumerate(erased):
        if category not in CATEGORIES:
            problems.add(
                f"{path}.erased_categories[{i}]", f"must be one of {', '.join(CATEGORIES)}"
            )
    out["erased_categories"] = sorted(set(c for c in erased if isinstance(c, str)))
    return out


def validate(document: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """All customers normalised, and every problem as ``path: message`` (empty when fine)."""
    problems = Problems()
    if not isinstance(document, dict) or not isinstance(document.get("customers"), list):
        problems.add("customers", 'the file must be an object {"customers": [...]}')
        return [], problems.lines
    customers = []
    seen: set[str] = set()
    for path, raw in _objects(document["customers"], "customers", problems):
        customer = _customer(path, raw, problems)
        if customer["ref"] in seen:
            problems.add(f"{path}.ref", "the same ref appears twice in this file")
        if isinstance(customer["ref"], str):
            seen.add(customer["ref"])
        customers.append(customer)
    return customers, problems.lines


async def apply(
    sessions: async_sessionmaker[AsyncSession], customers: list[dict[str, Any]], clock: Clock
) -> tuple[int, int]:
    """Write validated customers in one transaction; return (created, replaced)."""
    created = replaced = 0
    async with sessions() as session, session.begin():
        for data in customers:
            row = await customer_by_ref(session, data["ref"])
            if row is None:
                row = Customer(
                    ref=data["ref"],
                    name=data["name"],
                    language=data["language"],
                    created_at=clock.now(),
                )
                session.add(row)
                await session.flush()
                created += 1
            else:
                row.name, row.language = data["name"], data["language"]
                for model in _CHILDREN:
                    await session.execute(delete(model).where(model.customer_id == row.id))
                replaced += 1
            _add_children(session, row.id, data, clock)
    return created, replaced


_CHILDREN: tuple[Any, ...] = (
    Phone, Email, PostalAddress, MarketingConsent, ProductRow, TransactionRow,
    IdentityDocument, HoldRow, ErasedCategory,
)  # fmt: skip


def _add_children(session: AsyncSession, cid: int, data: dict[str, Any], clock: Clock) -> None:
    keyring = crypto.current()
    for p in data["phones"]:
        index = keyring.blind_index("phone", p["number"])
        session.add(
            Phone(customer_id=cid, number=p["number"], number_index=index, is_primary=p["primary"])
        )
    for e in data["emails"]:
        index = keyring.blind_index("email", email_key(e["address"]))
        session.add(
            Email(
                customer_id=cid, address=e["address"], address_index=index, is_primary=e["primary"]
            )
        )
    if (a := data["address"]) is not None:
        session.add(
            PostalAddress(
                customer_id=cid,
                line1=a.line1,
                line2=a.line2,
                city=a.city,
                postcode=a.postcode,
                country=a.country,
            )
        )
    for channel, granted in data["marketing"].items():
        session.add(MarketingConsent(customer_id=cid, channel=channel, granted=granted))
    for p in data["products"]:
        session.add(
            ProductRow(
                customer_id=cid,
                kind=p["kind"],
                product_id=p["id"],
                opened=p["opened"],
                closed=p["closed"],
            )
        )
    for t in data["transactions"]:
        session.add(
            TransactionRow(
                customer_id=cid,
                booked=t["date"],
                amount=t["amount"],
                currency=t["currency"],
                product_id=t["product"],
            )
        )
    for d in data["documents"]:
        session.add(IdentityDocument(customer_id=cid, kind=d["kind"], collected=d["collected"]))
    for h in data["holds"]:
        session.add(
            HoldRow(
                customer_id=cid,
                category=h["category"],
                basis=h["basis"],
                until=h["until"],
                while_open=h["while_open"],
                created_at=clock.now(),
            )
        )
    for category in data["erased_categories"]:
        session.add(ErasedCategory(customer_id=cid, category=category, erased_at=clock.now()))
