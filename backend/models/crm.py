"""Tables of the built-in CRM (see backend/models/__init__.py).

Personal fields are ``Encrypted``; phones and emails are found through
``BlindIndex`` columns holding ``keyring.blind_index("phone", e164)`` and
``keyring.blind_index("email", lowercased)``. Cards are kept as BIN + last 4
only: the importer refuses full card numbers before they reach a row.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.crypto import BlindIndex, Encrypted, new_row_uid
from backend.models.base import Base
from common.db import UTCDateTime

_CUSTOMER_FK = "crm_customers.id"


class Customer(Base):
    """One customer; ``ref`` is the bank's own reference (``C-1001``)."""

    __tablename__ = "crm_customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Encrypted(row=("ref",)))
    language: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Phone(Base):
    """A phone number on file, E.164."""

    __tablename__ = "crm_phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER_FK, ondelete="CASCADE"), index=True
    )
    # Names the row in its encrypted values' associated data (backend/crypto.py).
    row_uid: Mapped[str] = mapped_column(String(32), default=new_row_uid)
    number: Mapped[str] = mapped_column(Encrypted(row=("row_uid",)))
    number_index: Mapped[str] = mapped_column(BlindIndex, index=True)
    is_primary: Mapped[bool]


class Email(Base):
    """An email address on file."""

    __tablename__ = "crm_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER_FK, ondelete="CASCADE"), index=True
    )
    # Names the row in its encrypted values' associated data (backend/crypto.py).
    row_uid: Mapped[str] = mapped_column(String(32), default=new_row_uid)
    address: Mapped[str] = mapped_column(Encrypted(row=("row_uid",)))
    address_index: Mapped[str] = mapped_column(BlindIndex, index=True)
    is_primary: Mapped[bool]


class PostalAddress(Base):
    """The one postal address of a customer."""

    __tablename__ = "crm_addresses"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER_FK, ondelete="CASCADE"), primary_key=True
    )
    line1: Mapped[str] = mapped_column(Encrypted(row=("customer_id",)))
    line2: Mapped[str | None] = mapped_column(Encrypted(row=("customer_id",)))
    city: Mapped[str] = mapped_column(Encrypted(row=("customer_id",)))
    postcode: Mapped[str] = mapped_column(Encrypted(row=("customer_id",)))
    country: Mapped[str] = mapped_column(String(2))


class MarketingConsent(Base):
    """Consent to direct marketing on one channel; no row means no consent."""

    __tablename__ = "crm_consents"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER_FK, ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    granted: Mapped[bool]


class ProductRow(Base):
    """An account, loan, card (BIN + last 4), …; ``closed`` is None while open."""

    __tablename__ = "crm_products"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER_FK, ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    # Names the row in its encrypted values' associated data (backend/crypto.py).
    row_uid: Mapped[str] = mapped_column(String(32), default=new_row_uid)
    product_id: Mapped[str] = mapped_column(Encrypted(row=("row_uid",)))
    opened: Mapped[date] = mapped_column(Date)
    closed: Mapped[date | None] = mapped_column(Date)


class TransactionRow(Base):
    """A booked transaction; ``amount`` is a Decimal as text so no precision is lost."""

    __tablename__ = "crm_transactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER_FK, ondelete="CASCADE"), index=True
    )
    booked: Mapped[date] = mapped_column(Date)
    amount: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    # Names the row in its encrypted values' associated data (backend/crypto.py).
    row_uid: Mapped[str] = mapped_column(String(32), default=new_row_uid)
    product_id: Mapped[str] = mapped_column(Encrypted(row=("row_uid",)))


class IdentityDocument(Base):
    """A copy of an identity document the bank collected (kind and date only)."""

    __tablename__ = "crm_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER_FK, ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    collected: Mapped[date] = mapped_column(Date)


class ErasedCategory(Base):
    """A data category an erasure removed for this customer."""

    __tablename__ = "crm_erased_categories"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER_FK, ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(16), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HoldRow(Base):
    """Data kept after an erasure: restricted until ``until`` or while a product is open."""

    __tablename__ = "crm_holds"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER_FK, ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(16), primary_key=True)
    basis: Mapped[str] = mapped_column(String(64))
    until: Mapped[date | None] = mapped_column(Date, index=True)
    while_open: Mapped[str | None] = mapped_column(Encrypted(row=("customer_id", "category")))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AppliedChange(Base):
    """A change applied under an idempotency key, written in the change's own transaction."""

    __tablename__ = "crm_applied_changes"

    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(32))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime)
