"""``datadesk db upgrade``: migrate the backend database and the bot's conversation store."""

from __future__ import annotations

import argparse
import logging

from backend.models.base import BACKEND_MIGRATIONS
from bot.state import BOT_MIGRATIONS
from common.db import upgrade_sync
from common.logs import configure
from common.private_files import ensure_private_dir
from datadesk.deployment import Deployment


def upgrade_all(deployment: Deployment) -> None:
    """Bring both databases to the newest schema; safe to run again and from many processes."""
    # The default SQLite files live in DATA_DIR: make it private before they exist.
    for data_dir in {deployment.backend.data_dir, deployment.bot.data_dir}:
        ensure_private_dir(data_dir)
    upgrade_sync(deployment.backend.database_url, BACKEND_MIGRATIONS)
    upgrade_sync(deployment.bot.bot_database_url, BOT_MIGRATIONS)


def upgrade_command(args: argparse.Namespace, deployment: Deployment) -> int:
    configure(deployment.backend.log_level, deployment.backend.log_format)
    upgrade_all(deployment)
    logging.getLogger(__name__).info("backend and bot databases are at the newest schema")
    return 0
