"""Backend notifications rendered as chat messages, from named messages in ``dialogs/messages.yaml``.

``render(notification, say, translator)`` answers the texts to show, in the
notification's locale: a request's outcome (done; partly done with what was
kept, why and until when; rejected with the reason; failed; a contact change undone;
escalated) or the
agent hand-over (joined, a message, left). ``say(id, **params)`` renders one
named message; dates go through ``Translator.format_date`` so every end date
reads as the customer's locale writes it. No sentence lives here.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

from bot.i18n import Translator
from common.vocabulary.categories import PRODUCT_OPEN_BASIS

log = logging.getLogger(__name__)

Say = Callable[..., str]

AGENT_TYPES = ("agent_joined", "agent_message", "agent_left")

# Named messages the conversation service renders itself; dialogs without one are refused.
REQUIRED_MESSAGES = (
    *(f"outcome.{name}" for name in ("done", "partly_done", "erased", "hold_until")),
    *(f"outcome.{name}" for name in ("hold_while_open", "rejected", "failed", "escalated")),
    "outcome.hold_while_open_plain",
    "reason.unknown",
    "basis.unknown",
    "category.contact",
    "agent.joined",
    "agent.joined_anonymous",
    "agent.left",
    *(f"hygiene.{kind}" for kind in ("code", "card", "iban", "national_id")),
    *(f"command_menu.{name}" for name in ("start", "cancel", "back", "help")),
    *(f"command_menu.{name}" for name in ("language", "status", "agent")),
    "engine.error",
)


def _date(value: Any, translator: Translator) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return translator.format_date(datetime.date.fromisoformat(value[:10]))
    except ValueError:
        return None


def _named(say: Say, prefix: str, code: str, fallback: str, **params: Any) -> str:
    """``prefix.code`` if the dialogs define it, else ``prefix.fallback``."""
    try:
        return say(f"{prefix}.{code}", **params)
    except KeyError:
        return say(f"{prefix}.{fallback}", **params)


def _holds(details: dict[str, Any], say: Say, translator: Translator) -> list[str]:
    lines: list[str] = []
    for hold in details.get("holds") or []:
        if not isinstance(hold, dict):
            continue
        category = _named(say, "category", str(hold.get("category")), "contact")
        basis = _named(say, "basis", str(hold.get("basis")), "unknown")
        until = _date(hold.get("until"), translator)
        if until is not None:
            lines.append(say("outcome.hold_until", category=category, until=until, basis=basis))
        elif hold.get("basis") == PRODUCT_OPEN_BASIS:
            # That basis only repeats the condition: "while your product is open".
            lines.append(say("outcome.hold_while_open_plain", category=category))
        else:
            lines.append(say("outcome.hold_while_open", category=category, basis=basis))
    return lines


def _reason(reason: Any, say: Say) -> str:
    code = str(reason or "unknown")
    kind, _, detail = code.partition(":")
    if detail:
        # "review_rejected:{code}": the reviewer's reason, in words meant for the customer
        # when the dialogs have them, else the general sentence for that kind.
        try:
            return say(f"reason.{kind}.{detail}")
        except KeyError:
            pass
    return _named(say, "reason", kind, "unknown")


def _outcome(notification: dict[str, Any], say: Say, translator: Translator) -> list[str]:
    reference = str(notification.get("reference") or "")
    outcome = notification.get("outcome")
    details = notification.get("details") if isinstance(notification.get("details"), dict) else {}
    assert isinstance(details, dict)
    if outcome == "done":
        return [say("outcome.done", reference=reference)]
    if outcome == "partly_done":
        lines = [say("outcome.partly_done", reference=reference)]
        erased = [_named(say, "category", str(c), "contact") for c in details.get("erased") or []]
        if erased:
            # A list: the translator joins it as the locale does ("a, b и c", "a、b和c").
            lines.append(say("outcome.erased", categories=erased))
        return ["\n".join([*lines, *_holds(details, say, translator)])]
    if outcome == "rejected":
        return [
            say(
                "outcome.rejected",
                reference=reference,
                reason=_reason(notification.get("reason"), say),
            )
        ]
    if outcome == "reverted":
        # Undone from the "Was this you?" link; the chat is with an agent as possible fraud.
        return [_named(say, "outcome", "reverted", "escalated", reference=reference)]
    return [say("outcome.failed", reference=reference)]


def render(notification: dict[str, Any], say: Say, translator: Translator) -> list[str]:
    """The texts one notification shows in its chat; [] for a type this bot does not know."""
    kind = notification.get("type")
    details = notification.get("details") if isinstance(notification.get("details"), dict) else {}
    assert isinstance(details, dict)
    if kind == "request_outcome":
        return _outcome(notification, say, translator)
    if kind == "request_escalated":
        return [say("outcome.escalated", reference=str(notification.get("reference") or ""))]
    if kind == "agent_joined":
        name = details.get("name") or details.get("agent")
        if isinstance(name, str) and name:
            return [say("agent.joined", name=name)]
        return [say("agent.joined_anonymous")]
    if kind == "agent_message":
        # The agent's own words, already in the customer's language.
        text = details.get("text")
        return [text] if isinstance(text, str) and text.strip() else []
    if kind == "agent_left":
        return [say("agent.left")]
    log.warning("notification %s has unknown type %r", notification.get("id"), kind)
    return []
