"""The engine-and-actions loop: one event through the dialogs and every action they ask for.

``run`` steps the pure dialog engine on the event, carries out each action
it asks for against the backend (``bot.actions``), and steps again on the
outcome until no action remains. Backend calls happen only here, and only
for the actions a step names: a menu or a button that calls no action costs
no round trip. A dialog or engine bug restarts the conversation rather than
strand the customer.

``replay`` keeps what each action came to (outcome, memory after, copy) for
one update. An update tried again because its state was not saved
(``bot.telegram.retries``) steps from the same state, so the dialogs ask for
the same actions: each is answered from ``replay`` rather than the backend,
so a code checked (and spent) before the save failed counts as checked,
once. An action that differs from the one recorded ends the replay there.
"""

from __future__ import annotations

import copy as copying
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.access_copy import SENDING_MESSAGE, Texts, documents, from_answer
from bot.actions import FRESH_PROFILE, ActionContext, run_action
from bot.backend_client import BackendClient
from bot.channel import Button, Contact, Document, Outgoing, Reply
from bot.engine_adapter import EngineAdapter, OutMessage, PlainMessage
from bot.i18n import Catalogs

log = logging.getLogger(__name__)

# Each event may set off a chain of actions; a dialog looping on actions is a bug, not a wait.
MAX_ACTIONS_PER_EVENT = 20


def replies(messages: Sequence[OutMessage]) -> list[Outgoing]:
    """The engine's messages as the channel sends them."""
    return [
        Reply(
            text=m.text,
            buttons=tuple(
                tuple(Button(data=i, label=label) for i, label in row) for row in m.options
            ),
            contact_button=m.contact_button,
            remove_keyboard=m.remove_keyboard,
        )
        for m in messages
    ]


@dataclass
class Stepped:
    """What one event came to: the messages to send, the new state, whether to delete the input.

    ``documents`` (a copy of the customer's data) go right after the first
    ``documents_after`` messages.
    """

    messages: list[OutMessage]
    state: Any
    delete_input: bool
    documents: list[Document] = field(default_factory=list)
    documents_after: int = 0

    def outgoing(self) -> list[Outgoing]:
        """The messages, with the documents in their place, as the channel sends them."""
        sent = replies(self.messages)
        return [*sent[: self.documents_after], *self.documents, *sent[self.documents_after :]]


@dataclass(frozen=True)
class Recorded:
    """One action an update's step ran: the call, what it came to, the memory after it."""

    name: str
    args: dict[str, Any]
    outcome: str
    data: dict[str, Any]
    memory: dict[str, Any]
    copy: dict[str, Any] | None


@dataclass
class Stepper:
    """Runs events through ``engine`` on the dialogs and catalogs in use, with ``backend``.

    ``replay``: the actions an earlier attempt at the same update ran (it is
    appended to as actions run).
    """

    engine: EngineAdapter
    dialogs: Any
    catalogs: Catalogs
    backend: BackendClient
    say: Callable[..., str]
    replay: list[Recorded] = field(default_factory=list)
    _done: int = field(default=0, init=False)

    async def _act(self, ctx: ActionContext, name: str, args: dict[str, Any]) -> tuple[str, Any]:
        """``run_action``, or what it came to when an earlier attempt ran the same call."""
        at, self._done = self._done, self._done + 1
        if at < len(self.replay):
            done = self.replay[at]
            if (done.name, done.args) == (name, args):
                ctx.memory.clear()
                ctx.memory.update(copying.deepcopy(done.memory))
                ctx.copy = done.copy
                return done.outcome, copying.deepcopy(done.data)
            del self.replay[at:]
        outcome, data = await run_action(self.backend, ctx, name, args)
        self.replay.append(
            Recorded(
                name,
                copying.deepcopy(args),
                outcome,
                copying.deepcopy(data),
                copying.deepcopy(ctx.memory),
                ctx.copy,
            )
        )
        return outcome, data

    async def run(
        self, chat: str, state: Any, event: Any, memory: dict[str, Any], locale: str
    ) -> Stepped:
        """Step on ``event`` and on each action's outcome; ``memory`` is the action context."""
        engine = self.engine
        shared = event.phone if isinstance(event, Contact) and event.own else None
        copy: dict[str, Any] | None = None
        try:
            result = engine.step(self.dialogs, state, event, self.catalogs)
            messages, delete_input = list(result.messages), result.delete_input
            state = result.state
            queue = deque(result.actions)
            escalated: set[str] = set()
            await self._escalate(chat, state, memory, result.escalate, escalated)
            for _ in range(MAX_ACTIONS_PER_EVENT):
                if not queue:
                    break
                call = queue.popleft()
                ctx = ActionContext(chat, engine.locale(state), memory, shared)
                outcome, data = await self._act(ctx, call.name, dict(call.args))
                log.debug("chat %s: action %s → %s", chat, call.name, outcome)
                copy = ctx.copy or copy
                if call.name == "escalate":
                    escalated.add("done")
                event_back = engine.action_result(call.name, outcome, data)
                result = engine.step(self.dialogs, state, event_back, self.catalogs)
                messages += result.messages
                state = result.state
                queue.extend(result.actions)
                reason = "lockout" if outcome == "locked_out" else result.escalate
                await self._escalate(chat, state, memory, reason, escalated)
            else:
                log.error(
                    "chat %s: more than %d actions for one event", chat, MAX_ACTIONS_PER_EVENT
                )
            stepped = Stepped(messages, state, delete_input)
            if copy is not None:
                self._attach(stepped, copy, engine.locale(state))
            return stepped
        except Exception:
            # A bug in a dialog or the engine must not strand the customer: start over.
            log.exception("chat %s: engine failed; conversation restarted", chat)
            fresh = engine.new_state(locale)
            return Stepped([PlainMessage(self.say(locale, "engine.error"))], fresh, False)
        finally:
            memory.pop(FRESH_PROFILE, None)

    def _attach(self, stepped: Stepped, answer: dict[str, Any], locale: str) -> None:
        """Add the copy's documents after the dialog's ``access.sending`` message (else last)."""
        found = from_answer(answer)
        if found is None:
            return
        texts = Texts(lambda message_id, **params: self.say(locale, message_id, **params))
        stepped.documents = documents(found, locale, texts)
        sending = texts.say(SENDING_MESSAGE)
        at = next(
            (i + 1 for i, m in enumerate(stepped.messages) if m.text == sending),
            len(stepped.messages),
        )
        stepped.documents_after = at

    async def _escalate(
        self, chat: str, state: Any, memory: dict[str, Any], reason: str | None, done: set[str]
    ) -> None:
        """Queue the chat for an agent (repeated misunderstanding, lockout) once per event.

        The dialogs still offer the customer a person; accepting runs their
        ``escalate`` action, which finds this escalation open and reuses it.
        """
        if reason is None or done:
            return
        done.add(reason)
        ctx = ActionContext(chat, self.engine.locale(state), memory)
        outcome, _ = await self._act(ctx, "escalate", {"reason": reason})
        log.info("chat %s: escalated (%s): %s", chat, reason, outcome)
