"""The shift at a glance: how many chats wait, why, in which language, and the longest wait.

``summarise`` reads the open escalations the queue already loaded; it counts
waiting and taken chats apart (a taken chat no longer waits) and names the
oldest wait of a chat nobody has taken yet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from backend.console.chatview import waited
from backend.models.console import Escalation


@dataclass(frozen=True)
class Summary:
    """Counts of the open chats; ``oldest_wait`` is None when nobody waits."""

    waiting: int
    taken: int
    by_reason: list[tuple[str, int]]
    by_locale: list[tuple[str, int]]
    oldest_wait: str | None


def summarise(rows: Sequence[Escalation], now: datetime) -> Summary:
    """The shift summary of ``rows`` (the open escalations) at ``now``."""
    waiting = [row for row in rows if row.state == "waiting"]
    reasons = Counter(row.reason for row in rows)
    locales = Counter(row.locale for row in rows)
    oldest = min((row.created_at for row in waiting), default=None)
    return Summary(
        waiting=len(waiting),
        taken=len(rows) - len(waiting),
        by_reason=sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])),
        by_locale=sorted(locales.items(), key=lambda kv: (-kv[1], kv[0])),
        oldest_wait=waited(oldest, now) if oldest is not None else None,
    )
