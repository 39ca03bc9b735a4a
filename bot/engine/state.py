"""One conversation's state: JSON-serialisable, copied (never mutated) by the engine.

``State.to_json()`` gives a plain ``dict`` of JSON types that the conversation
store keeps as it is; ``State.from_json()`` takes that ``dict`` (or its JSON
text) back, tolerating fields it does not know and filling in missing ones,
so a state written by an older release still loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Frame:
    """A position: a step of a flow. The flow stack holds one per ``call`` in progress."""

    flow: str
    step: str


@dataclass
class State:
    """Where a conversation is and what it has collected so far."""

    locale: str = "en"
    # True once the customer picked a language: the platform's language_code no longer wins.
    locale_chosen: bool = False
    started: bool = False
    stack: list[Frame] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    # Data of the last result of each action, by action name (renderers read it).
    results: dict[str, Any] = field(default_factory=dict)
    tries: int = 0
    verified: bool = False
    session_token: str | None = None
    agent_active: bool = False
    # The action whose result the engine waits for, with its call (re-sent if the result is lost).
    pending: dict[str, Any] | None = None
    # Stacks at earlier questions, for /back (newest last).
    history: list[list[Frame]] = field(default_factory=list)
    # Whether the last message offered "talk to a person" after repeated misunderstanding.
    offered_agent: bool = False
    # Whether the share-contact reply keyboard is showing (the next message removes it).
    contact_keyboard: bool = False
    shown_notifications: list[int] = field(default_factory=list)
    # Journeys (main-menu ids) the last message offered for typed free text ("did you mean").
    offered: list[str] = field(default_factory=list)
    # Whether what the customer typed while waiting for a person was acknowledged already.
    wait_acknowledged: bool = False
    serial: int = 0

    @property
    def frame(self) -> Frame | None:
        """The current position, or None when no flow is running."""
        return self.stack[-1] if self.stack else None

    def copy(self) -> State:
        """A deep copy: the engine works on it and leaves the caller's state alone."""
        return State._build(json.loads(json.dumps(self._shallow())))

    def _shallow(self) -> dict[str, Any]:
        # ``dataclasses.asdict`` deep-copies value by value; one JSON round trip is far faster.
        values = {name: getattr(self, name) for name in _FIELD_NAMES}
        values["stack"] = [{"flow": f.flow, "step": f.step} for f in self.stack]
        values["history"] = [
            [{"flow": f.flow, "step": f.step} for f in stack] for stack in self.history
        ]
        return values

    def to_json(self) -> dict[str, Any]:
        """The state as JSON-compatible values (a copy: later changes to the state don't show)."""
        result: dict[str, Any] = json.loads(json.dumps(self._shallow()))
        return result

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> State:
        """Rebuild a state from ``to_json()``'s output (or its JSON text)."""
        raw: Any = json.loads(data if isinstance(data, str) else json.dumps(data))
        return cls._build(raw)

    @classmethod
    def _build(cls, raw: Any) -> State:
        if not isinstance(raw, dict):
            return cls()
        values = {k: v for k, v in raw.items() if k in _FIELD_NAMES}
        values["stack"] = [Frame(**f) for f in values.get("stack", [])]
        values["history"] = [[Frame(**f) for f in stack] for stack in values.get("history", [])]
        return cls(**values)


# ``dataclasses.fields`` is slow to ask on every copy; the names never change.
_FIELD_NAMES = frozenset(f.name for f in fields(State))
