"""Data categories: the retention policy's rules, an erasure's scope, ``crm export``'s holds."""

from __future__ import annotations

from typing import Literal

Category = Literal["contact", "marketing", "chat_history", "identity", "products", "transactions"]
CATEGORIES: tuple[Category, ...] = (
    "contact",
    "marketing",
    "chat_history",
    "identity",
    "products",
    "transactions",
)

# The retention policy's legal basis for data kept only because a product is still
# open: a text that says "kept while your product is open" does not name it again.
PRODUCT_OPEN_BASIS = "product_open"
