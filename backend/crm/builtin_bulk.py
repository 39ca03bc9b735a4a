"""The built-in CRM's contact changes and opt-outs for a whole batch, in a few statements.

``BuiltinCrm`` applies one change in one transaction with its idempotency
key, through the ORM: some eight statements and an object per row each. A
worker's batch (``backend.ledger.one_commit``) instead reads and writes every
change of the batch at once, grouped by kind, in the caller's transaction:

- ``customers``: the customer ids of the refs given (one select);
- ``applied``: which idempotency keys were applied before (one select);
- ``on_file``: each customer's primary (else first) phone and email, and
  postal address, as they are before the change (three selects);
- ``apply``: every change, a delete and a multi-row insert per table touched,
  and the idempotency keys (one insert).

The effect is the one ``BuiltinCrm``'s methods have (the same rows, the same
encryption, the same blind indexes). A batch names a customer at most once
(``apply`` raises ``ValueError`` otherwise, before writing), and the caller
leaves out the changes whose key was applied. Two workers racing on one key:
the loser's key insert fails (``IntegrityError``) and its caller rolls the
batch back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Table, and_, delete, insert, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from backend import crypto
from backend.crm.connector import Address
from backend.models.crm import (
    AppliedChange,
    Customer,
    Email,
    MarketingConsent,
    Phone,
    PostalAddress,
)
from backend.validation import email_key
from common.vocabulary.marketing_channels import MARKETING_CHANNELS, MarketingChannel

_PHONES: Table = Phone.__table__  # type: ignore[assignment]
_EMAILS: Table = Email.__table__  # type: ignore[assignment]
_ADDRESSES: Table = PostalAddress.__table__  # type: ignore[assignment]
_CONSENTS: Table = MarketingConsent.__table__  # type: ignore[assignment]
_APPLIED: Table = AppliedChange.__table__  # type: ignore[assignment]

Operation = Literal["update_phone", "update_email", "update_address", "set_marketing"]


@dataclass(frozen=True)
class Change:
    """One change of a batch: ``value`` is an E.164 phone, an email, an ``Address``, or consent."""

    key: str
    ref: str
    customer_id: int
    operation: Operation
    value: str | Address | Mapping[MarketingChannel, bool]


@dataclass(frozen=True)
class OnFile:
    """A customer's contact before a change: primary (else first) phone and email, address."""

    phone: str | None
    email: str | None
    address: Address | None


async def customers(session: AsyncSession, refs: Collection[str]) -> dict[str, int]:
    """The customer id of each ref the CRM has."""
    if not refs:
        return {}
    rows = await session.execute(select(Customer.ref, Customer.id).where(Customer.ref.in_(refs)))
    return {ref: cid for ref, cid in rows.tuples()}


async def applied(session: AsyncSession, keys: Collection[str]) -> set[str]:
    """The idempotency keys of ``keys`` applied before."""
    if not keys:
        return set()
    rows = await session.scalars(
        select(AppliedChange.idempotency_key).where(AppliedChange.idempotency_key.in_(keys))
    )
    return set(rows)


async def on_file(session: AsyncSession, ids: Collection[int]) -> dict[int, OnFile]:
    """What each customer of ``ids`` has on file now (``contact_and_address``, for many)."""
    if not ids:
        return {}
    phones: dict[int, str] = {}
    for cid, number in await session.execute(
        select(Phone.customer_id, Phone.number)
        .where(Phone.customer_id.in_(ids))
        .order_by(Phone.customer_id, Phone.is_primary.desc(), Phone.id)
    ):
        phones.setdefault(cid, number)
    emails: dict[int, str] = {}
    for cid, address in await session.execute(
        select(Email.customer_id, Email.address)
        .where(Email.customer_id.in_(ids))
        .order_by(Email.customer_id, Email.is_primary.desc(), Email.id)
    ):
        emails.setdefault(cid, address)
    addresses = {
        row.customer_id: Address(
            line1=row.line1,
            line2=row.line2,
            city=row.city,
            postcode=row.postcode,
            country=row.country,
        )
        for row in await session.execute(
            select(
                PostalAddress.customer_id,
                PostalAddress.line1,
                PostalAddress.line2,
                PostalAddress.city,
                PostalAddress.postcode,
                PostalAddress.country,
            ).where(PostalAddress.customer_id.in_(ids))
        )
    }
    return {cid: OnFile(phones.get(cid), emails.get(cid), addresses.get(cid)) for cid in ids}


