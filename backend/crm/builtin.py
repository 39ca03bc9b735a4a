"""The built-in SQL CRM: the default ``CrmConnector``, on the backend's own database.

Each change runs in one transaction that also writes its idempotency key to
``crm_applied_changes``; a key seen before makes the call a no-op, and two
workers racing on one key leave exactly one effect (the loser's insert fails
and its whole transaction rolls back).

Chat transcripts are not CRM data: erasing ``chat_history`` calls the
``on_erase_chat_history(ref)`` hook the console registers. It runs before the
CRM transaction opens (SQLite has one writer) and must itself be idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend import crypto
from backend.crm.connector import Address, ContactOnFile, CustomerNotFound, CustomerRecord, Hold
from backend.crm.shape import address_json, hold_json, record_from_export
from backend.models.crm import (
    AppliedChange,
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
from backend.validation import email_key
from common.clock import Clock
from common.vocabulary.categories import Category
from common.vocabulary.marketing_channels import MARKETING_CHANNELS, MarketingChannel

log = logging.getLogger(__name__)

ChatHistoryHook = Callable[[str], Awaitable[None]]
Change = Callable[[AsyncSession, Customer], Awaitable[None]]


async def customer_by_ref(session: AsyncSession, ref: str) -> Customer | None:
    """The customer row for ``ref``, or None."""
    return (await session.execute(select(Customer).where(Customer.ref == ref))).scalar_one_or_none()


async def erase_category(session: AsyncSession, customer: Customer, category: Category) -> None:
    """Remove one category's rows of one customer (chat history lives elsewhere)."""
    cid = customer.id
    if category == "contact":
        await session.execute(delete(Phone).where(Phone.customer_id == cid))
        await session.execute(delete(Email).where(Email.customer_id == cid))
        await session.execute(delete(PostalAddress).where(PostalAddress.customer_id == cid))
        # The ref stays so held records keep their owner; the name goes.
        customer.name = ""
    elif category == "marketing":
        # No consent row reads as "no": the objection outlives the erasure.
        await session.execute(delete(MarketingConsent).where(MarketingConsent.customer_id == cid))
    elif category == "identity":
        await session.execute(delete(IdentityDocument).where(IdentityDocument.customer_id == cid))
    elif category == "products":
        await session.execute(delete(ProductRow).where(ProductRow.customer_id == cid))
    elif category == "transactions":
        await session.execute(delete(TransactionRow).where(TransactionRow.customer_id == cid))


async def mark_erased(
    session: AsyncSession, customer: Customer, category: Category, clock: Clock
) -> None:
    """Record that ``category`` was erased, replacing any hold on it."""
    await session.execute(
        delete(HoldRow).where(HoldRow.customer_id == customer.id, HoldRow.category == category)
    )
    if await session.get(ErasedCategory, (customer.id, category)) is None:
        session.add(
            ErasedCategory(customer_id=customer.id, category=category, erased_at=clock.now())
        )


# Set by ``joined``: the sessions of a transaction the CRM's reads and changes take part in.
_joined: ContextVar[async_sessionmaker[AsyncSession] | None] = ContextVar(
    "builtin_crm_joined", default=None
)


@contextmanager
def joined(sessions: async_sessionmaker[AsyncSession]) -> Iterator[None]:
    """Within this block (this task), every ``BuiltinCrm`` works through ``sessions``.

    ``backend.ledger.one_commit`` binds ``sessions`` to its transaction, so a
    request's change commits with its outcome.
    """
    token = _joined.set(sessions)
    try:
        yield
    finally:
        _joined.reset(token)


