"""What ``dialogs check`` verifies beyond the schema; every problem is ``file:line: message``.

- references: step, flow, validator, action, renderer and message names exist;
  every declared outcome of an action is handled; required flows are there;
- reachability: every step can be reached from its flow's start;
- buttons: callback data (option id, plus a channel prefix) fits Telegram's 64 bytes;
- translations: every text is translated in every shipped locale;
- safety: every path to ``submit_request`` for an erasure or a contact change
  passes a successful verification, shows what will change, and then takes an
  explicit ``yes`` (a path analysis over the flow graph, calls included); every
  path to a copy of the customer's data (``request_copy``) passes a successful
  verification.
"""

from __future__ import annotations

import string
from collections import deque
from collections.abc import Iterator
from typing import Any

from bot.engine.model import Dialogs, Flow, Step, Text, Transition, Where
from bot.engine.registry import (
    ACTIONS,
    COPY_ACTION,
    ENGINE_MESSAGES,
    ENGINE_VALUES,
    GUARDED_KINDS,
    PREVIEW_RENDER,
    RENDERERS,
    REQUIRED_FLOWS,
    SESSION_EXPIRED,
    SUBMIT_ACTION,
    VALIDATORS,
    VERIFIED_OUTCOME,
    VERIFYING_ACTION,
)
from bot.i18n import SHIPPED_LOCALES, Catalogs
from common.vocabulary.request_kinds import ACCESS, ERASURE, UPDATE_CONTACT

CALLBACK_LIMIT = 64
# Room kept for a channel's short prefix and colon (``o:email``) within the 64 bytes.
CALLBACK_PREFIX_RESERVE = 8
MAX_CALL_DEPTH = 8


def exits(step: Step) -> Iterator[tuple[str, Transition]]:
    """Every way out of a step, as (what it is, transition); the default is made explicit."""
    default = Transition(step.where, next=step.after, end=step.after is None)

    def or_default(then: Transition) -> Transition:
        if not then.empty:
            return then
        return Transition(then.where, next=step.after, end=step.after is None, set=then.set)

    if step.kind == "say":
        yield "next", default
    elif step.kind == "ask":
        for option in step.options:
            if not option.select:  # a select option only toggles; the question stays
                yield f"option {option.id}", or_default(option.then)
        ids = {o.id for o in step.options}
        answered_by_options = step.validator == "yes_no" and {"yes", "no"} <= ids
        if step.validator is not None and not answered_by_options:
            yield "answer", default
    elif step.kind == "action":
        for outcome, then in step.on.items():
            yield f"outcome {outcome}", or_default(then)
    elif step.kind == "branch":
        for index, case in enumerate(step.cases):
            yield f"case {index}", or_default(case.then)
    elif step.kind == "goto":
        yield "goto", Transition(step.where, goto=step.target)
    elif step.kind == "call":
        yield "call", Transition(step.where, call=step.target, next=step.after)
    else:
        yield "end", Transition(step.where, end=True)


def _texts(dialogs: Dialogs) -> Iterator[Text]:
    for flow in dialogs.flows.values():
        for step in flow.steps.values():
            if step.text is not None:
                yield step.text
            if step.contact_button is not None:
                yield step.contact_button
            for option in step.options:
                yield option.label
    yield from dialogs.messages.values()


def check_references(dialogs: Dialogs) -> list[str]:
    """Unknown names, unhandled outcomes, missing required flows and messages, long callback data."""
    errors: list[str] = []
    for name in REQUIRED_FLOWS:
        if name not in dialogs.flows:
            errors.append(
                f"{dialogs.directory.as_posix()}: flow {name!r} is missing (the engine enters it)"
            )
    start = dialogs.flows.get("start")
    if start is not None and start.home is None:
        errors.append(f"{start.where}: flow 'start' needs 'home:' (the step journeys return to)")
    anchor = next(iter(dialogs.messages.values()), None)
    where = str(anchor.where).rsplit(":", 1)[0] if anchor else dialogs.directory.as_posix()
    for message_id in ENGINE_MESSAGES:
        if message_id not in dialogs.messages:
            errors.append(f"{where}: message {message_id!r} is missing (code renders it)")
    for flow in dialogs.flows.values():
        for step in flow.steps.values():
            errors.extend(_step_references(dialogs, flow, step))
    return errors


