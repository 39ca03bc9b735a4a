"""Alembic environment for the bot database (conversation state)."""

# Imported for their tables: every table of the bot database is on BotBase.metadata.
import bot.dialogs.reloads
import bot.telegram.inbox
import bot.telegram.registry  # noqa: F401
from bot.settings import BotSettings
from bot.state import BotBase
from common.alembic_env import run_migrations

run_migrations(BotBase.metadata, lambda: BotSettings.from_env().bot_database_url)