class BuiltinCrm:
    """``CrmConnector`` over the ``crm_*`` tables; see the module docstring."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        on_erase_chat_history: ChatHistoryHook | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.on_erase_chat_history = on_erase_chat_history

    async def find_by_phone(self, e164: str) -> str | None:
        """The customer ref whose phone on file is ``e164``, or None."""
        # Every configured key's digest: during a rotation a row may be on either.
        indexes = crypto.current().blind_indexes("phone", e164)
        async with self._session() as session:
            row = await session.execute(
                select(Customer.ref)
                .join(Phone, Phone.customer_id == Customer.id)
                .where(Phone.number_index.in_(indexes))
                .order_by(Phone.is_primary.desc(), Customer.id)
                .limit(1)
            )
            return row.scalar_one_or_none()

    async def contact_on_file(self, ref: str) -> ContactOnFile:
        """Primary phone and email on file; raises ``CustomerNotFound``."""
        async with self._session() as session:
            customer = await self._require(session, ref)
            return await _contact_on_file(session, customer)

    async def contact_and_address(self, ref: str) -> tuple[ContactOnFile, Address | None]:
        """Primary phone and email, and the postal address on file; raises ``CustomerNotFound``."""
        async with self._session() as session:
            # The customer and the address in one round trip: the worker's hot path.
            found = (
                await session.execute(
                    select(Customer, PostalAddress)
                    .outerjoin(PostalAddress, PostalAddress.customer_id == Customer.id)
                    .where(Customer.ref == ref)
                )
            ).first()
            if found is None:
                raise CustomerNotFound(f"no customer with ref {ref!r}")
            customer: Customer = found[0]
            row: PostalAddress | None = found[1]  # an outer join: None without an address
            on_file = await _contact_on_file(session, customer)
        if row is None:
            return on_file, None
        address = Address(
            line1=row.line1,
            line2=row.line2,
            city=row.city,
            postcode=row.postcode,
            country=row.country,
        )
        return on_file, address

    async def get(self, ref: str) -> CustomerRecord | None:
        """The customer's current record, or None."""
        data = await self.export(ref)
        return None if data is None else record_from_export(data)

    async def update_phone(self, ref: str, e164: str, *, idempotency_key: str) -> None:
        """Make ``e164`` the primary phone, replacing the previous primary."""

        async def change(session: AsyncSession, customer: Customer) -> None:
            await session.execute(
                delete(Phone).where(Phone.customer_id == customer.id, Phone.is_primary.is_(True))
            )
            keyring = crypto.current()
            index = keyring.blind_index("phone", e164)
            # The new number may already be on file as a secondary one, on any configured key.
            indexes = keyring.blind_indexes("phone", e164)
            await session.execute(
                delete(Phone).where(
                    Phone.customer_id == customer.id, Phone.number_index.in_(indexes)
                )
            )
            session.add(
                Phone(customer_id=customer.id, number=e164, number_index=index, is_primary=True)
            )

        await self._apply(ref, "update_phone", idempotency_key, change)

    async def update_email(self, ref: str, address: str, *, idempotency_key: str) -> None:
        """Make ``address`` the primary email, replacing the previous primary."""

        async def change(session: AsyncSession, customer: Customer) -> None:
            await session.execute(
                delete(Email).where(Email.customer_id == customer.id, Email.is_primary.is_(True))
            )
            keyring = crypto.current()
            index = keyring.blind_index("email", email_key(address))
            indexes = keyring.blind_indexes("email", email_key(address))
            await session.execute(
                delete(Email).where(
                    Email.customer_id == customer.id, Email.address_index.in_(indexes)
                )
            )
            session.add(
                Email(
                    customer_id=customer.id, address=address, address_index=index, is_primary=True
                )
            )

        await self._apply(ref, "update_email", idempotency_key, change)

    async def update_address(self, ref: str, address: Address, *, idempotency_key: str) -> None:
        """Replace the postal address."""

        async def change(session: AsyncSession, customer: Customer) -> None:
            await session.execute(
                delete(PostalAddress).where(PostalAddress.customer_id == customer.id)
            )
            session.add(
                PostalAddress(
                    customer_id=customer.id,
                    line1=address.line1,
                    line2=address.line2,
                    city=address.city,
                    postcode=address.postcode,
                    country=address.country,
                )
            )

        await self._apply(ref, "update_address", idempotency_key, change)

    async def set_marketing(
        self, ref: str, consent: dict[MarketingChannel, bool], *, idempotency_key: str
    ) -> None:
        """Set consent for the channels given; others stay as they are."""

        async def change(session: AsyncSession, customer: Customer) -> None:
            for channel, granted in consent.items():
                if channel not in MARKETING_CHANNELS:
                    raise ValueError(f"unknown marketing channel {channel!r}")
                row = await session.get(MarketingConsent, (customer.id, channel))
                if row is None:
                    session.add(
                        MarketingConsent(customer_id=customer.id, channel=channel, granted=granted)
                    )
                else:
                    row.granted = granted

        await self._apply(ref, "set_marketing", idempotency_key, change)

    async def erase(
        self,
        ref: str,
        erase: frozenset[Category],
        holds: tuple[Hold, ...],
        *,
        idempotency_key: str,
    ) -> None:
        """Erase ``erase``, record ``holds`` (restricted) and the erased categories."""
        if "chat_history" in erase and self.on_erase_chat_history is not None:
            async with self._session() as session:
                done = await session.get(AppliedChange, idempotency_key)
            if done is None:
                await self.on_erase_chat_history(ref)

        async def change(session: AsyncSession, customer: Customer) -> None:
            for category in sorted(erase):
                await erase_category(session, customer, category)
                await mark_erased(session, customer, category, self._clock)
            for hold in holds:
                await session.execute(
                    delete(HoldRow).where(
                        HoldRow.customer_id == customer.id, HoldRow.category == hold.category
                    )
                )
                session.add(
                    HoldRow(
                        customer_id=customer.id,
                        category=hold.category,
                        basis=hold.basis,
                        until=hold.until,
                        while_open=hold.while_open,
                        created_at=self._clock.now(),
                    )
                )

        await self._apply(ref, "erase", idempotency_key, change)

    async def purge_expired_holds(self, today: date) -> list[tuple[str, Category]]:
        """Erase held data whose hold ended before ``today``; return (ref, category) purged.

        Holds kept while a product is open have no date: the retention policy
        replaces them with a dated hold once the product closes.
        """
        async with self._session() as session:
            rows = await session.execute(
                select(Customer.ref, HoldRow.category)
                .join(Customer, Customer.id == HoldRow.customer_id)
                .where(HoldRow.until.is_not(None), HoldRow.until < today)
                .order_by(Customer.ref, HoldRow.category)
            )
            expired: list[tuple[str, Category]] = [(r, c) for r, c in rows.tuples()]  # type: ignore[misc]
        for ref, category in expired:
            if category == "chat_history" and self.on_erase_chat_history is not None:
                await self.on_erase_chat_history(ref)
        async with self._session() as session, session.begin():
            for ref, category in expired:
                customer = await customer_by_ref(session, ref)
                if customer is not None:
                    await erase_category(session, customer, category)
                    await mark_erased(session, customer, category, self._clock)
        if expired:
            log.info("purged %d expired holds", len(expired))
        return expired

    async def export(self, ref: str) -> dict[str, object] | None:
        """The customer in the CRM JSON shape, plus ``holds`` and ``erased_categories``."""
        async with self._session() as session:
            customer = await customer_by_ref(session, ref)
            if customer is None:
                return None
            return await export_customer(session, customer)

    async def access_export(self, ref: str) -> dict[str, Any] | None:
        """The whole record: the built-in CRM keeps nothing beyond the export shape."""
        async with self._session() as session:
            customer = await customer_by_ref(session, ref)
            if customer is None:
                return None
            return await export_customer(session, customer)

    def _session(self) -> AsyncSession:
        """A new session: of the transaction ``joined`` names, else of this CRM's own."""
        return (_joined.get() or self._sessions)()

    async def _require(self, session: AsyncSession, ref: str) -> Customer:
        customer = await customer_by_ref(session, ref)
        if customer is None:
            raise CustomerNotFound(f"no customer with ref {ref!r}")
        return customer

    async def _apply(self, ref: str, operation: str, key: str, change: Change) -> None:
        """Run ``change`` once per idempotency key, in one transaction with the key."""
        try:
            async with self._session() as session, session.begin():
                if await session.get(AppliedChange, key) is not None:
                    return
                customer = await self._require(session, ref)
                await change(session, customer)
                session.add(
                    AppliedChange(
                        idempotency_key=key,
                        customer_ref=ref,
                        operation=operation,
                        applied_at=self._clock.now(),
                    )
                )
        except IntegrityError:
            # Another worker applied the same key first; ours rolled back whole.
            async with self._session() as session:
                if await session.get(AppliedChange, key) is None:
                    raise