def _step_references(dialogs: Dialogs, flow: Flow, step: Step) -> Iterator[str]:
    what = f"{step.where}: step {flow.name}.{step.id}"
    if step.kind == "ask" and step.validator is not None and step.validator not in VALIDATORS:
        yield f"{what}: unknown validator {step.validator!r} (known: {', '.join(VALIDATORS)})"
    if step.kind == "ask" and step.validator == "code" and not step.sensitive:
        yield f"{what}: a one-time code question must be 'sensitive: true' (the code is deleted from the chat)"
    if step.render is not None and step.render not in RENDERERS:
        yield f"{what}: unknown renderer {step.render!r} (known: {', '.join(RENDERERS)})"
    if step.message is not None and step.message not in dialogs.messages:
        yield f"{what}: unknown message {step.message!r}"
    if step.kind == "action" and step.action is not None:
        spec = ACTIONS.get(step.action)
        if spec is None:
            yield f"{what}: unknown action {step.action!r} (known: {', '.join(ACTIONS)})"
        else:
            for outcome in spec.outcomes:
                if outcome not in step.on:
                    yield f"{what}: outcome {outcome!r} of {step.action} is not handled (add it under on:)"
            for outcome, then in step.on.items():
                if outcome not in spec.outcomes:
                    yield f"{then.where}: {step.action} has no outcome {outcome!r} (it has: {', '.join(spec.outcomes)})"
    if step.kind in ("goto", "call") and step.target not in dialogs.flows:
        yield f"{what}: {step.kind} to unknown flow {step.target!r}"
    for option in step.options:
        size = len(option.id.encode("utf-8"))
        if size + CALLBACK_PREFIX_RESERVE > CALLBACK_LIMIT:
            yield (
                f"{option.where}: option id {option.id!r} is {size} bytes; with a channel prefix the "
                f"callback data would pass Telegram's {CALLBACK_LIMIT}-byte limit "
                f"(keep ids under {CALLBACK_LIMIT - CALLBACK_PREFIX_RESERVE} bytes)"
            )
        if step.save == "locale" and option.id not in SHIPPED_LOCALES:
            yield f"{option.where}: language option {option.id!r} is not a shipped locale"
    if step.after is not None and step.after not in flow.steps:
        yield f"{what}: next step {step.after!r} is not in flow {flow.name!r}"
    # goto and call steps were checked above; these are options, outcomes and cases.
    for _, then in exits(step) if step.kind in ("ask", "action", "branch") else ():
        if then.next is not None and then.next not in flow.steps and then.next != step.after:
            yield f"{then.where}: unknown step {then.next!r} in flow {flow.name!r}"
        for target in (then.goto, then.call):
            if target is not None and target not in dialogs.flows:
                yield f"{then.where}: unknown flow {target!r}"


def _refs(value: Any) -> Iterator[str]:
    """Names a value refers to with ``$name``, inside lists and mappings too."""
    if isinstance(value, str) and value.startswith("$"):
        yield value[1:]
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _refs(item)


def _placeholders(text: Text) -> Iterator[str]:
    if text.literal:
        return
    for source in (text.source, text.plural):
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(source or "") if f]
        except ValueError:
            continue  # A stray brace is shown as written; the translators' check flags it.
        yield from fields
    if text.count is not None:
        yield text.count


def _uses(step: Step) -> Iterator[tuple[Where, str]]:
    """(where, name) for every value a step names: $args, sets, conditions, placeholders."""
    for name in _refs(step.args):
        yield step.where, name
    for text in (step.text, step.contact_button):
        for name in _placeholders(text) if text is not None else ():
            yield text.where if text is not None else step.where, name
    for option in step.options:
        for name in [*_placeholders(option.label), *_refs(option.then.set)]:
            yield option.where, name
        for condition in option.when:
            yield option.where, condition.path
    for then in step.on.values():
        for name in _refs(then.set):
            yield then.where, name
    for case in step.cases:
        for condition in case.conditions:
            yield case.where, condition.path
            yield from ((case.where, n) for n in _refs(condition.value))
        yield from ((case.where, n) for n in _refs(case.then.set))


