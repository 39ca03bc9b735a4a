"""How the engine moves through the flows: positions, transitions, and running to the next stop.

``Walker`` holds one event's private copy of the state and its output; it runs
steps until a question waits for the customer or an action for the backend.
``bot.engine.machine`` builds on it to handle each kind of event.
"""

from __future__ import annotations

from typing import Any

from bot.engine.events import ActionCall, OutMessage, StepResult
from bot.engine.model import Case, Condition, Dialogs, Option, Step, Transition
from bot.engine.render import RENDERERS, Page, render_text
from bot.engine.state import Frame, State
from bot.i18n import Catalogs, Translator

START_FLOW = "start"
# A flow that loops through steps without asking anything is a mistake; stop it here.
MAX_RUN = 200
MAX_STACK = 12


class Broken(Exception):
    """The state points at something the dialogs no longer have (or a flow never stops)."""


class Walker:
    """One event's worth of work on a private copy of the state."""

    def __init__(self, dialogs: Dialogs, state: State, catalogs: Catalogs) -> None:
        self.dialogs = dialogs
        self.s = state
        self.catalogs = catalogs
        self.result = StepResult(state=state)

    # --- output -----------------------------------------------------------------

    @property
    def translator(self) -> Translator:
        """The translator of the conversation's current locale."""
        return self.catalogs.translator(self.s.locale)

    def message(self, message_id: str, /, **params: Any) -> str:
        """A named message rendered with the conversation's values."""
        return Page(self.dialogs, self.translator).say(message_id, **{**self.s.vars, **params})

    def emit(
        self,
        text: str,
        options: list[list[tuple[str, str]]] | None = None,
        contact: str | None = None,
    ) -> None:
        """Queue a message; a share-contact keyboard left showing is removed by the next one."""
        remove = self.s.contact_keyboard and contact is None
        self.s.contact_keyboard = contact is not None
        self.result.messages.append(OutMessage(text, options or [], contact, remove))

    def prompt(self, step: Step, before: str | None = None) -> None:
        """Ask ``step``'s question (after ``before``, a reason, when given) with its buttons."""
        assert step.text is not None
        if step.waits:
            # A new wait: the customer's next message is acknowledged again.
            self.s.wait_acknowledged = False
        text = render_text(step.text, self.translator, self.s.vars)
        labels = [
            (o.id, render_text(o.label, self.translator, self.s.vars)) for o in self.shown(step)
        ]
        if step.multiple:
            chosen = self.selection(step)
            names = [label for i, label in labels if i in chosen]
            if names:
                text = f"{text}\n\n{self.message('selection.chosen', chosen=names)}"
            # A tick is understood in every language; the ids stay the same.
            labels = [(i, f"✓ {label}" if i in chosen else label) for i, label in labels]
        rows = [labels[i : i + step.columns] for i in range(0, len(labels), step.columns)]
        contact = None
        if step.contact_button is not None:
            contact = render_text(step.contact_button, self.translator, self.s.vars)
        self.emit(f"{before}\n\n{text}" if before else text, rows, contact)

    def shown(self, step: Step) -> list[Option]:
        """The step's options whose ``when:`` conditions hold now."""
        return [o for o in step.options if all(self.holds(c) for c in o.when)]

    def selection(self, step: Step) -> list[str]:
        """The ids chosen so far in a ``multiple`` ask (kept in its ``save`` value)."""
        found = self.s.vars.get(step.save or "")
        ticked = {str(i) for i in found} if isinstance(found, list) else set()
        # An earlier answer through a plain option ("all") is not a tick.
        return [o.id for o in step.options if o.select and o.id in ticked]

    # --- positions ----------------------------------------------------------------

    def current(self) -> Step:
        """The step the conversation is at; Broken when the dialogs no longer have it."""
        frame = self.s.frame
        if frame is None:
            raise Broken
        flow = self.dialogs.flows.get(frame.flow)
        if flow is None or frame.step not in flow.steps:
            raise Broken
        return flow.steps[frame.step]

    def enter(self, flow_name: str, replace: bool = False) -> None:
        """Start ``flow_name`` on top of the stack (or in place of the current flow)."""
        flow = self.dialogs.flows.get(flow_name)
        if flow is None:
            raise Broken
        if replace and self.s.stack:
            self.s.stack.pop()
        self.s.stack.append(Frame(flow_name, flow.start))
        if len(self.s.stack) > MAX_STACK:
            raise Broken

    def go_home(self) -> None:
        """Back to the main menu: a new journey, so the last one's values are dropped."""
        start = self.dialogs.flows.get(START_FLOW)
        if start is None:
            raise Broken
        self.s.stack = [Frame(START_FLOW, start.home or start.start)]
        self.s.vars = {}
        self.s.results = {}
        self.s.history = []
        self.s.tries = 0
        self.s.pending = None

    def advance(self, step: Step) -> None:
        """On to the step's default successor, or out of the flow."""
        frame = self.s.stack[-1]
        if step.after is not None:
            frame.step = step.after
        else:
            self.s.stack.pop()

    def follow(self, step: Step, then: Transition) -> None:
        """Take a transition from ``step``: set values, then next / goto / call / end."""
        for name, value in then.set.items():
            self.s.vars[name] = self.resolve(value)
        if then.end:
            self.s.stack.pop()
        elif then.goto is not None:
            self.enter(then.goto, replace=True)
        elif then.call is not None:
            # Return to ``next`` when given, else to this step (its question is asked again).
            self.s.stack[-1].step = then.next or step.id
            self.enter(then.call)
        elif then.next is not None:
            self.s.stack[-1].step = then.next
        else:
            self.advance(step)

    # --- running --------------------------------------------------------------------

    def run(self) -> None:
        """Run steps until a question waits for the customer or an action for the backend."""
        for _ in range(MAX_RUN):
            if not self.s.stack:
                self.go_home()
            step = self.current()
            if step.kind == "ask":
                self.prompt(step)
                return
            if step.kind == "action":
                self.call_action(step)
                return
            if step.kind == "say":
                self.emit(self.say_text(step))
                self.advance(step)
            elif step.kind == "branch":
                self.follow(step, self.choose_case(step.cases).then)
            elif step.kind == "goto":
                assert step.target is not None
                self.enter(step.target, replace=True)
            elif step.kind == "call":
                assert step.target is not None
                self.advance(step)
                self.enter(step.target)
            else:
                self.s.stack.pop()
        raise Broken

    def say_text(self, step: Step) -> str:
        """The text a ``say`` step sends."""
        if step.render is not None:
            return RENDERERS[step.render](Page(self.dialogs, self.translator), self.s)
        if step.message is not None:
            return self.message(step.message)
        assert step.text is not None
        return render_text(step.text, self.translator, self.s.vars)

    def call_action(self, step: Step) -> None:
        """Ask for the step's action and wait for its result."""
        assert step.action is not None
        args = self.resolve(step.args or {})
        self.s.serial += 1
        key = str(self.s.serial)
        self.s.pending = {"name": step.action, "args": args, "key": key}
        self.result.actions.append(ActionCall(step.action, args, key))

    def choose_case(self, cases: tuple[Case, ...]) -> Case:
        """The first branch case whose conditions all hold."""
        for case in cases:
            if all(self.holds(c) for c in case.conditions):
                return case
        raise Broken

    def holds(self, condition: Condition) -> bool:
        """Whether one branch condition holds."""
        value = self.lookup(condition.path)
        expected = self.resolve(condition.value)
        if condition.op == "eq":
            return bool(value == expected)
        if condition.op == "ne":
            return bool(value != expected)
        if condition.op == "in":
            return isinstance(expected, list) and value in expected
        if condition.op == "set":
            return (value not in (None, "", [], {})) == bool(expected)
        try:
            return bool(value > expected) if condition.op == "gt" else bool(value < expected)
        except TypeError:
            return False

    def lookup(self, path: str) -> Any:
        """A value by name: ``verified``, ``locale``, ``results.<action>.<key>`` or a collected value."""
        head, _, rest = path.partition(".")
        value: Any
        if head in ("verified", "locale", "agent_active") and not rest:
            return getattr(self.s, head)
        if head == "results":
            value, rest = self.s.results, rest
        else:
            value = self.s.vars.get(head)
        for part in rest.split(".") if rest else []:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def resolve(self, value: Any) -> Any:
        """Arguments: ``$name`` is a collected value; lists and mappings are resolved inside."""
        if isinstance(value, str) and value.startswith("$"):
            return self.lookup(value[1:])
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    # --- events ---------------------------------------------------------------------
