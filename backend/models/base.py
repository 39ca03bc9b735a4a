"""The declarative base of every backend table, and where the backend's migrations live."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from common.db import NAMING

BACKEND_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base of every backend table."""

    metadata = MetaData(naming_convention=NAMING)