def check_names(dialogs: Dialogs) -> list[str]:
    """Values named (``$name``, ``{name}``, ``when: {name: …}``) that nothing provides: typos."""
    known = {*ENGINE_VALUES, "count"}
    for spec in ACTIONS.values():
        known.update(spec.data)
    steps = [s for f in dialogs.flows.values() for s in f.steps.values()]
    for step in steps:
        if step.save:
            known.add(step.save)
        transitions = (
            [o.then for o in step.options] + list(step.on.values()) + [c.then for c in step.cases]
        )
        for then in transitions:
            known.update(then.set)
    errors: list[str] = []
    for step in steps:
        for where, name in _uses(step):
            head = name.split(".", 1)[0]
            if head not in known:
                errors.append(
                    f"{where}: unknown value {head!r} (no step saves or sets it, no action returns it)"
                )
    return errors


def check_reachability(dialogs: Dialogs) -> list[str]:
    """Steps that no path from their flow's start (or home) can reach."""
    errors: list[str] = []
    for flow in dialogs.flows.values():
        seen = {flow.start} | ({flow.home} if flow.home else set())
        queue = deque(seen)
        while queue:
            step = flow.steps[queue.popleft()]
            for _, then in exits(step):
                targets = [then.next] if then.call is None else [then.next or step.id]
                for target in targets:
                    if target is not None and target in flow.steps and target not in seen:
                        seen.add(target)
                        queue.append(target)
        for step_id, step in flow.steps.items():
            if step_id not in seen:
                errors.append(f"{step.where}: step {flow.name}.{step_id} can never be reached")
    return errors


def check_translations(dialogs: Dialogs, catalogs: Catalogs) -> list[str]:
    """Texts without a reviewed translation in a shipped locale, one error per text."""
    errors: list[str] = []
    seen: set[tuple[str, str | None]] = set()
    for text in _texts(dialogs):
        if text.literal or (text.source, text.context) in seen:
            continue
        seen.add((text.source, text.context))
        missing = [
            loc for loc in SHIPPED_LOCALES if not catalogs.has(loc, text.source, text.context)
        ]
        if missing:
            short = text.source if len(text.source) <= 48 else text.source[:45] + "..."
            errors.append(f"{text.where}: not translated in {', '.join(missing)}: {short!r}")
    return errors


# Path flags: what a path has done so far.
VERIFIED, SHOWN_ERASURE, SHOWN_CONTACT, CONFIRMED_ERASURE, CONFIRMED_CONTACT = 1, 2, 4, 8, 16
_SHOWN = {"erasure_preview": SHOWN_ERASURE, "contact_change": SHOWN_CONTACT}
_NEEDS: dict[str, tuple[int, int]] = {
    ERASURE: (SHOWN_ERASURE, CONFIRMED_ERASURE),
    UPDATE_CONTACT: (SHOWN_CONTACT, CONFIRMED_CONTACT),
}

Node = tuple[str, str, int, tuple[tuple[str, str | None], ...]]


def _edge_flags(step: Step, label: str, then: Transition, flags: int) -> int:
    if step.kind == "action":
        if step.action == VERIFYING_ACTION and label == f"outcome {VERIFIED_OUTCOME}":
            flags |= VERIFIED
        if label == f"outcome {SESSION_EXPIRED}":
            flags &= ~VERIFIED
    if step.kind == "branch":
        case = step.cases[int(label.split()[1])]
        if any(c.path == "verified" and c.op == "eq" and c.value is True for c in case.conditions):
            flags |= VERIFIED
    if step.kind == "ask" and label == "option yes":
        # A yes counts only for what was shown before it.
        if flags & SHOWN_ERASURE:
            flags |= CONFIRMED_ERASURE
        if flags & SHOWN_CONTACT:
            flags |= CONFIRMED_CONTACT
    return flags


def _submitted_kind(step: Step) -> str | None:
    args = step.args if isinstance(step.args, dict) else {}
    kind = args.get("kind")
    return kind if isinstance(kind, str) else None


def _hands_out_copy(step: Step) -> bool:
    """Whether the step asks for a copy of the customer's data (``request_copy``, kind access)."""
    return step.action == COPY_ACTION or (
        step.action == SUBMIT_ACTION and _submitted_kind(step) == ACCESS
    )


