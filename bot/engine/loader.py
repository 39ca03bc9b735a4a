"""Read a dialogs folder into ``Dialogs``, collecting every schema error as ``file:line: message``.

The schema (``dialogs/README.md`` has it for product teams)::

    flows:
      <flow>:
        start: <step id>        # optional: the first step by default
        home: <step id>         # the start flow only: where journeys return
        steps:
          - id: <step id>
            say | ask | action | branch | goto | call | end: …
            next: <step id>     # optional: the following step by default
    messages:
      <message id>: {text: …, comment: …, context: …}
    phrasings:                  # free text: see bot.engine.phrasings
      <main-menu option id>: {<locale>: [<example>, …]}
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.engine.model import (
    STEP_KINDS,
    Dialogs,
    Flow,
    Phrasing,
    Step,
    Text,
    Transition,
)
from bot.engine.phrasings import read_phrasings
from bot.engine.schema import ASK_KEYS, SAY_KEYS, STEP_KEYS, FieldReader
from bot.engine.yamlsrc import LineDict, LineList, YamlError, load_yaml


class DialogErrors(Exception):
    """The dialog files are wrong; ``errors`` lists every problem as ``file:line: message``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Reader(FieldReader):
    """Builds the steps and flows of one file on top of the field readers."""

    def step(self, data: LineDict, line: int, flow: str) -> Step | None:
        """One step of ``flow`` from its mapping, or None (the error noted)."""
        step_id = data.get("id")
        if not isinstance(step_id, str) or not step_id:
            self.error(line, f"flow {flow!r}: a step needs an id")
            return None
        what = f"step {flow}.{step_id}"
        self.unknown_keys(data, STEP_KEYS, what)
        kinds = [k for k in STEP_KINDS if k in data]
        if len(kinds) != 1:
            self.error(line, f"{what}: needs exactly one of {', '.join(STEP_KINDS)}")
            return None
        kind = kinds[0]
        body = data[kind]
        body_line = data.line_of(kind)
        where = self.at(line)
        nxt = data.get("next")
        if nxt is not None and not isinstance(nxt, str):
            self.error(data.line_of("next"), f"{what}: next must be a step id")
            nxt = None
        common: dict[str, Any] = {"where": where, "id": step_id, "kind": kind, "after": nxt}
        if kind == "say":
            if not isinstance(body, LineDict):
                self.error(body_line, f"{what}: say needs text, message or render")
                return None
            self.unknown_keys(body, SAY_KEYS, what)
            sources = [k for k in ("text", "message", "render") if k in body]
            if len(sources) != 1:
                self.error(body_line, f"{what}: say needs exactly one of text, message, render")
                return None
            if "text" in body:
                return Step(**common, text=self.text(body, "text", what))
            ref = body[sources[0]]
            if not isinstance(ref, str):
                self.error(body.line_of(sources[0]), f"{what}: {sources[0]} must be a name")
                return None
            if sources[0] == "message":
                return Step(**common, message=ref)
            return Step(**common, render=ref)
        if kind == "ask":
            return self.ask(body, body_line, what, common)
        if kind == "action":
            if not isinstance(body, str):
                self.error(body_line, f"{what}: action must be an action name")
                return None
            on: dict[str, Transition] = {}
            raw_on = data.get("on", LineDict())
            if not isinstance(raw_on, LineDict):
                self.error(data.line_of("on"), f"{what}: on must map outcomes to steps")
            else:
                for outcome, target in raw_on.items():
                    on[outcome] = self.target(
                        target, raw_on.line_of(outcome), f"{what} on {outcome}"
                    )
            return Step(**common, action=body, args=data.get("args", {}), on=on)
        if kind == "branch":
            return Step(**common, cases=self.cases(body, body_line, what))
        if kind in ("goto", "call"):
            if not isinstance(body, str):
                self.error(body_line, f"{what}: {kind} must be a flow name")
                return None
            return Step(**common, target=body)
        if body is not True:
            self.error(body_line, f"{what}: end must be true")
        return Step(**common)

    def ask(self, body: Any, line: int, what: str, common: dict[str, Any]) -> Step | None:
        """An ``ask`` step: text, options or validator, and its limits."""
        if not isinstance(body, LineDict):
            self.error(line, f"{what}: ask needs text and options or a validator")
            return None
        self.unknown_keys(body, ASK_KEYS, what)
        text = self.text(body, "text", what) if "text" in body else None
        if text is None and "text" not in body:
            self.error(line, f"{what}: ask needs text")
        options = self.options(body, what)
        validator = body.get("validator")
        if validator is not None and not isinstance(validator, str):
            self.error(body.line_of("validator"), f"{what}: validator must be a name")
            validator = None
        if not options and validator is None and "options" not in body:
            self.error(line, f"{what}: ask needs options or a validator")
        save = body.get("save")
        if save is not None and not isinstance(save, str):
            self.error(body.line_of("save"), f"{what}: save must be a name")
            save = None
        max_tries = body.get("max_tries", 3)
        if not isinstance(max_tries, int) or isinstance(max_tries, bool) or max_tries < 1:
            self.error(
                body.line_of("max_tries"), f"{what}: max_tries must be a whole number of at least 1"
            )
            max_tries = 3
        columns = body.get("columns", 1)
        if not isinstance(columns, int) or isinstance(columns, bool) or not 1 <= columns <= 4:
            self.error(body.line_of("columns"), f"{what}: columns must be 1 to 4")
            columns = 1
        sensitive = body.get("sensitive", False)
        if not isinstance(sensitive, bool):
            self.error(body.line_of("sensitive"), f"{what}: sensitive must be true or false")
            sensitive = False
        multiple = body.get("multiple", False)
        if not isinstance(multiple, bool):
            self.error(body.line_of("multiple"), f"{what}: multiple must be true or false")
            multiple = False
        waits = body.get("waits", False)
        if not isinstance(waits, bool):
            self.error(body.line_of("waits"), f"{what}: waits must be true or false")
            waits = False
        if waits and (validator is not None or not options):
            self.error(line, f"{what}: a waiting ask needs options (the first stops waiting)")
        if multiple and (validator is not None or not any(o.select for o in options)):
            self.error(
                line, f"{what}: a multiple ask needs 'select: true' options and no validator"
            )
        if multiple and save is None:
            self.error(line, f"{what}: a multiple ask needs 'save:' (the list of choices)")
        if multiple and not any(o.done for o in options):
            self.error(line, f"{what}: a multiple ask needs an option with 'done: true'")
        for option in options:
            if (option.select or option.done) and not multiple:
                self.error(
                    option.where.line, f"{what}: select and done need 'multiple: true' on the ask"
                )
            if option.select and not option.then.empty:
                self.error(
                    option.where.line,
                    f"{what}: a select option stays on the question (no next/goto/call/end)",
                )
        button = None
        raw_button = body.get("contact_button")
        if raw_button is not None:
            if isinstance(raw_button, LineDict) and "label" in raw_button:
                self.unknown_keys(
                    raw_button, {"label", "context", "comment"}, f"{what} contact_button"
                )
                button = self.text(raw_button, "label", f"{what} contact_button")
            else:
                self.error(body.line_of("contact_button"), f"{what}: contact_button needs a label")
        return Step(
            **common,
            text=text,
            options=options,
            validator=validator,
            save=save,
            sensitive=sensitive,
            max_tries=max_tries,
            contact_button=button,
            columns=columns,
            multiple=multiple,
            waits=waits,
        )

    def flow(self, name: str, data: Any, line: int) -> Flow | None:
        """A flow and its steps, each step's default successor filled in."""
        if not isinstance(data, LineDict):
            self.error(line, f"flow {name!r}: expected a mapping with steps")
            return None
        self.unknown_keys(data, {"steps", "start", "home", "comment"}, f"flow {name!r}")
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, LineList) or not raw_steps:
            self.error(data.line_of("steps"), f"flow {name!r}: needs a non-empty list of steps")
            return None
        steps: list[Step] = []
        seen: dict[str, int] = {}
        for item, item_line in zip(raw_steps, raw_steps.item_lines, strict=True):
            if not isinstance(item, LineDict):
                self.error(item_line, f"flow {name!r}: a step must be a mapping")
                continue
            step = self.step(item, item_line, name)
            if step is None:
                continue
            if step.id in seen:
                self.error(
                    item_line,
                    f"flow {name!r}: duplicate step id {step.id!r} (first on line {seen[step.id]})",
                )
                continue
            seen[step.id] = item_line
            steps.append(step)
        if not steps:
            return None
        # A step without ``next`` goes on to the one below it; the last one ends the flow.
        ordered: dict[str, Step] = {}
        for index, step in enumerate(steps):
            follows = steps[index + 1].id if index + 1 < len(steps) else None
            if step.after is None and step.kind in ("say", "ask", "action", "call"):
                step = _replace_after(step, follows)
            ordered[step.id] = step
        start = data.get("start", steps[0].id)
        home = data.get("home")
        for key, value in (("start", start), ("home", home)):
            if value is not None and (not isinstance(value, str) or value not in ordered):
                self.error(
                    data.line_of(key), f"flow {name!r}: {key} {value!r} is not a step of this flow"
                )
        return Flow(
            self.at(line),
            name,
            ordered,
            start if isinstance(start, str) and start in ordered else steps[0].id,
            home if isinstance(home, str) and home in ordered else None,
        )

    def messages(self, data: Any, line: int) -> dict[str, Text]:
        """The named messages of a ``messages:`` mapping."""
        if not isinstance(data, LineDict):
            self.error(line, "messages must map message ids to {text: …}")
            return {}
        found: dict[str, Text] = {}
        for message_id, body in data.items():
            at = data.line_of(message_id)
            if (
                not isinstance(body, LineDict)
                or len([k for k in ("text", "label") if k in body]) != 1
            ):
                self.error(at, f"message {message_id!r}: needs text (or label)")
                continue
            self.unknown_keys(
                body, {"text", "label", "context", "comment"}, f"message {message_id!r}"
            )
            text = self.text(body, "text" if "text" in body else "label", f"message {message_id!r}")
            if text is not None:
                found[message_id] = text
        return found


