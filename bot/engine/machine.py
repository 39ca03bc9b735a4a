"""The engine: ``step(dialogs, state, event, catalogs) → StepResult``, a pure function.

It runs the current flow from where the conversation stands until the next
question (``ask``) or backend call (``action``), answering bad input with a
localized reason and the question again. Nothing here does I/O: actions come
back as ``ActionResult`` events; the caller persists the returned state.
"""

from __future__ import annotations

import functools
from typing import Any

from bot.channel import Command, Contact, Press, Start, Text, Unsupported
from bot.engine.events import ActionCall, ActionResult, EngineEvent, OutMessage, StepResult
from bot.engine.inputs import unusable
from bot.engine.model import Case, Condition, Dialogs, Option, Step, Transition
from bot.engine.registry import SESSION_EXPIRED, VERIFIED_OUTCOME, VERIFYING_ACTION
from bot.engine.render import RENDERERS, Page, render_text
from bot.engine.state import Frame, State
from bot.engine.validators import VALIDATORS, Valid
from bot.engine.validators import phone as phone_validator
from bot.i18n import SHIPPED_LOCALES, Catalogs, Translator, negotiate

# Babel parses the tag each time; platforms send a handful of distinct tags.
_negotiate = functools.lru_cache(maxsize=256)(negotiate)

START_FLOW = "start"
GLOBAL_FLOWS = {"language": "language", "status": "status", "agent": "agent"}
# A flow that loops through steps without asking anything is a mistake; stop it here.
MAX_RUN = 200
MAX_STACK = 12
MAX_HISTORY = 20
# Values the engine keeps to itself rather than exposing as dialog values.
_PRIVATE_DATA = {"session_token"}


class _Broken(Exception):
    """The state points at something the dialogs no longer have (or a flow never stops)."""


def step(dialogs: Dialogs, state: State, event: EngineEvent, catalogs: Catalogs) -> StepResult:
    """Apply one event to a conversation; the given state is left untouched."""
    run = _Run(dialogs, state.copy(), catalogs)
    try:
        run.handle(event)
    except _Broken:
        run.recover()
    return run.result


def resume(dialogs: Dialogs, state: State, catalogs: Catalogs, *, menu: bool = False) -> StepResult:
    """Show again the question the conversation is at (or the main menu), e.g. after an agent left.

    An action the state still waits for is not asked for again here: it is
    re-issued with the customer's next event.
    """
    run = _Run(dialogs, state.copy(), catalogs)
    try:
        if menu or run.s.frame is None:
            run.go_home()
        run.run()
    except _Broken:
        run.recover()
    run.result.actions.clear()
    return run.result


