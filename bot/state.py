"""Conversation state kept in the bot database (see bot/migrations)."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from backend.db import NAMING


class BotBase(DeclarativeBase):
    """Declarative base of the bot's own tables; they live apart from the backend's."""

    metadata = MetaData(naming_convention=NAMING)