def _replace_after(step: Step, after: str | None) -> Step:
    return replace(step, after=after)


def display_path(path: Path) -> Path:
    """Paths relative to the working directory when possible: shorter, clickable errors."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def read_dialogs(directory: Path) -> tuple[Dialogs, list[str]]:
    """Read every ``*.yaml`` in ``directory`` (not its ``tests/``); return the model and errors."""
    errors: list[str] = []
    flows: dict[str, Flow] = {}
    messages: dict[str, Text] = {}
    phrasings: list[Phrasing] = []
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not files:
        errors.append(f"{display_path(directory).as_posix()}: no dialog files (*.yaml) here")
    for path in files:
        reader = _Reader(display_path(path), errors)
        try:
            data = load_yaml(path.read_text(encoding="utf-8"))
        except YamlError as exc:
            reader.error(exc.line, exc.message)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            reader.error(1, f"cannot read: {exc}")
            continue
        if not isinstance(data, LineDict):
            reader.error(1, "expected a mapping with 'flows', 'messages' and/or 'phrasings'")
            continue
        reader.unknown_keys(data, {"flows", "messages", "phrasings"}, "a dialog file")
        if "phrasings" in data:
            phrasings += read_phrasings(reader, data["phrasings"], data.line_of("phrasings"))
        if "messages" in data:
            for message_id, text in reader.messages(
                data["messages"], data.line_of("messages")
            ).items():
                if message_id in messages:
                    reader.error(
                        text.where.line,
                        f"duplicate message id {message_id!r} (also {messages[message_id].where})",
                    )
                messages[message_id] = text
        if "flows" not in data:
            continue
        raw_flows = data["flows"]
        if not isinstance(raw_flows, LineDict):
            reader.error(data.line_of("flows"), "flows must map flow names to flows")
            continue
        for name, body in raw_flows.items():
            flow = reader.flow(name, body, raw_flows.line_of(name))
            if flow is None:
                continue
            if name in flows:
                reader.error(flow.where.line, f"duplicate flow {name!r} (also {flows[name].where})")
                continue
            flows[name] = flow
    return Dialogs(directory, flows, messages, tuple(phrasings)), errors
