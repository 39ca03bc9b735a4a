"""Alembic environment for the backend database."""

import backend.models  # noqa: F401  (registers every table on Base.metadata)
from backend.models.base import Base
from common.alembic_env import run_migrations

run_migrations(Base.metadata)
