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