class _Run:
    """One event's worth of work on a private copy of the state."""

    def __init__(self, dialogs: Dialogs, state: State, catalogs: Catalogs) -> None:
        self.dialogs = dialogs
        self.s = state
        self.catalogs = catalogs
        self.result = StepResult(state=state)

    # --- output -----------------------------------------------------------------

    @property
    def translator(self) -> Translator:
        return self.catalogs.translator(self.s.locale)

    def message(self, message_id: str, /, **params: Any) -> str:
        return Page(self.dialogs, self.translator).say(message_id, **{**self.s.vars, **params})

    def emit(
        self,
        text: str,
        options: list[list[tuple[str, str]]] | None = None,
        contact: str | None = None,
    ) -> None:
        remove = self.s.contact_keyboard and contact is None
        self.s.contact_keyboard = contact is not None
        self.result.messages.append(OutMessage(text, options or [], contact, remove))

    def prompt(self, step: Step, before: str | None = None) -> None:
        """Ask ``step``'s question (after ``before``, a reason, when given) with its buttons."""
        assert step.text is not None
        text = render_text(step.text, self.translator, self.s.vars)
        labels = [(o.id, render_text(o.label, self.translator, self.s.vars)) for o in step.options]
        if step.multiple:
            chosen = self.selection(step)
            names = [label for i, label in labels if i in chosen]
            if names:
                text = f"{text}\n\n{self.message('selection.chosen', chosen=', '.join(names))}"
            # A tick is understood in every language; the ids stay the same.
            labels = [(i, f"✓ {label}" if i in chosen else label) for i, label in labels]
        rows = [labels[i : i + step.columns] for i in range(0, len(labels), step.columns)]
        contact = None
        if step.contact_button is not None:
            contact = render_text(step.contact_button, self.translator, self.s.vars)
        self.emit(f"{before}\n\n{text}" if before else text, rows, contact)

    # --- positions ----------------------------------------------------------------

    def current(self) -> Step:
        frame = self.s.frame
        if frame is None:
            raise _Broken
        flow = self.dialogs.flows.get(frame.flow)
        if flow is None or frame.step not in flow.steps:
            raise _Broken
        return flow.steps[frame.step]

    def enter(self, flow_name: str, replace: bool = False) -> None:
        flow = self.dialogs.flows.get(flow_name)
        if flow is None:
            raise _Broken
        if replace and self.s.stack:
            self.s.stack.pop()
        self.s.stack.append(Frame(flow_name, flow.start))
        if len(self.s.stack) > MAX_STACK:
            raise _Broken

    def go_home(self) -> None:
        """Back to the main menu: a new journey, so the last one's values are dropped."""
        start = self.dialogs.flows.get(START_FLOW)
        if start is None:
            raise _Broken
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
        raise _Broken

    def say_text(self, step: Step) -> str:
        if step.render is not None:
            return RENDERERS[step.render](Page(self.dialogs, self.translator), self.s)
        if step.message is not None:
            return self.message(step.message)
        assert step.text is not None
        return render_text(step.text, self.translator, self.s.vars)

    def call_action(self, step: Step) -> None:
        assert step.action is not None
        args = self.resolve(step.args or {})
        self.s.serial += 1
        key = str(self.s.serial)
        self.s.pending = {"name": step.action, "args": args, "key": key}
        self.result.actions.append(ActionCall(step.action, args, key))

    def choose_case(self, cases: tuple[Case, ...]) -> Case:
        for case in cases:
            if all(self.holds(c) for c in case.conditions):
                return case
        raise _Broken

    def holds(self, condition: Condition) -> bool:
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

    def handle(self, event: EngineEvent) -> None:
        if isinstance(event, ActionResult):
            self.on_result(event)
            return
        if isinstance(event, Start) or (isinstance(event, Command) and event.name == "start"):
            self.start(event.language_code)
            return
        if not self.s.started:
            self.start(event.language_code)
            return
        if self.s.pending is not None:
            # The last action's result never came back (a crash between): ask for it again.
            pending = self.s.pending
            self.result.actions.append(ActionCall(pending["name"], pending["args"], pending["key"]))
            return
        step = self.current()
        if step.kind != "ask":
            raise _Broken
        if isinstance(event, Command):
            self.command(event.name, step)
        elif isinstance(event, Press):
            self.press(step, event.option_id)
        elif isinstance(event, Text):
            self.text(step, event.text)
        elif isinstance(event, Contact):
            self.contact(step, event)
        elif isinstance(event, Unsupported):
            self.prompt(step, self.message("input.unsupported"))

    def start(self, language_code: str | None) -> None:
        if language_code and not self.s.locale_chosen:
            self.s.locale = _negotiate(language_code)
        self.s.started = True
        self.go_home()
        start = self.dialogs.flows.get(START_FLOW)
        if start is None:
            raise _Broken
        self.s.stack = [Frame(START_FLOW, start.start)]
        self.run()

    def on_result(self, result: ActionResult) -> None:
        pending = self.s.pending
        if pending is None or pending.get("name") != result.name:
            return  # A late or repeated result: the conversation has moved on.
        step = self.current()
        if step.kind != "action" or step.action != result.name:
            raise _Broken
        self.s.pending = None
        data = dict(result.data)
        if isinstance(data.get("session_token"), str):
            self.s.session_token = data["session_token"]
        self.s.results[result.name] = {k: v for k, v in data.items() if k not in _PRIVATE_DATA}
        for key, value in data.items():
            if key not in _PRIVATE_DATA and (
                value is None or isinstance(value, str | int | float | bool)
            ):
                self.s.vars[key] = value
        if result.name == VERIFYING_ACTION and result.outcome == VERIFIED_OUTCOME:
            self.s.verified = True
        if result.outcome == SESSION_EXPIRED:
            self.s.verified = False
            self.s.session_token = None
        then = step.on.get(result.outcome) or step.on.get("error")
        if then is None:
            raise _Broken
        self.follow(step, then)
        self.run()

    def command(self, name: str, step: Step) -> None:
        if name == "cancel":
            self.emit(self.message("command.cancelled"))
            self.go_home()
            self.run()
        elif name == "back":
            if not self.s.history:
                self.prompt(step, self.message("command.nothing_to_go_back_to"))
                return
            self.s.stack = self.s.history.pop()
            self.s.tries = 0
            self.run()
        elif name in GLOBAL_FLOWS:
            flow = GLOBAL_FLOWS[name]
            if any(frame.flow == flow for frame in self.s.stack):
                self.prompt(step)
                return
            if name == "agent":
                self.s.vars["escalation_reason"] = (
                    "misunderstanding" if self.s.offered_agent else "asked"
                )
            self.s.offered_agent = False
            self.s.tries = 0
            self.enter(flow)
            self.run()
        else:
            self.emit(self.message("command.help"))
            self.prompt(step)

    def press(self, step: Step, option_id: str) -> None:
        option = step.option(option_id)
        if option is not None:
            self.choose(step, option)
        elif option_id in GLOBAL_FLOWS or option_id in ("cancel", "back", "help"):
            self.command(option_id, step)
        else:
            self.prompt(step, self.message("input.stale_button"))

    def text(self, step: Step, text: str) -> None:
        if step.sensitive:
            self.result.delete_input = True
        reason = unusable(text)
        if reason is not None:
            self.refuse(step, reason)
            return
        option = self.match_option(step, text)
        if option is not None:
            self.choose(step, option)
            return
        if step.validator is None:
            self.refuse(step, "input.choose_option")
            return
        checked = VALIDATORS[step.validator](text, self.s.locale)
        if not isinstance(checked, Valid):
            self.refuse(step, checked.reason)
            return
        found = step.option(checked.value) if isinstance(checked.value, str) else None
        if found is not None:
            self.choose(step, found)
            return
        if step.contact_button is not None:
            self.s.vars["shared_contact"] = False
        self.accept(step, checked.value)

    def contact(self, step: Step, contact: Contact) -> None:
        if step.contact_button is None and step.validator != "phone":
            self.prompt(step, self.message("input.contact_unexpected"))
            return
        if not contact.own:
            self.prompt(step, self.message("input.contact_not_own"))
            return
        checked = phone_validator(
            contact.phone if contact.phone.startswith("+") else "+" + contact.phone, self.s.locale
        )
        if not isinstance(checked, Valid):
            self.refuse(step, checked.reason)
            return
        self.s.vars["shared_contact"] = True
        self.accept(step, checked.value)

    def match_option(self, step: Step, text: str) -> Option | None:
        """An option whose label (in the customer's language) or id was typed."""
        typed = " ".join(text.split()).casefold()
        for option in step.options:
            label = render_text(option.label, self.translator, self.s.vars)
            if typed in (" ".join(label.split()).casefold(), option.id.casefold()):
                return option
        return None

    def refuse(self, step: Step, reason: str) -> None:
        """Say why the answer can't be used and ask again; after too many tries, offer a person."""
        self.s.tries += 1
        text = self.message(reason)
        if self.s.tries >= step.max_tries:
            self.s.tries = 0
            self.s.offered_agent = True
            self.result.escalate = "misunderstanding"
            label = self.message("option.agent")
            self.emit(f"{text}\n\n{self.message('tries.offer_agent')}", [[("agent", label)]])
            self.prompt(step)
            return
        self.prompt(step, text)

    def answered(self, step: Step, value: Any) -> None:
        if step.save is not None:
            self.s.vars[step.save] = value
            if step.save == "locale" and value in (*SHIPPED_LOCALES, *self.catalogs.locales):
                self.s.locale = str(value)
                self.s.locale_chosen = True
        self.s.tries = 0
        self.s.offered_agent = False
        self.s.history = [*self.s.history, [Frame(f.flow, f.step) for f in self.s.stack]][
            -MAX_HISTORY:
        ]

    def accept(self, step: Step, value: Any) -> None:
        self.answered(step, value)
        self.advance(step)
        self.run()

    def selection(self, step: Step) -> list[str]:
        """The ids chosen so far in a ``multiple`` ask (kept in its ``save`` value)."""
        found = self.s.vars.get(step.save or "")
        ticked = {str(i) for i in found} if isinstance(found, list) else set()
        # An earlier answer through a plain option ("all") is not a tick.
        return [o.id for o in step.options if o.select and o.id in ticked]

    def choose(self, step: Step, option: Option) -> None:
        if step.multiple:
            chosen = self.selection(step)
            if option.select:
                toggled = (
                    [i for i in chosen if i != option.id]
                    if option.id in chosen
                    else [*chosen, option.id]
                )
                # Kept in option order, whatever order they were pressed in.
                self.s.vars[step.save or ""] = [o.id for o in step.options if o.id in toggled]
                self.prompt(step)
                return
            if option.done and not chosen:
                self.prompt(step, self.message("input.choose_at_least_one"))
                return
            self.answered(step, chosen if option.done else [option.id])
            self.follow(step, option.then)
            self.run()
            return
        self.answered(step, option.id)
        self.follow(step, option.then)
        self.run()

    def recover(self) -> None:
        """Something in the state no longer fits the dialogs: say so and start from the menu."""
        self.result.actions.clear()
        self.s.pending = None
        try:
            self.emit(self.message("engine.error"))
            self.go_home()
            self.run()
        except (_Broken, KeyError):
            self.s.stack = []
