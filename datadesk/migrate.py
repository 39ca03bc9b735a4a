"""``datadesk db upgrade`` and ``datadesk db revision``: the two databases' migrations.

``upgrade`` migrates the backend database and the bot's conversation store;
``revision`` writes a new, numbered migration file for developers
(``backend/migrations/versions/``, or ``bot/migrations/versions/`` with ``--bot``).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from backend.models.base import BACKEND_MIGRATIONS
from bot.state import BOT_MIGRATIONS
from common.db import alembic_config, upgrade_sync
from common.logs import configure
from common.private_files import ensure_private_dir
from datadesk.deployment import Deployment


def upgrade_all(deployment: Deployment) -> None:
    """Bring both databases to the newest schema; safe to run again and from many processes.

    Each database's upgrade holds a lock (``common.alembic_env``): one process
    migrates, the others wait and find nothing left to do.
    """
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


def revision_id(versions: Path, message: str) -> str:
    """The next revision's id: one more than the highest number in ``versions``, then a slug.

    ``0010_add_branch_codes`` for "Add branch codes" after ``0009_…``; the
    slug keeps ASCII letters and digits, at most 40 characters.
    """
    numbers = [int(m.group(1)) for p in versions.glob("*.py") if (m := re.match(r"(\d+)_", p.name))]
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40].rstrip("_")
    return f"{max(numbers, default=0) + 1:04d}_{slug or 'revision'}"


def revision_command(args: argparse.Namespace, deployment: Deployment) -> int:
    """``datadesk db revision -m MSG [--bot] [--autogenerate]``: a new migration file; its path."""
    if args.bot:
        url, location = deployment.bot.bot_database_url, BOT_MIGRATIONS
    else:
        url, location = deployment.backend.database_url, BACKEND_MIGRATIONS
    from alembic import command
    from alembic.util import CommandError

    config = alembic_config(url, location)
    # Quiet: no "Generating …" line from Alembic, the path alone is printed below.
    config.cmd_opts = argparse.Namespace(quiet=True)
    try:
        script = command.revision(
            config,
            message=args.message,
            autogenerate=args.autogenerate,
            rev_id=revision_id(location / "versions", args.message),
        )
    except CommandError as exc:
        # Autogenerate compares with a database at the newest schema: say so, not a traceback.
        print(f"datadesk db revision: {exc}", file=sys.stderr)
        return 1
    assert script is not None
    assert not isinstance(script, list)
    print(script.path)
    return 0
