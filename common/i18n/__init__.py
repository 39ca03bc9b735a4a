"""Gettext catalogs read straight from ``.po`` files, for both sides (bot and backend).

The bot (``bot.i18n``) re-exports what it uses; the backend reads its own
texts (codes, "Was this you?" notices, the undo page, canned replies) from the
same catalogs through ``backend.texts``. ``shipped_dir`` finds the catalogs:
an installed wheel carries them in ``bot/data/locales`` (``setup.py``), a
checkout in ``locales/``.
"""

from __future__ import annotations

from pathlib import Path

from common.i18n.catalogs import Catalogs, Translator
from common.i18n.negotiation import negotiate
from common.settings import REPO_ROOT

# Where a wheel carries dialogs/ and locales/ (copied in by setup.py); a checkout has none.
SHIPPED_DATA = REPO_ROOT / "bot" / "data"


def shipped_dir(name: str) -> Path:
    """The default ``dialogs`` or ``locales`` folder: the installed wheel's copy, else the checkout's."""
    packaged = SHIPPED_DATA / name
    return packaged if packaged.is_dir() else REPO_ROOT / name


__all__ = ["SHIPPED_DATA", "Catalogs", "Translator", "negotiate", "shipped_dir"]
