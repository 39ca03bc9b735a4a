"""Alembic environment for the backend database."""

import backend.models  # noqa: F401  (registers every table on Base.metadata)
from backend.models.base import Base
from backend.settings import Settings
from common.alembic_env import run_migrations

run_migrations(Base.metadata, lambda: Settings.from_env().database_url)