async def _contact_on_file(session: AsyncSession, customer: Customer) -> ContactOnFile:
    """The customer's primary (else first) phone and email, and language."""
    phones = await session.execute(
        select(Phone.number)
        .where(Phone.customer_id == customer.id)
        .order_by(Phone.is_primary.desc(), Phone.id)
        .limit(1)
    )
    emails = await session.execute(
        select(Email.address)
        .where(Email.customer_id == customer.id)
        .order_by(Email.is_primary.desc(), Email.id)
        .limit(1)
    )
    return ContactOnFile(
        phone=phones.scalar_one_or_none(),
        email=emails.scalar_one_or_none(),
        language=customer.language,
    )


async def export_customer(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    """One customer row and its children in the export shape."""
    cid = customer.id

    async def rows(model: Any, *order: Any) -> list[Any]:
        result = await session.execute(
            select(model).where(model.customer_id == cid).order_by(*order)
        )
        return list(result.scalars())

    phones = await rows(Phone, Phone.is_primary.desc(), Phone.id)
    emails = await rows(Email, Email.is_primary.desc(), Email.id)
    address = await session.get(PostalAddress, cid)
    consents = {
        c.channel: c.granted for c in await rows(MarketingConsent, MarketingConsent.channel)
    }
    products = await rows(ProductRow, ProductRow.opened, ProductRow.id)
    transactions = await rows(TransactionRow, TransactionRow.booked, TransactionRow.id)
    documents = await rows(IdentityDocument, IdentityDocument.collected, IdentityDocument.id)
    holds = await rows(HoldRow, HoldRow.category)
    erased = await rows(ErasedCategory, ErasedCategory.category)
    return {
        "ref": customer.ref,
        "name": customer.name,
        "language": customer.language,
        "phones": [{"number": p.number, "primary": p.is_primary} for p in phones],
        "emails": [{"address": e.address, "primary": e.is_primary} for e in emails],
        "address": address_json(
            Address(
                line1=address.line1,
                line2=address.line2,
                city=address.city,
                postcode=address.postcode,
                country=address.country,
            )
        )
        if address
        else None,
        "marketing": {c: consents.get(c, False) for c in MARKETING_CHANNELS},
        "products": [
            {
                "kind": p.kind,
                "id": p.product_id,
                "opened": p.opened.isoformat(),
                "closed": p.closed.isoformat() if p.closed else None,
            }
            for p in products
        ],
        "transactions": [
            {
                "date": t.booked.isoformat(),
                "amount": t.amount,
                "currency": t.currency,
                "product": t.product_id,
            }
            for t in transactions
        ],
        "documents": [{"kind": d.kind, "collected": d.collected.isoformat()} for d in documents],
        "holds": [
            hold_json(
                Hold(category=h.category, basis=h.basis, until=h.until, while_open=h.while_open)
            )
            for h in holds
        ],
        "erased_categories": [e.category for e in erased],
    }
