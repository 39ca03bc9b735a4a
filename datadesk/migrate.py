"""``datadesk db upgrade``: migrate the backend database and the bot's conversation store."""

from __future__ import annotations

import argparse
import logging

from backend.models.base import BACKEND_MIGRATIONS
from backend.settings import Settings
from bot.state import BOT_MIGRATIONS
from common.db import upgrade_sync
from common.logs import configure


def upgrade_all(settings: Settings) -> None:
    """Bring both databases to the newest schema; safe to run again and from many processes."""
    upgrade_sync(settings.database_url, BACKEND_MIGRATIONS)
    upgrade_sync(settings.bot_database_url, BOT_MIGRATIONS)


def upgrade_command(args: argparse.Namespace, settings: Settings) -> int:
    configure(settings.log_level)
    upgrade_all(settings)
    logging.getLogger(__name__).info("backend and bot databases are at the newest schema")
    return 0
