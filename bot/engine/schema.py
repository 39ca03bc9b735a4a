"""Reading the parts of a dialog file: texts, transitions, options and branch cases.

``FieldReader`` turns line-aware YAML values (``bot.engine.yamlsrc``) into model
objects and notes every problem as ``file:line: message`` instead of stopping at
the first; ``bot.engine.loader`` builds steps and flows on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.engine.model import STEP_KINDS, Case, Condition, Option, Text, Transition, Where
from bot.engine.yamlsrc import LineDict, LineList

STEP_KEYS = {*STEP_KINDS, "id", "next", "args", "on", "comment"}
ASK_KEYS = {
    "text", "context", "comment", "options", "validator", "save", "sensitive",
    "max_tries", "contact_button", "columns", "multiple", "waits",
}  # fmt: skip
SAY_KEYS = {"text", "context", "comment", "message", "render"}
OPTION_KEYS = {
    "id",
    "label",
    "literal",
    "context",
    "comment",
    "next",
    "goto",
    "call",
    "end",
    "set",
    "select",
    "done",
    "when",
}
TRANSITION_KEYS = {"next", "goto", "call", "end", "set"}
CONDITION_OPS = {"eq", "ne", "in", "set", "gt", "lt"}


class FieldReader:
    """Reads the parts of one dialog file (texts, transitions, options, cases), noting errors."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        self.file = path.as_posix()
        self.errors = errors

    def at(self, line: int) -> Where:
        """A place in this file."""
        return Where(self.file, line)

    def error(self, line: int, message: str) -> None:
        """Note a problem at ``line``."""
        self.errors.append(f"{self.file}:{line}: {message}")

    def unknown_keys(self, data: LineDict, allowed: set[str], what: str) -> None:
        """Note every key of ``data`` not in ``allowed`` (typos, misplaced keys)."""
        for key in data:
            if key not in allowed:
                self.error(data.line_of(key), f"unknown key {key!r} in {what}")

    def text(self, owner: LineDict, key: str, what: str) -> Text | None:
        """A ``text``/``label`` value: a string, or a plural mapping {one, other, count}."""
        value = owner.get(key)
        line = owner.line_of(key)
        context = owner.get("context")
        context = context if isinstance(context, str) else None
        if isinstance(value, str):
            if not value.strip():
                self.error(line, f"{what}: {key} is empty")
            return Text(self.at(line), value, context=context)
        if isinstance(value, LineDict):
            self.unknown_keys(value, {"one", "other", "count"}, f"{what} plural {key}")
            one, other, count = value.get("one"), value.get("other"), value.get("count")
            if not (isinstance(one, str) and isinstance(other, str) and isinstance(count, str)):
                self.error(line, f"{what}: a plural {key} needs text 'one', 'other' and 'count'")
                return None
            return Text(self.at(line), one, plural=other, count=count, context=context)
        self.error(line, f"{what}: {key} must be text")
        return None

    def transition(self, data: LineDict, what: str) -> Transition:
        """The target keys of a mapping (option, case, outcome): next / goto / call / end / set."""
        targets = [k for k in ("goto", "end") if k in data]
        if "call" in data:
            targets.append("call")
        elif "next" in data:
            targets.append("next")
        if len(targets) > 1:
            self.error(data.line, f"{what}: choose one of next, goto, call, end")
        values: dict[str, str | None] = {}
        for key in ("next", "goto", "call"):
            raw = data.get(key)
            if raw is not None and not isinstance(raw, str):
                self.error(data.line_of(key), f"{what}: {key} must be a step or flow name")
                raw = None
            values[key] = raw
        end = data.get("end", False)
        if end is not True and "end" in data:
            self.error(data.line_of("end"), f"{what}: end must be true")
        sets = data.get("set", {})
        if not isinstance(sets, dict) or not all(isinstance(k, str) for k in sets):
            self.error(data.line_of("set"), f"{what}: set must map names to values")
            sets = {}
        return Transition(
            self.at(data.line),
            next=values["next"],
            goto=values["goto"],
            call=values["call"],
            end=end is True,
            set=dict(sets),
        )

    def target(self, raw: Any, line: int, what: str) -> Transition:
        """An outcome's target: a step id, or a mapping like an option's."""
        if isinstance(raw, str):
            return Transition(self.at(line), next=raw)
        if isinstance(raw, LineDict):
            self.unknown_keys(raw, TRANSITION_KEYS, what)
            return self.transition(raw, what)
        self.error(line, f"{what}: expected a step id or a mapping with next/goto/call/end")
        return Transition(self.at(line), end=True)

    def options(self, ask: LineDict, what: str) -> tuple[Option, ...]:
        """The options of an ask, each with a stable id and a label."""
        if "options" not in ask:
            return ()
        raw = ask["options"]
        if not isinstance(raw, LineList):
            self.error(ask.line_of("options"), f"{what}: options must be a list")
            return ()
        options: list[Option] = []
        seen: dict[str, int] = {}
        for item, line in zip(raw, raw.item_lines, strict=True):
            if not isinstance(item, LineDict):
                self.error(line, f"{what}: an option must be a mapping with id and label")
                continue
            self.unknown_keys(item, OPTION_KEYS, f"{what} option")
            option_id = item.get("id")
            if not isinstance(option_id, str) or not option_id:
                self.error(line, f"{what}: option without an id (ids are what buttons send back)")
                continue
            label_what = f"{what} option {option_id!r}"
            if option_id in seen:
                self.error(
                    line,
                    f"{what}: duplicate option id {option_id!r} (first on line {seen[option_id]})",
                )
            seen[option_id] = line
            if "literal" in item:
                literal = item["literal"]
                if not isinstance(literal, str) or not literal:
                    self.error(item.line_of("literal"), f"{label_what}: literal must be text")
                    continue
                label = Text(self.at(item.line_of("literal")), literal, literal=True)
            elif "label" in item:
                found = self.text(item, "label", label_what)
                if found is None:
                    continue
                label = found
            else:
                self.error(line, f"{label_what}: needs a label")
                continue
            flags = {}
            for key in ("select", "done"):
                flags[key] = item.get(key, False)
                if not isinstance(flags[key], bool):
                    self.error(item.line_of(key), f"{label_what}: {key} must be true or false")
                    flags[key] = False
            options.append(
                Option(
                    self.at(line),
                    option_id,
                    label,
                    self.transition(item, label_what),
                    select=flags["select"],
                    done=flags["done"],
                    when=self.conditions(item, label_what),
                )
            )
        return tuple(options)

    def condition(self, path: str, raw: Any) -> Condition | None:
        """One branch condition: a value (equality) or ``{op: value}``; None if malformed."""
        if isinstance(raw, LineDict):
            if len(raw) != 1 or next(iter(raw)) not in CONDITION_OPS:
                return None
            op = next(iter(raw))
            return Condition(path, op, raw[op])
        return Condition(path, "eq", raw)

    def conditions(self, item: LineDict, what: str) -> tuple[Condition, ...]:
        """``when:`` of a case or an option: every condition must hold."""
        when = item.get("when", LineDict())
        conditions: list[Condition] = []
        if not isinstance(when, LineDict):
            self.error(item.line_of("when"), f"{what}: when must map names to values")
            return ()
        for path, value in when.items():
            condition = self.condition(path, value)
            if condition is None:
                self.error(
                    when.line_of(path),
                    f"{what}: condition on {path!r} must be a value or one of {sorted(CONDITION_OPS)}",
                )
            else:
                conditions.append(condition)
        return tuple(conditions)

    def cases(self, raw: Any, line: int, what: str) -> tuple[Case, ...]:
        """The cases of a branch; the last must be the default."""
        if not isinstance(raw, LineList) or not raw:
            self.error(line, f"{what}: branch must be a list of cases")
            return ()
        cases: list[Case] = []
        for item, item_line in zip(raw, raw.item_lines, strict=True):
            if not isinstance(item, LineDict):
                self.error(item_line, f"{what}: a case must be a mapping")
                continue
            self.unknown_keys(item, {"when", *TRANSITION_KEYS}, f"{what} case")
            conditions = self.conditions(item, what)
            then = self.transition(item, f"{what} case")
            if then.empty:
                self.error(item_line, f"{what}: a case needs next, goto, call or end")
            cases.append(Case(self.at(item_line), conditions, then))
        if cases and cases[-1].conditions:
            self.error(raw.line, f"{what}: the last case must have no 'when' (the default)")
        return tuple(cases)
