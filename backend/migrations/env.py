"""Alembic environment for the backend database."""

import backend.models  # noqa: F401  (registers every table on Base.metadata)
from backend.alembic_env import run_migrations
from backend.db import Base

run_migrations(Base.metadata)