def _sealed(value: str | None, table: str, column: str, row: object) -> str | None:
    return None if value is None else crypto.for_row(value, table, column, [row])


async def _add_primary(
    session: AsyncSession,
    table: Table,
    column: str,
    index: str,
    changes: Sequence[Change],
    key: Callable[[str], str],
) -> None:
    """Make each change's phone or email its customer's primary one: sealed, blind-indexed."""
    keyring = crypto.current()
    values = {c.customer_id: str(c.value) for c in changes}
    await _replace_primary(
        session, table, {cid: keyring.blind_indexes(index, key(v)) for cid, v in values.items()}
    )
    rows = []
    for cid, value in values.items():
        uid = crypto.new_row_uid()
        rows.append(
            {
                "customer_id": cid,
                "row_uid": uid,
                column: _sealed(value, table.name, column, uid),
                f"{column}_index": keyring.blind_index(index, key(value)),
                "is_primary": True,
            }
        )
    await session.execute(insert(table), rows)


async def apply(session: AsyncSession, changes: Sequence[Change], now: datetime) -> None:
    """Make every change of ``changes`` and record its key; see the module docstring."""
    if not changes:
        return
    if len({change.customer_id for change in changes}) != len(changes):
        raise ValueError("a batch changes each customer at most once")
    by: dict[str, list[Change]] = {}
    for change in changes:
        by.setdefault(change.operation, []).append(change)
    if phones := by.get("update_phone"):
        await _add_primary(session, _PHONES, "number", "phone", phones, str)
    if emails := by.get("update_email"):
        await _add_primary(session, _EMAILS, "address", "email", emails, email_key)
    if moves := by.get("update_address"):
        ids = [c.customer_id for c in moves]
        await session.execute(delete(PostalAddress).where(PostalAddress.customer_id.in_(ids)))
        rows = []
        for change in moves:
            cid, new = change.customer_id, change.value
            assert isinstance(new, Address)
            rows.append(
                {
                    "customer_id": cid,
                    "line1": _sealed(new.line1, "crm_addresses", "line1", cid),
                    "line2": _sealed(new.line2, "crm_addresses", "line2", cid),
                    "city": _sealed(new.city, "crm_addresses", "city", cid),
                    "postcode": _sealed(new.postcode, "crm_addresses", "postcode", cid),
                    "country": new.country,
                }
            )
        await session.execute(insert(_ADDRESSES), rows)
    if consents := by.get("set_marketing"):
        pairs = []
        for change in consents:
            assert isinstance(change.value, Mapping)
            for channel, granted in change.value.items():
                if channel not in MARKETING_CHANNELS:
                    raise ValueError(f"unknown marketing channel {channel!r}")
                pairs.append((change.customer_id, channel, granted))
        if pairs:
            # Replaced rather than updated: the same rows as BuiltinCrm.set_marketing leaves.
            await session.execute(
                delete(MarketingConsent).where(
                    tuple_(MarketingConsent.customer_id, MarketingConsent.channel).in_(
                        [(cid, channel) for cid, channel, _ in pairs]
                    )
                )
            )
            await session.execute(
                insert(_CONSENTS),
                [{"customer_id": c, "channel": ch, "granted": g} for c, ch, g in pairs],
            )
    await session.execute(
        insert(_APPLIED),
        [
            {
                "idempotency_key": change.key,
                "customer_ref": change.ref,
                "operation": change.operation,
                "applied_at": now,
            }
            for change in changes
        ],
    )


async def _replace_primary(
    session: AsyncSession,
    table: Table,
    indexes: Mapping[int, Sequence[str]],
) -> None:
    """Delete each customer's primary phone (email), and the new one if it is on file already."""
    column = table.c
    index = column["number_index" if table is _PHONES else "address_index"]
    already = [
        and_(column.customer_id == cid, index.in_(list(digests)))
        for cid, digests in indexes.items()
    ]
    await session.execute(
        delete(table).where(
            or_(
                and_(column.customer_id.in_(list(indexes)), column.is_primary.is_(True)),
                *already,
            )
        )
    )
