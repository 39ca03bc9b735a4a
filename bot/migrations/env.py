"""Alembic environment for the bot database (conversation state)."""

import bot.telegram.inbox  # registers the webhook inbox and chat lease tables
import bot.telegram.registry  # noqa: F401  (registers the bot's process table)
from bot.settings import BotSettings
from bot.state import BotBase
from common.alembic_env import run_migrations

run_migrations(BotBase.metadata, lambda: BotSettings.from_env().bot_database_url)
