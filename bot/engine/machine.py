"""The engine: ``step(dialogs, state, event, catalogs) → StepResult``, a pure function.

It handles each kind of event (``bot.engine.walk`` runs the flows from where
the conversation stands until the next question or backend call), answering
bad input with a localized reason and the question again. Nothing here does
I/O: actions come back as ``ActionResult`` events; the caller persists the
returned state.
"""

from __future__ import annotations

import functools
from typing import Any

from bot.channel import Command, Contact, Press, Start, Text, Unsupported
from bot.engine.events import ActionCall, ActionResult, EngineEvent, StepResult
from bot.engine.inputs import unusable
from bot.engine.model import Dialogs, Option, Step
from bot.engine.phrasings import main_menu
from bot.engine.registry import SESSION_EXPIRED, VERIFIED_OUTCOME, VERIFYING_ACTION
from bot.engine.render import render_text
from bot.engine.state import Frame, State
from bot.engine.validators import VALIDATORS, Valid, yes_no
from bot.engine.validators import phone as phone_validator
from bot.engine.walk import START_FLOW, Walker
from bot.engine.walk import Broken as _Broken
from bot.i18n import SHIPPED_LOCALES, Catalogs, negotiate

# Babel parses the tag each time; platforms send a handful of distinct tags.
_negotiate = functools.lru_cache(maxsize=256)(negotiate)

GLOBAL_FLOWS = {"language": "language", "status": "status", "agent": "agent", "logout": "logout"}
MAX_HISTORY = 20
# Values the engine keeps to itself rather than exposing as dialog values.
_PRIVATE_DATA = {"session_token"}


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
        elif run.current().waits:
            # The wait for a person is over: back to where the customer was.
            run.s.stack.pop()
        run.run()
    except _Broken:
        run.recover()
    run.result.actions.clear()
    return run.result


def _listens(step: Step) -> bool:
    """Whether typed free text may name a journey here: a question of buttons, or yes/no.

    Never at a step that asks for a code or a contact (phone, email, address):
    there, typed text is the answer, and a code must not be read as anything else.
    """
    return (
        step.validator in (None, "yes_no")
        and step.contact_button is None
        and not step.sensitive
        and bool(step.options)
    )


