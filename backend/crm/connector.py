"""The CRM connector interface: everything the backend needs from a bank's customer records.

The built-in SQL CRM (``backend.crm.builtin``) is the default; a bank plugs in
its own system through ``backend.crm.http`` (same operations over JSON/HTTP).
The rest of the backend sees only this protocol.

Every change carries ``idempotency_key`` (the request reference): a connector
applies a change with a given key at most once, so a worker that dies after
the change and before marking the request done can safely run it again.
Failures to reach the CRM raise ``backend.errors.ConnectorError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from common.errors import DatadeskError
from common.vocabulary.categories import Category
from common.vocabulary.marketing_channels import MarketingChannel


class CustomerNotFound(DatadeskError):
    """The CRM has no customer with this ref; a change to them cannot be applied."""


class ExportUnsupported(DatadeskError):
    """The CRM cannot hand out a full copy of a customer (an access request goes to an agent)."""


@dataclass(frozen=True)
class Address:
    line1: str
    city: str
    postcode: str
    country: str
    line2: str | None = None


@dataclass(frozen=True)
class Product:
    kind: str  # current_account, savings_account, loan, card, …
    id: str  # an IBAN, a loan number, or for cards BIN + last 4 only
    opened: date
    closed: date | None


@dataclass(frozen=True)
class ContactOnFile:
    """Where one-time codes for this customer go; never leaves the backend."""

    phone: str | None
    email: str | None
    language: str


@dataclass(frozen=True)
class Hold:
    """Data kept after an erasure: restricted, erased when ``until`` passes (or the product closes)."""

    category: Category
    basis: str
    until: date | None
    while_open: str | None = None  # product id that keeps it, when ``until`` is None


@dataclass(frozen=True)
class CustomerRecord:
    """One customer as the backend reasons about them (retention, masking, /me)."""

    ref: str
    name: str
    language: str
    phones: tuple[tuple[str, bool], ...]  # (E.164, primary)
    emails: tuple[tuple[str, bool], ...]  # (address, primary)
    address: Address | None
    marketing: dict[MarketingChannel, bool]
    products: tuple[Product, ...]
    last_transaction: date | None
    erased_categories: frozenset[Category] = field(default_factory=frozenset)
    holds: tuple[Hold, ...] = ()


class CrmConnector(Protocol):
    async def find_by_phone(self, e164: str) -> str | None:
        """The customer ref whose phone on file is ``e164``, or None."""
        ...

    async def contact_on_file(self, ref: str) -> ContactOnFile:
        """Primary phone and email on file, for sending a one-time code."""
        ...

    async def get(self, ref: str) -> CustomerRecord | None:
        """The customer's current record, or None when there is no such customer."""
        ...

    async def contact_and_address(self, ref: str) -> tuple[ContactOnFile, Address | None]:
        """What ``contact_on_file`` answers and the postal address (None: none), in one look-up.

        Raises ``CustomerNotFound``.
        """
        ...

    async def update_phone(self, ref: str, e164: str, *, idempotency_key: str) -> None:
        """Make ``e164`` the primary phone."""
        ...

    async def update_email(self, ref: str, address: str, *, idempotency_key: str) -> None:
        """Make ``address`` the primary email."""
        ...

    async def update_address(self, ref: str, address: Address, *, idempotency_key: str) -> None:
        """Replace the postal address."""
        ...

    async def set_marketing(
        self, ref: str, consent: dict[MarketingChannel, bool], *, idempotency_key: str
    ) -> None:
        """Set consent for the channels given; others stay as they are."""
        ...

    async def erase(
        self,
        ref: str,
        erase: frozenset[Category],
        holds: tuple[Hold, ...],
        *,
        idempotency_key: str,
    ) -> None:
        """Erase or anonymise ``erase``; restrict and record ``holds`` (no further processing)."""
        ...

    async def purge_expired_holds(self, today: date) -> list[tuple[str, Category]]:
        """Erase held data whose hold ended before ``today``; return (ref, category) purged."""
        ...

    async def export(self, ref: str) -> dict[str, object] | None:
        """The customer in the CRM JSON shape, plus ``holds`` and ``erased_categories``."""
        ...

    async def access_export(self, ref: str) -> dict[str, Any] | None:
        """Everything held about the customer, in the export shape, for a copy of their data.

        Raises ``ExportUnsupported`` when this CRM cannot produce one.
        """
        ...
