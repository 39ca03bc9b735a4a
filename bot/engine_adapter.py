"""The seam between the conversation service and the dialog engine.

``EngineAdapter`` names exactly what ``bot.conversation`` needs from an engine,
so its plumbing (state, actions, transcript, hygiene) can be tested with a
tiny stand-in; ``DialogEngine`` binds the real engine of ``bot/engine``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from bot.i18n import Catalogs


class OutMessage(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def options(self) -> Sequence[Sequence[tuple[str, str]]]: ...
    @property
    def contact_button(self) -> str | None: ...
    @property
    def remove_keyboard(self) -> bool: ...


class ActionCall(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def args(self) -> dict[str, Any]: ...


class StepOutput(Protocol):
    @property
    def state(self) -> Any: ...
    @property
    def messages(self) -> Sequence[OutMessage]: ...
    @property
    def actions(self) -> Sequence[ActionCall]: ...
    @property
    def delete_input(self) -> bool: ...
    @property
    def escalate(self) -> str | None: ...


class EngineAdapter(Protocol):
    """What the conversation service needs from the dialog engine."""

    def load(self, directory: Path, catalogs: Catalogs) -> Any:
        """Load and check the dialogs; raise with ``file:line: …`` messages when broken."""

    def new_state(self, locale: str) -> Any:
        """A fresh conversation in ``locale``."""

    def state_from_json(self, data: dict[str, Any]) -> Any: ...
    def state_to_json(self, state: Any) -> dict[str, Any]: ...
    def locale(self, state: Any) -> str: ...

    def sensitive(self, dialogs: Any, state: Any) -> bool:
        """Whether the step waiting for input asks for a one-time code."""

    def label(self, dialogs: Any, state: Any, option_id: str, catalogs: Catalogs) -> str | None:
        """The label of button ``option_id`` as the customer saw it at this step, or None."""

    def step(self, dialogs: Any, state: Any, event: Any, catalogs: Catalogs) -> StepOutput: ...
    def action_result(self, name: str, outcome: str, data: dict[str, Any]) -> Any: ...

    def resume(self, dialogs: Any, state: Any, catalogs: Catalogs, *, menu: bool) -> StepOutput:
        """Show again the step the conversation is at, or the main menu (an agent handed back)."""

    def say(
        self, dialogs: Any, catalogs: Catalogs, locale: str, message_id: str, **params: Any
    ) -> str:
        """Render a named message of ``dialogs/messages.yaml``; KeyError if there is none."""


class PlainMessage:
    """A plain message with no buttons (the engine's own type is not needed for these)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.options: Sequence[Sequence[tuple[str, str]]] = ()
        self.contact_button: str | None = None
        self.remove_keyboard = False


class DialogEngine:
    """The real engine of ``bot/engine`` behind ``EngineAdapter``."""

    def load(self, directory: Path, catalogs: Catalogs) -> Any:
        """``bot.engine.load_dialogs``: raises ``DialogErrors`` listing ``file:line: …``."""
        from bot.engine import DialogErrors, load_dialogs
        from bot.notices import REQUIRED_MESSAGES

        dialogs = load_dialogs(directory, catalogs)
        missing = [m for m in REQUIRED_MESSAGES if m not in dialogs.messages]
        if missing:
            where = directory / "messages.yaml"
            raise DialogErrors(
                [
                    f"{where}: missing named message {m!r} (the conversation service shows it)"
                    for m in missing
                ]
            )
        return dialogs

    def new_state(self, locale: str) -> Any:
        from bot.engine.state import State

        return State(locale=locale)

    def state_from_json(self, data: dict[str, Any]) -> Any:
        from bot.engine.state import State

        return State.from_json(data)

    def state_to_json(self, state: Any) -> dict[str, Any]:
        return dict(state.to_json())

    def locale(self, state: Any) -> str:
        return str(state.locale)

    def sensitive(self, dialogs: Any, state: Any) -> bool:
        frame = state.frame
        if frame is None:
            return False
        try:
            return bool(dialogs.step(frame.flow, frame.step).sensitive)
        except KeyError:
            return False

    def label(self, dialogs: Any, state: Any, option_id: str, catalogs: Catalogs) -> str | None:
        from bot.engine.phrasings import main_menu
        from bot.engine.render import render_text

        # The step's own buttons first, then the menu's (a journey offered mid-way).
        steps = []
        if state.frame is not None:
            with contextlib.suppress(KeyError):
                steps.append(dialogs.step(state.frame.flow, state.frame.step))
        steps.append(main_menu(dialogs))
        for step in steps:
            option = step.option(option_id) if step is not None else None
            if option is not None:
                return render_text(option.label, catalogs.translator(state.locale), state.vars)
        return None

    def step(self, dialogs: Any, state: Any, event: Any, catalogs: Catalogs) -> StepOutput:
        from bot.engine import step

        result: StepOutput = step(dialogs, state, event, catalogs)
        return result

    def action_result(self, name: str, outcome: str, data: dict[str, Any]) -> Any:
        from bot.engine.events import ActionResult

        return ActionResult(name, outcome, data)

    def resume(self, dialogs: Any, state: Any, catalogs: Catalogs, *, menu: bool) -> StepOutput:
        from bot.engine import resume

        result: StepOutput = resume(dialogs, state, catalogs, menu=menu)
        return result

    def say(
        self, dialogs: Any, catalogs: Catalogs, locale: str, message_id: str, **params: Any
    ) -> str:
        from bot.engine.render import render_message

        return render_message(dialogs, catalogs.translator(locale), message_id, **params)
