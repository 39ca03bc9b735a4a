"""The engine-and-actions loop: one event through the dialogs and every action they ask for.

``run`` steps the pure dialog engine on the event, carries out each action
it asks for against the backend (``bot.actions``), and steps again on the
outcome until no action remains. Backend calls happen only here, and only
for the actions a step names: a menu or a button that calls no action costs
no round trip. A dialog or engine bug restarts the conversation rather than
strand the customer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.actions import FRESH_PROFILE, ActionContext, run_action
from bot.backend_client import BackendClient
from bot.channel import Button, Contact, Outgoing, Reply
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
    """What one event came to: the messages to send, the new state, whether to delete the input."""

    messages: list[OutMessage]
    state: Any
    delete_input: bool


@dataclass
class Stepper:
    """Runs events through ``engine`` on the dialogs and catalogs in use, with ``backend``."""

    engine: EngineAdapter
    dialogs: Any
    catalogs: Catalogs
    backend: BackendClient
    say: Callable[..., str]

    async def run(
        self, chat: str, state: Any, event: Any, memory: dict[str, Any], locale: str
    ) -> Stepped:
        """Step on ``event`` and on each action's outcome; ``memory`` is the action context."""
        engine = self.engine
        shared = event.phone if isinstance(event, Contact) and event.own else None
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
                outcome, data = await run_action(self.backend, ctx, call.name, dict(call.args))
                log.debug("chat %s: action %s → %s", chat, call.name, outcome)
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
            return Stepped(messages, state, delete_input)
        except Exception:
            # A bug in a dialog or the engine must not strand the customer: start over.
            log.exception("chat %s: engine failed; conversation restarted", chat)
            fresh = engine.new_state(locale)
            return Stepped([PlainMessage(self.say(locale, "engine.error"))], fresh, False)
        finally:
            memory.pop(FRESH_PROFILE, None)

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
        outcome, _ = await run_action(self.backend, ctx, "escalate", {"reason": reason})
        log.info("chat %s: escalated (%s): %s", chat, reason, outcome)
