"""The contact details a customer can change (an ``update_contact`` request's ``field``)."""

from __future__ import annotations

from typing import Literal

ContactKind = Literal["phone", "email", "address"]
CONTACT_KINDS: tuple[ContactKind, ...] = ("phone", "email", "address")
# A new phone or email is proven with a code sent to it before it is submitted;
# a postal address cannot be.
PROVEN_CONTACT_KINDS: tuple[ContactKind, ...] = ("phone", "email")
