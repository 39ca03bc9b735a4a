"""A tiny stand-in for the dialog engine, to test the conversation service's plumbing alone.

One flow: menu → (press ``count``) count presses, (press ``opt_out``) ask phone
→ ``start_verification`` → ask code (sensitive) → ``check_code`` → confirm →
``submit_request``. Texts are the step names plus values, so tests can read
where a conversation is without catalogs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.channel import Command, Press, Start, Text
from bot.i18n import Catalogs


@dataclass
class Msg:
    text: str
    options: list[list[tuple[str, str]]] = field(default_factory=list)
    contact_button: str | None = None
    remove_keyboard: bool = False


@dataclass
class Call:
    name: str
    args: dict[str, Any]


@dataclass
class Result:
    state: dict[str, Any]
    messages: list[Msg] = field(default_factory=list)
    actions: list[Call] = field(default_factory=list)
    delete_input: bool = False
    escalate: str | None = None


@dataclass
class Outcome:
    name: str
    outcome: str
    data: dict[str, Any]


class FakeEngine:
    """Implements ``bot.engine_adapter.EngineAdapter`` with the flow above."""

    def __init__(self) -> None:
        self.steps_run = 0

    def load(self, directory: Path, catalogs: Catalogs) -> dict[str, Any]:
        if (directory / "broken.yaml").exists():
            raise ValueError(f"{directory / 'broken.yaml'}:1: unknown step kind")
        return {"directory": str(directory)}

    def new_state(self, locale: str) -> dict[str, Any]:
        return {"locale": locale, "step": "menu", "count": 0, "values": {}}

    def state_from_json(self, data: dict[str, Any]) -> dict[str, Any]:
        return dict(data)

    def state_to_json(self, state: dict[str, Any]) -> dict[str, Any]:
        return dict(state)

    def locale(self, state: dict[str, Any]) -> str:
        return str(state["locale"])

    def sensitive(self, dialogs: Any, state: dict[str, Any]) -> bool:
        return bool(state["step"] == "ask_code")

    def label(
        self, dialogs: Any, state: dict[str, Any], option_id: str, catalogs: Catalogs
    ) -> str | None:
        return None

    def say(
        self, dialogs: Any, catalogs: Catalogs, locale: str, message_id: str, **params: Any
    ) -> str:
        shown = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
        return f"{message_id}[{locale}] {shown}".strip()

    def action_result(self, name: str, outcome: str, data: dict[str, Any]) -> Outcome:
        return Outcome(name, outcome, data)

    def resume(
        self, dialogs: Any, state: dict[str, Any], catalogs: Catalogs, *, menu: bool
    ) -> Result:
        state = {**state, "step": "menu"} if menu else dict(state)
        return Result(state, [Msg(f"at {state['step']}")])

    def _menu(self, state: dict[str, Any]) -> Result:
        state["step"] = "menu"
        return Result(state, [Msg("menu", [[("count", "Count"), ("opt_out", "Opt out")]])])

    def step(self, dialogs: Any, state: dict[str, Any], event: Any, catalogs: Catalogs) -> Result:
        self.steps_run += 1
        state = {**state, "values": dict(state["values"])}
        at = state["step"]
        if isinstance(event, Start):
            return self._menu(state)
        if isinstance(event, Command) and event.name == "confused":
            return Result(state, [Msg("offer a person")], escalate="misunderstanding")
        if isinstance(event, Command) and event.name == "agent":
            return Result(state, actions=[Call("escalate", {"reason": "asked"})])
        if isinstance(event, Outcome):
            return self._outcome(state, event)
        if isinstance(event, Press) and event.option_id == "count":
            state["count"] += 1
            return Result(state, [Msg(f"count {state['count']}")])
        if isinstance(event, Press) and event.option_id == "opt_out" and at == "menu":
            state["step"] = "ask_phone"
            return Result(state, [Msg("ask_phone")])
        if isinstance(event, Text) and at == "ask_phone":
            state["values"]["phone"] = event.text
            return Result(state, actions=[Call("start_verification", {"phone": event.text})])
        if isinstance(event, Text) and at == "ask_code":
            return Result(
                state, actions=[Call("check_code", {"code": event.text})], delete_input=True
            )
        if isinstance(event, Press) and event.option_id == "yes" and at == "confirm":
            payload = {"channels": ["all"]}
            call = Call("submit_request", {"kind": "marketing_opt_out", "payload": payload})
            return Result(state, actions=[call])
        if isinstance(event, Text) and at == "menu":
            state["values"]["note"] = event.text
            return Result(state, [Msg(f"noted {event.text}")])
        return Result(state, [Msg(f"stale at {at}")])

    def _outcome(self, state: dict[str, Any], event: Outcome) -> Result:
        if event.outcome == "error":
            state["step"] = "menu"
            return Result(state, [Msg("try later")])
        if event.name == "start_verification":
            state["step"] = "ask_code"
            return Result(state, [Msg(f"code sent ({event.outcome})")])
        if event.name == "check_code" and event.outcome == "verified":
            state["step"] = "confirm"
            return Result(state, [Msg("confirm", [[("yes", "Yes")]])])
        if event.name == "check_code":
            return Result(state, [Msg(f"code {event.outcome}")])
        if event.name == "submit_request":
            state["step"] = "done"
            return Result(state, [Msg(f"submitted {event.data.get('reference')}")])
        return Result(state, [Msg(f"{event.name} {event.outcome}")])
