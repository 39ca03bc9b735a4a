"""Alembic environment for the bot database (conversation state)."""

from bot.state import BotBase
from common.alembic_env import run_migrations

run_migrations(BotBase.metadata)
