"""Alembic environment for the bot database (conversation state)."""

from backend.alembic_env import run_migrations
from bot.state import BotBase

run_migrations(BotBase.metadata)