def check_guarded_paths(dialogs: Dialogs) -> list[str]:
    """Paths that reach an erasure or contact-change submit without verify, show and yes,
    or a copy of the customer's data without verify."""
    start = dialogs.flows.get("start")
    home = (start.name, start.home or start.start) if start else None
    parents: dict[Node, Node | None] = {}
    queue: deque[Node] = deque()
    for flow in dialogs.flows.values():
        node: Node = (flow.name, flow.start, 0, ())
        parents.setdefault(node, None)
        queue.append(node)
    reported: set[tuple[str, str, str]] = set()
    errors: list[str] = []
    while queue:
        node = queue.popleft()
        flow_name, step_id, flags, stack = node
        step = dialogs.flows[flow_name].steps[step_id]
        if step.render in _SHOWN:
            flags |= _SHOWN[step.render]
        if step.kind == "action" and _hands_out_copy(step) and not flags & VERIFIED:
            mark = (flow_name, step.id, "verified")
            if mark not in reported:
                reported.add(mark)
                errors.append(
                    f"{step.where}: {step.action} (access) can be reached without a successful "
                    f"verification (check_code → verified); path: {_path(node, parents)}"
                )
        elif step.kind == "action" and step.action == SUBMIT_ACTION:
            kind = _submitted_kind(step)
            if kind in GUARDED_KINDS or kind is None or kind.startswith("$"):
                errors.extend(
                    _judge(dialogs, step, flow_name, kind, flags, node, parents, reported)
                )
        for label, then in exits(step):
            after = _edge_flags(step, label, then, flags)
            for target in _targets(dialogs, flow_name, step, then, after, stack, home):
                if target not in parents:
                    parents[target] = node
                    queue.append(target)
    return errors


def _targets(
    dialogs: Dialogs,
    flow_name: str,
    step: Step,
    then: Transition,
    flags: int,
    stack: tuple[tuple[str, str | None], ...],
    home: tuple[str, str] | None,
) -> Iterator[Node]:
    if then.goto is not None:
        if then.goto in dialogs.flows:
            yield (then.goto, dialogs.flows[then.goto].start, flags, stack)
        return
    if then.call is not None:
        if then.call in dialogs.flows and len(stack) < MAX_CALL_DEPTH:
            back = then.next if then.next is not None or step.kind == "call" else step.id
            yield (then.call, dialogs.flows[then.call].start, flags, (*stack, (flow_name, back)))
        return
    if then.next is not None:
        if then.next in dialogs.flows[flow_name].steps:
            yield (flow_name, then.next, flags, stack)
        return
    # The flow ends: back to the caller (which may end at once), or home with a fresh journey.
    while stack:
        (caller, resume), stack = stack[-1], stack[:-1]
        if resume is not None:
            yield (caller, resume, flags, stack)
            return
    if home is not None:
        yield (home[0], home[1], flags & VERIFIED, ())


def _judge(
    dialogs: Dialogs,
    step: Step,
    flow_name: str,
    kind: str | None,
    flags: int,
    node: Node,
    parents: dict[Node, Node | None],
    reported: set[tuple[str, str, str]],
) -> Iterator[str]:
    shown, confirmed = _NEEDS.get(kind or "", (SHOWN_ERASURE | SHOWN_CONTACT, 0))
    problems = []
    if not flags & VERIFIED:
        problems.append(("verified", "without a successful verification (check_code → verified)"))
    if kind in _NEEDS and not flags & shown:
        what = PREVIEW_RENDER[kind]
        problems.append(("shown", f"without showing what changes (say: {{render: {what}}})"))
    elif kind not in _NEEDS and not flags & (SHOWN_ERASURE | SHOWN_CONTACT):
        problems.append(("shown", "without showing what changes"))
    if kind in _NEEDS and not flags & confirmed:
        problems.append(("confirmed", "without an explicit 'yes' after showing what changes"))
    for key, message in problems:
        mark = (flow_name, step.id, key)
        if mark in reported:
            continue
        reported.add(mark)
        yield f"{step.where}: submit_request ({kind or 'unknown kind'}) can be reached {message}; path: {_path(node, parents)}"


def _path(node: Node, parents: dict[Node, Node | None]) -> str:
    steps: list[str] = []
    current: Node | None = node
    while current is not None:
        steps.append(f"{current[0]}.{current[1]}")
        current = parents.get(current)
    steps.reverse()
    if len(steps) > 10:
        steps = [*steps[:3], "…", *steps[-6:]]
    return " → ".join(steps)
