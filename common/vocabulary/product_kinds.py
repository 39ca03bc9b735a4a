"""The kinds of product a customer can hold (the CRM JSON's ``products[].kind``).

Each kind has a name in every catalog (``product.<kind>`` in
``dialogs/messages.yaml``), so a new kind is added here and there together;
``crm import`` refuses any other.
"""

from __future__ import annotations

from typing import Literal

ProductKind = Literal["current_account", "savings_account", "card", "loan"]
PRODUCT_KINDS: tuple[ProductKind, ...] = ("current_account", "savings_account", "card", "loan")
