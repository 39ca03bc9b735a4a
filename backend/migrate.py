"""``datadesk db upgrade``: migrate the backend database and the bot's conversation store."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from backend.db import BACKEND_MIGRATIONS, upgrade_sync
from backend.logs import configure
from backend.settings import Settings

BOT_MIGRATIONS = Path(__file__).resolve().parent.parent / "bot" / "migrations"


def upgrade_all(settings: Settings) -> None:
    """Bring both databases to the newest schema; safe to run again and from many processes."""
    upgrade_sync(settings.database_url, BACKEND_MIGRATIONS)
    upgrade_sync(settings.bot_database_url, BOT_MIGRATIONS)


def upgrade_command(args: argparse.Namespace, settings: Settings) -> int:
    configure(settings.log_level)
    upgrade_all(settings)
    logging.getLogger(__name__).info("backend and bot databases are at the newest schema")
    return 0
