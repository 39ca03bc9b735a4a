"""Parsing helpers for the ``DATADESK_*`` environment, shared by each side's settings.

Each side's settings class (``backend/settings.py``, ``bot/settings.py``) reads the environment
in its ``from_env`` and turns raw strings into values with these helpers, so a
bad value fails the same way everywhere: ``SettingsError`` whose message names
the variable, printed at start instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

PREFIX = "DATADESK_"
# The checkout: home of dialogs/ and locales/ (an installed wheel carries its
# own copies, found by common.i18n.shipped_dir).
REPO_ROOT = Path(__file__).resolve().parent.parent
# Where the backend keeps the service token it generated (no DATADESK_SERVICE_TOKEN
# set), in its DATA_DIR; a bot sharing that DATA_DIR reads it there.
SERVICE_TOKEN_FILE = "service-token"  # noqa: S105 - a file name, not a secret


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def lookup(env: Mapping[str, str], name: str) -> str | None:
    """``DATADESK_{name}`` from ``env``; unset and empty are both None."""
    value = env.get(PREFIX + name)
    return value if value not in (None, "") else None


def parse_bool(name: str, raw: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off/""`` (any case); SettingsError otherwise."""
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{PREFIX}{name}: expected true or false, got {raw!r}")


def parse_int(name: str, raw: str) -> int:
    """A whole number; SettingsError otherwise."""
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}: expected a whole number, got {raw!r}") from None


def parse_choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    """``raw`` when it is one of ``allowed``; SettingsError naming them otherwise."""
    if raw not in allowed:
        raise SettingsError(f"{PREFIX}{name}: expected one of {', '.join(allowed)}, got {raw!r}")
    return raw


def parse_port(name: str, raw: str | None) -> int:
    """A TCP port to listen on (1–65535), or 0 (off) when unset or ``0``; SettingsError otherwise."""
    if raw is None:
        return 0
    port = parse_int(name, raw)
    if not 0 <= port <= 65535:
        raise SettingsError(
            f"{PREFIX}{name}: expected a port from 1 to 65535, or 0 for none, got {raw!r}"
        )
    return port
