"""The dialog definitions as loaded from ``dialogs/*.yaml``: immutable, with YAML line numbers.

Every object remembers the file and line it came from, so that ``dialogs
check`` and the engine's own errors can say ``file:line: what is wrong``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.understanding import Matcher

STEP_KINDS = ("say", "ask", "action", "branch", "goto", "call", "end")


@dataclass(frozen=True)
class Where:
    """A place in a dialog file."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Text:
    """A customer-facing text: an English msgid (maybe plural), or a literal never translated."""

    where: Where
    source: str
    plural: str | None = None
    count: str | None = None
    context: str | None = None
    literal: bool = False


@dataclass(frozen=True)
class Transition:
    """Where to go: a step of this flow, another flow (``goto``/``call``), or the end."""

    where: Where
    next: str | None = None
    goto: str | None = None
    call: str | None = None
    end: bool = False
    set: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when the transition names no target (the step's default applies)."""
        return self.next is None and self.goto is None and self.call is None and not self.end


@dataclass(frozen=True)
class Option:
    """A button: stable ``id`` (the callback data), a label, and where pressing it leads."""

    where: Where
    id: str
    label: Text
    then: Transition
    # In a ``multiple`` ask: ``select`` options toggle a choice, a ``done`` option ends choosing.
    select: bool = False
    done: bool = False
    # Shown only while every condition holds (e.g. a channel still on); hidden, it can't be chosen.
    when: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Condition:
    """One test over a value: ``op`` is ``eq``, ``ne``, ``in``, ``set``, ``gt`` or ``lt``."""

    path: str
    op: str
    value: Any


@dataclass(frozen=True)
class Case:
    """A branch case: every condition holds (none: always) → transition."""

    where: Where
    conditions: tuple[Condition, ...]
    then: Transition


@dataclass(frozen=True)
class Step:
    """One step of a flow; which fields matter depends on ``kind``."""

    where: Where
    id: str
    kind: str
    text: Text | None = None
    message: str | None = None
    render: str | None = None
    options: tuple[Option, ...] = ()
    validator: str | None = None
    save: str | None = None
    sensitive: bool = False
    max_tries: int = 3
    contact_button: Text | None = None
    columns: int = 1
    # Several options may be chosen (``select`` options), saved as a list; see ``Option``.
    multiple: bool = False
    # The chat waits for a person here: typed text is acknowledged once, nothing re-asked.
    waits: bool = False
    action: str | None = None
    args: Any = None
    on: dict[str, Transition] = field(default_factory=dict)
    cases: tuple[Case, ...] = ()
    target: str | None = None
    # Where the flow goes after this step when nothing else says: ``next:`` or the following step.
    after: str | None = None

    def option(self, option_id: str) -> Option | None:
        """The option with this id, if the step has one."""
        for option in self.options:
            if option.id == option_id:
                return option
        return None


@dataclass(frozen=True)
class Flow:
    """A named flow: its steps in file order, where it starts and (for ``start``) its home step."""

    where: Where
    name: str
    steps: dict[str, Step]
    start: str
    home: str | None = None


@dataclass(frozen=True)
class Phrasing:
    """An example of how customers name a journey (a main-menu option id) in one locale."""

    where: Where
    journey: str
    locale: str
    text: str


@dataclass(frozen=True)
class Dialogs:
    """Every flow, named message and example phrasing of one dialogs folder."""

    directory: Path
    flows: dict[str, Flow]
    messages: dict[str, Text]
    phrasings: tuple[Phrasing, ...] = ()

    @functools.cached_property
    def matcher(self) -> Matcher:
        """The free-text matcher over the phrasings, built once per loaded folder."""
        grouped: dict[str, dict[str, list[str]]] = {}
        for phrasing in self.phrasings:
            grouped.setdefault(phrasing.journey, {}).setdefault(phrasing.locale, []).append(
                phrasing.text
            )
        return Matcher(grouped)

    def step(self, flow: str, step: str) -> Step:
        """The step ``step`` of flow ``flow`` (KeyError when absent)."""
        return self.flows[flow].steps[step]
