"""What the engine takes in and gives back, beside ``bot.channel``'s events.

``step(dialogs, state, event, catalogs)`` takes an ``EngineEvent``: a channel
event, or the ``ActionResult`` of an ``ActionCall`` it asked for. It answers a
``StepResult``; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.channel import Event
from bot.engine.state import State


@dataclass(frozen=True)
class ActionResult:
    """The outcome of an ``ActionCall`` (an outcome declared in ``bot.engine.registry``)."""

    name: str
    outcome: str
    data: dict[str, Any] = field(default_factory=dict)


EngineEvent = Event | ActionResult


@dataclass(frozen=True)
class ActionCall:
    """A backend action to run; feed its ``ActionResult`` back to ``step``.

    ``key`` is unique within the conversation (a counter): together with the
    chat id it names this call, e.g. for an idempotency key.
    """

    name: str
    args: dict[str, Any]
    key: str = ""


@dataclass(frozen=True)
class OutMessage:
    """A message for the customer, rendered in the state's locale.

    ``options`` are rows of (id, label) buttons; ``contact_button`` is the label of a
    share-my-number button; ``remove_keyboard`` takes an earlier one away.
    """

    text: str
    options: list[list[tuple[str, str]]] = field(default_factory=list)
    contact_button: str | None = None
    remove_keyboard: bool = False


@dataclass
class StepResult:
    """What one event did: the new state, messages to send, actions to run.

    ``delete_input`` asks the channel to delete the customer's message (it held
    a code). ``escalate`` names a reason to queue the chat for a person at
    once; the engine sets none: a person offered after repeated failures is
    queued by the ``escalate`` action only when the customer accepts.
    """

    state: State
    messages: list[OutMessage] = field(default_factory=list)
    actions: list[ActionCall] = field(default_factory=list)
    delete_input: bool = False
    escalate: str | None = None
