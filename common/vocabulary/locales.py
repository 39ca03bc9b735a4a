"""The locales datadesk ships: every catalog, dialog and customer-facing text exists in each."""

from __future__ import annotations

SHIPPED_LOCALES: tuple[str, ...] = ("en", "lv", "ru", "zh_Hans", "zh_Hant")
# What a customer gets when nothing they report fits a shipped locale.
DEFAULT_LOCALE = "en"
