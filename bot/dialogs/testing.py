"""Scripted dialog tests (``dialogs/tests/*.yaml``): the customer's turns and what the bot must do.

A file holds ``tests:``, a list of scripts::

    tests:
      - name: wrong code, then the right one
        locale: en                       # the platform's language_code at /start
        steps:
          - start                        # or {start: lv}
          - press: erasure               # a button, by option id
          - share_contact: "+37120000001"
          - say: "12 34 56"              # typed text
          - command: back                # /back; also cancel, help, language, status, agent
          - send: sticker                # something the dialogs cannot read
          - action: check_code           # the bot must call it now; the script answers
            outcome: wrong_code
            data: {attempts_left: 4}
            args: {code: "123456"}       # optional: what the call must carry
          - bot: "isn't right"           # a message since the customer's last turn contains it
            not_bot: "verified"
            buttons: [resend, change_number]   # the last buttons shown, in order
            labels: ["Send a new code", "Use a different number"]  # their labels
            contact_button: true
            deleted: true                # the customer's last message is deleted
            escalate: misunderstanding
            locale: lv                   # the conversation's language now

Texts are matched as substrings of the rendered, localized messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.channel import Command, Contact, Event, Press, Start, Text, Unsupported
from bot.engine import ActionCall, ActionResult, Dialogs, OutMessage, State, StepResult, step
from bot.engine.loader import display_path
from bot.engine.registry import ACTIONS
from bot.engine.yamlsrc import LineDict, LineList, YamlError, load_yaml
from bot.i18n import Catalogs

_TURNS = ("start", "say", "press", "share_contact", "share_other_contact", "command", "send")
_CHECKS = (
    "bot",
    "not_bot",
    "buttons",
    "labels",
    "contact_button",
    "deleted",
    "escalate",
    "locale",
    "keyboard_removed",
    "silent",
)
_ACTION_KEYS = ("action", "outcome", "data", "args")
# Answered by the script runner unless a script answers it (see _Conversation.feed).
LOOKUP_ACTION = "verification_channels"


@dataclass(frozen=True)
class Item:
    """One line of a script: a customer turn, an action answer or expectations."""

    line: int
    data: dict[str, Any]


@dataclass(frozen=True)
class Script:
    """One scripted conversation."""

    file: str
    line: int
    name: str
    locale: str
    items: tuple[Item, ...]

    @property
    def where(self) -> str:
        """``file:line`` of the script."""
        return f"{self.file}:{self.line}"


class ScriptFailed(Exception):
    """The bot did not do what the script expects; the message is ``file:line: what happened``."""


def _item(raw: Any, line: int, file: str, errors: list[str]) -> Item | None:
    if isinstance(raw, str) and raw == "start":
        return Item(line, {"start": None})
    if not isinstance(raw, LineDict):
        errors.append(f"{file}:{line}: a script step must be 'start' or a mapping")
        return None
    known = {*_TURNS, *_CHECKS, *_ACTION_KEYS}
    for key in raw:
        if key not in known:
            errors.append(f"{file}:{raw.line_of(key)}: unknown script key {key!r}")
    turns = [k for k in _TURNS if k in raw]
    if len(turns) + ("action" in raw) > 1:
        errors.append(f"{file}:{line}: one customer turn or action answer per step")
    if "action" in raw:
        name = raw.get("action")
        if name not in ACTIONS:
            errors.append(f"{file}:{line}: unknown action {name!r}")
        elif raw.get("outcome") not in ACTIONS[str(name)].outcomes:
            outcomes = ", ".join(ACTIONS[str(name)].outcomes)
            errors.append(f"{file}:{line}: {name} needs an outcome, one of {outcomes}")
    return Item(line, dict(raw))


def load_scripts(directory: Path) -> tuple[list[Script], list[str]]:
    """Every script in ``directory/*.yaml``, and format errors as ``file:line: message``."""
    scripts: list[Script] = []
    errors: list[str] = []
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        file = display_path(path).as_posix()
        try:
            data = load_yaml(path.read_text(encoding="utf-8"))
        except YamlError as exc:
            errors.append(f"{file}:{exc.line}: {exc.message}")
            continue
        tests = data.get("tests") if isinstance(data, LineDict) else None
        if not isinstance(tests, LineList):
            errors.append(f"{file}:1: expected 'tests:' with a list of scripts")
            continue
        for raw, line in zip(tests, tests.item_lines, strict=True):
            if not isinstance(raw, LineDict) or not isinstance(raw.get("steps"), LineList):
                errors.append(f"{file}:{line}: a script needs name, locale and steps")
                continue
            steps: LineList = raw["steps"]
            items = [
                _item(s, sl, file, errors) for s, sl in zip(steps, steps.item_lines, strict=True)
            ]
            scripts.append(
                Script(
                    file,
                    line,
                    str(raw.get("name") or f"script at line {line}"),
                    str(raw.get("locale") or "en"),
                    tuple(i for i in items if i is not None),
                )
            )
    return scripts, errors


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _plain(text: str) -> str:
    """Any run of whitespace (no-break spaces in formatted dates too) as one space."""
    return " ".join(text.split())


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


@dataclass
class _Conversation:
    """One script played against the engine, the script answering its actions."""

    dialogs: Dialogs
    catalogs: Catalogs
    script: Script
    state: State = field(default_factory=State)
    said: list[OutMessage] = field(default_factory=list)
    pending: list[ActionCall] = field(default_factory=list)
    last: StepResult | None = None

    def fail(self, item: Item, message: str) -> ScriptFailed:
        """A ScriptFailed at ``item``'s line, with what the bot said since the last turn."""
        heard = (
            "\n".join(f"    bot: {m.text!r} {self.labelled(m)}" for m in self.said)
            or "    (the bot said nothing)"
        )
        return ScriptFailed(f"{self.script.file}:{item.line}: {message}\n{heard}")

    @staticmethod
    def buttons(message: OutMessage) -> list[str]:
        return [option_id for row in message.options for option_id, _ in row]

    @staticmethod
    def labelled(message: OutMessage) -> list[str]:
        return [f"{option_id}={label}" for row in message.options for option_id, label in row]

    def feed(self, event: Event | ActionResult, upcoming: Item | None = None) -> StepResult:
        """Step the engine with one event and remember the actions it asks for.

        ``verification_channels`` is answered as a backend with a mail server
        would (email codes on) unless the ``upcoming`` item answers it itself.
        """
        result = step(self.dialogs, self.state, event, self.catalogs)
        messages = list(result.messages)
        while (
            len(result.actions) == 1
            and result.actions[0].name == LOOKUP_ACTION
            and (upcoming is None or upcoming.data.get("action") != LOOKUP_ACTION)
        ):
            answer = ActionResult(LOOKUP_ACTION, "ok", {"email_codes": True})
            result = step(self.dialogs, result.state, answer, self.catalogs)
            messages += result.messages
        result.messages = messages
        self.state = result.state
        self.pending = list(result.actions)
        return result

    def event(self, item: Item) -> Event | None:
        """The channel event a customer turn stands for, or None."""
        data = item.data
        if "start" in data:
            return Start(language_code=str(data["start"] or self.script.locale))
        if "say" in data:
            return Text(str(data["say"]))
        if "press" in data:
            return Press(str(data["press"]))
        if "share_contact" in data:
            return Contact(str(data["share_contact"]), own=True)
        if "share_other_contact" in data:
            return Contact(str(data["share_other_contact"]), own=False)
        if "command" in data:
            return Command(str(data["command"]))
        if "send" in data:
            return Unsupported(str(data["send"]))
        return None

    def play(self, item: Item, upcoming: Item | None = None) -> None:
        """Play one script step: a customer turn or an action answer, then its checks."""
        event = self.event(item)
        if event is not None:
            if self.pending:
                raise self.fail(
                    item,
                    f"the bot is waiting for {self.pending[0].name}: answer it with 'action:' first",
                )
            self.last = self.feed(event, upcoming)
            self.said = list(self.last.messages)
        elif "action" in item.data:
            self.answer(item, upcoming)
        self.expect(item)

    def answer(self, item: Item, upcoming: Item | None = None) -> None:
        """Answer the action the bot called with the script's outcome and data."""
        name = str(item.data["action"])
        if not self.pending or self.pending[0].name != name:
            called = self.pending[0].name if self.pending else "nothing"
            raise self.fail(item, f"expected the bot to call {name}, it called {called}")
        call = self.pending[0]
        if "args" in item.data and not _subset(item.data["args"], call.args):
            raise self.fail(
                item, f"{name} was called with {call.args}, expected {item.data['args']}"
            )
        data = item.data.get("data") or {}
        result = self.feed(ActionResult(name, str(item.data["outcome"]), dict(data)), upcoming)
        self.said.extend(result.messages)

    def expect(self, item: Item) -> None:
        """Check what the bot did since the customer's last turn."""
        data = item.data
        texts = [_plain(m.text) for m in self.said]
        for wanted in _as_list(data["bot"]) if "bot" in data else []:
            if not any(_plain(wanted) in text for text in texts):
                raise self.fail(item, f"the bot did not say {wanted!r}")
        for unwanted in _as_list(data["not_bot"]) if "not_bot" in data else []:
            if any(_plain(unwanted) in text for text in texts):
                raise self.fail(item, f"the bot said {unwanted!r}")
        if "buttons" in data:
            shown = [self.buttons(m) for m in self.said if m.options]
            wanted_ids = _as_list(data["buttons"])
            if (shown[-1] if shown else []) != wanted_ids:
                raise self.fail(item, f"expected buttons {wanted_ids}")
        if "labels" in data:
            rows = [
                [label for row in m.options for _, label in row] for m in self.said if m.options
            ]
            wanted_labels = _as_list(data["labels"])
            if (rows[-1] if rows else []) != wanted_labels:
                raise self.fail(
                    item, f"expected button labels {wanted_labels}, got {rows[-1] if rows else []}"
                )
        if "contact_button" in data and any(m.contact_button for m in self.said) != bool(
            data["contact_button"]
        ):
            raise self.fail(item, f"expected contact_button {data['contact_button']}")
        if "keyboard_removed" in data and any(m.remove_keyboard for m in self.said) != bool(
            data["keyboard_removed"]
        ):
            raise self.fail(item, f"expected keyboard_removed {data['keyboard_removed']}")
        if "deleted" in data and (
            self.last is None or self.last.delete_input != bool(data["deleted"])
        ):
            raise self.fail(item, f"expected deleted {data['deleted']}")
        if "escalate" in data and (self.last is None or self.last.escalate != data["escalate"]):
            raise self.fail(item, f"expected escalate {data['escalate']!r}")
        if "silent" in data and bool(self.said) != (not data["silent"]):
            raise self.fail(item, f"expected silent {data['silent']}, the bot said {texts}")
        if "locale" in data and self.state.locale != data["locale"]:
            raise self.fail(
                item, f"expected the conversation in {data['locale']}, it is in {self.state.locale}"
            )


def run_script(dialogs: Dialogs, catalogs: Catalogs, script: Script) -> None:
    """Play one script; raise ScriptFailed at the first step the bot does not match."""
    conversation = _Conversation(dialogs, catalogs, script)
    for item, upcoming in zip(script.items, [*script.items[1:], None], strict=True):
        conversation.play(item, upcoming)


def iter_results(
    dialogs: Dialogs, catalogs: Catalogs, scripts: list[Script]
) -> Iterator[tuple[Script, str | None]]:
    """(script, failure or None) for each script."""
    for script in scripts:
        try:
            run_script(dialogs, catalogs, script)
        except ScriptFailed as exc:
            yield script, str(exc)
        else:
            yield script, None
