"""Both sides' settings from one environment, for the commands that run both.

``datadesk run`` and ``datadesk db upgrade`` start or migrate the backend and
the bot together; each side is still handed only its own settings
(``backend.settings.Settings``, ``bot.settings.BotSettings``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from backend.settings import Settings
from bot.settings import BotSettings


@dataclass(frozen=True)
class Deployment:
    """The backend's and the bot's settings, read from the same environment."""

    backend: Settings
    bot: BotSettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Deployment:
        """Both settings from ``environ`` (default ``os.environ``); raise SettingsError."""
        env = os.environ if environ is None else environ
        return cls(backend=Settings.from_env(env), bot=BotSettings.from_env(env))