class _Run(Walker):
    """Handles one event: a customer's turn, a command or an action's result."""

    def handle(self, event: EngineEvent) -> None:
        """Dispatch one event: a result, /start, or the customer's answer to the waiting question."""
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
        # A "did you mean" offer holds for the next turn only.
        offered, self.s.offered = self.s.offered, []
        if step.waits:
            self.waiting(step, event)
            return
        if isinstance(event, Command):
            self.command(event.name, step)
        elif isinstance(event, Press):
            self.press(step, event.option_id, offered)
        elif isinstance(event, Text):
            self.text(step, event.text, offered)
        elif isinstance(event, Contact):
            self.contact(step, event)
        elif isinstance(event, Unsupported):
            self.prompt(step, self.message("input.unsupported"))

    def waiting(self, step: Step, event: EngineEvent) -> None:
        """The chat waits for a person: acknowledge once, push no question, let them stop.

        What the customer writes reaches the agent's transcript outside the
        engine; here it is only acknowledged (once per wait). The step's
        options, and /cancel or /back (its first option: stop waiting), move
        on; /language, /status and /help still work.
        """
        if isinstance(event, Press) and (option := step.option(event.option_id)) is not None:
            self.choose(step, option)
            return
        if isinstance(event, Command):
            if event.name in ("cancel", "back"):
                self.choose(step, step.options[0])
                return
            if event.name in ("language", "status", "help"):
                self.command(event.name, step)
                return
        if isinstance(event, Text) and step.sensitive:
            self.result.delete_input = True
        if not self.s.wait_acknowledged:
            self.s.wait_acknowledged = True
            label = render_text(step.options[0].label, self.translator, self.s.vars)
            self.emit(self.message("agent.waiting_acknowledged"), [[(step.options[0].id, label)]])

    def start(self, language_code: str | None) -> None:
        """Begin (again) from the welcome, in the platform's language unless one was chosen."""
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
        """Take an action's outcome: remember its data, then follow the step's branch for it."""
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
        """Run a global command at the current question."""
        if name == "cancel":
            self.emit(self.message("command.cancelled"))
            self.go_home()
            self.run()
        elif name == "back":
            earlier = self.earlier_question()
            if earlier is None:
                self.prompt(step, self.message("command.nothing_to_go_back_to"))
                return
            self.s.stack = earlier
            self.s.tries = 0
            self.run()
        elif name in GLOBAL_FLOWS:
            flow = GLOBAL_FLOWS[name]
            if any(frame.flow == flow for frame in self.s.stack):
                self.prompt(step)
                return
            if name == "logout":
                # Nobody is verified from here on; the journey under way is left.
                self.s.verified = False
                self.s.session_token = None
                self.go_home()
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

    def earlier_question(self) -> list[Frame] | None:
        """The stack /back returns to, taken off the history; None when there is none.

        When the customer came round to this question again (a different
        number after a code, a code asked again after a resend), /back goes to
        the question before its first visit in that loop, not round it again.
        One-time code questions are skipped: their code was sent for an answer
        given earlier, so going back never asks for it.
        """
        here = [(f.flow, f.step) for f in self.s.stack]
        history = self.s.history
        for i in range(len(history) - 1, -1, -1):
            if [(f.flow, f.step) for f in history[i]] == here:
                del history[i:]
                break
        while history:
            stack = history.pop()
            frame = stack[-1] if stack else None
            flow = self.dialogs.flows.get(frame.flow) if frame else None
            found = flow.steps.get(frame.step) if flow and frame else None
            if found is None or found.sensitive:
                continue
            return stack
        return None

    def press(self, step: Step, option_id: str, offered: list[str]) -> None:
        """A button: an option of this question, a global command, an offered journey, or stale."""
        option = step.option(option_id)
        if option is not None and option not in self.shown(step):
            option = None  # Hidden now (its condition no longer holds): a stale button.
        menu = main_menu(self.dialogs)
        if option is not None:
            self.choose(step, option)
        elif option_id in GLOBAL_FLOWS or option_id in ("cancel", "back", "help"):
            self.command(option_id, step)
        elif option_id in offered and menu is not None and menu.option(option_id) is not None:
            # The customer took a journey free text offered mid-way: as if from the menu.
            self.go_home()
            home = self.current()
            chosen = home.option(option_id)
            if chosen is None:
                raise _Broken
            self.choose(home, chosen)
        else:
            self.prompt(step, self.message("input.stale_button"))

    def text(self, step: Step, text: str, offered: list[str]) -> None:
        """Typed text: an answer to an offer, an option's label, or an answer for the validator."""
        if step.sensitive:
            self.result.delete_input = True
        reason = unusable(text)
        if reason is not None:
            self.refuse(step, reason)
            return
        if offered and self.took_offer(step, text, offered):
            return
        option = self.match_option(step, text)
        if option is not None:
            self.choose(step, option)
            return
        checked = VALIDATORS[step.validator](text, self.s.locale) if step.validator else None
        if (
            not isinstance(checked, Valid)
            and self.s.offered_agent
            and self.answered_agent_offer(step, text)
        ):
            return
        if not isinstance(checked, Valid) and _listens(step) and self.dialogs.phrasings:
            self.free_text(step, text, None if checked is None else checked.reason)
            return
        if checked is None:
            self.refuse(step, "input.choose_option")
            return
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

    def took_offer(self, step: Step, text: str, offered: list[str]) -> bool:
        """A typed answer to "did you mean": an offered journey's label, or yes or no to one.

        The offer was the last thing said, so it is answered before the step's
        own question (a yes there only leaves a confirmation unanswered, which
        the customer can come back to; it never confirms one by mistake).
        """
        menu = main_menu(self.dialogs)
        if menu is None:
            return False
        named = self.typed_option(
            [option for journey in offered if (option := menu.option(journey)) is not None], text
        )
        chosen = None if named is None else named.id
        if chosen is None and len(offered) == 1:
            answer = yes_no(text, self.s.locale)
            if not isinstance(answer, Valid):
                return False
            if answer.value == "no":
                # Not that journey: the question under way again.
                self.prompt(step)
                return True
            chosen = offered[0]
        if chosen is None:
            return False
        self.press(step, chosen, offered)
        return True

    def answered_agent_offer(self, step: Step, text: str) -> bool:
        """A typed yes or no to "would you like to talk to a person?", where the step took neither.

        Yes queues the chat as the offered button does; no declines it and
        asks the question again with a fresh count of tries.
        """
        answer = yes_no(text, self.s.locale)
        if not isinstance(answer, Valid):
            return False
        if answer.value == "yes":
            self.command("agent", step)
            return True
        self.s.offered_agent = False
        self.s.tries = 0
        self.prompt(step)
        return True

    def free_text(self, step: Step, text: str, reason: str | None) -> None:
        """Typed words at a question of buttons: offer the journeys they name, or say I'm lost.

        ``reason`` is the step validator's (a yes/no question's "please answer yes
        or no"), said instead of the plain "I didn't understand" when nothing fits.
        """
        menu = main_menu(self.dialogs)
        guess = self.dialogs.matcher.guess(text)
        # The journey under way is not offered again: its own question is the way on.
        under_way = self.s.stack[0].flow if self.s.stack else None
        offers = [
            j
            for j in guess.offers
            if menu is not None
            and (option := menu.option(j)) is not None
            and (option.then.goto is None or option.then.goto != under_way)
        ]
        if menu is None or not offers:
            self.refuse(step, reason or "freetext.not_understood")
            return
        self.s.offered = offers
        buttons: list[list[tuple[str, str]]] = []
        for journey in offers:
            option = menu.option(journey)
            assert option is not None
            buttons.append([(journey, render_text(option.label, self.translator, self.s.vars))])
        key = "freetext.did_you_mean" if len(offers) == 1 else "freetext.did_you_mean_one_of"
        self.emit(self.message(key), buttons)

    def contact(self, step: Step, contact: Contact) -> None:
        """A shared contact: the customer's own number answers a phone question."""
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
        """An option of the step whose label (in the customer's language) or id was typed."""
        return self.typed_option(self.shown(step), text)

    def typed_option(self, options: list[Option], text: str) -> Option | None:
        """The one of ``options`` whose label (in the customer's language) or id was typed."""
        typed = " ".join(text.split()).casefold()
        for option in options:
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
            # Offered only: the chat is queued for a person when the customer accepts.
            self.s.offered_agent = True
            label = self.message("option.agent")
            self.emit(f"{text}\n\n{self.message('tries.offer_agent')}", [[("agent", label)]])
            self.prompt(step)
            return
        self.prompt(step, text)

    def answered(self, step: Step, value: Any) -> None:
        """Save an answer and note the question for /back."""
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
        """Save a validated answer and go on to the step's successor."""
        self.answered(step, value)
        self.advance(step)
        self.run()

    def choose(self, step: Step, option: Option) -> None:
        """Follow an option (ticking it, in a multiple ask)."""
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
