"""The errors both sides raise: the root of every deliberate error, and a wrong file.

    DatadeskError       root of every error this project raises on purpose
    └── ConfigError     a file an operator or product team edits is wrong (``file:line: …``)

Each side grows its own tree from ``DatadeskError`` (``backend/errors.py``).
Messages are for developers and operators and never contain personal data.
"""

from __future__ import annotations

from typing import ClassVar


class DatadeskError(Exception):
    """Root of every error this project raises on purpose."""

    # The messages are written for developers and never hold personal data, so
    # tracebacks in the logs may show them (``common.logs`` withholds others).
    loggable_message: ClassVar[bool] = True


class ConfigError(DatadeskError):
    """A configuration or data file is wrong; ``str(err)`` is ``file:line: what is wrong``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.message = message
