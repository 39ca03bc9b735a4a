"""What dialog files may name: actions and their outcomes, validators, renderers, commands.

``dialogs check`` refuses any other name, and every declared outcome of an
action must be handled where the action is used. ``bot/actions.py`` carries
out each action against the backend and answers one of these outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.vocabulary.categories import CATEGORIES
from common.vocabulary.marketing_channels import MARKETING_CHANNELS
from common.vocabulary.product_kinds import PRODUCT_KINDS
from common.vocabulary.request_kinds import ERASURE, UPDATE_CONTACT


@dataclass(frozen=True)
class ActionSpec:
    """An action's arguments, every outcome it can answer, and the data keys it may return.

    The data's keys become values dialogs can name (``$reference``, ``{due_date}``).
    """

    args: tuple[str, ...]
    outcomes: tuple[str, ...]
    data: tuple[str, ...] = ()


ACTIONS: dict[str, ActionSpec] = {
    # Where codes can go now: ``email_codes`` is false while the backend has no mail server.
    "verification_channels": ActionSpec((), ("ok", "error"), ("email_codes",)),
    "start_verification": ActionSpec(
        ("phone", "channel", "shared_contact"),
        ("sent", "invalid_phone", "email_unavailable", "locked_out", "error"),
        ("expires_in", "resend_after", "retry_after", "offer_agent"),
    ),
    "resend_code": ActionSpec(
        (), ("sent", "cooldown", "locked_out", "error"), ("retry_after", "offer_agent")
    ),
    "check_code": ActionSpec(
        ("code",),
        ("verified", "wrong_code", "expired", "too_many_attempts", "locked_out", "error"),
        ("attempts_left", "language", "retry_after", "offer_agent"),
    ),
    "load_profile": ActionSpec(
        (),
        ("ok", "session_expired", "error"),
        ("language", "phones", "emails", "address", "marketing", "open_products"),
    ),
    "start_contact_proof": ActionSpec(
        ("kind", "value"),
        ("sent", "invalid", "same_as_current", "email_unavailable", "session_expired", "error"),
        ("masked",),
    ),
    "check_proof_code": ActionSpec(
        ("code",),
        ("proved", "wrong_code", "expired", "too_many_attempts", "error"),
        ("proof_token", "masked", "attempts_left"),
    ),
    "preview_erasure": ActionSpec(
        ("scope",),
        ("ok", "session_expired", "error"),
        ("preview_id", "jurisdiction", "categories", "warnings"),
    ),
    "submit_request": ActionSpec(
        ("kind", "payload"),
        ("submitted", "invalid", "session_expired", "error"),
        ("reference", "due_date", "state", "received_at", "fields"),
    ),
    "list_requests": ActionSpec((), ("ok", "session_expired", "error"), ("requests",)),
    # An access request: the copy of the customer's data, sent as two documents after the
    # step that handles ``sent``; ``unavailable``: the CRM cannot export, an agent sends it.
    "request_copy": ActionSpec(
        (),
        ("sent", "unavailable", "session_expired", "error"),
        ("reference", "due_date", "state", "summary", "reason"),
    ),
    "escalate": ActionSpec(("reason",), ("ok", "error"), ("escalation_id",)),
    # The customer stopped waiting for a person: a waiting escalation is closed.
    "withdraw_escalation": ActionSpec((), ("ok", "error"), ()),
    # /logout: the chat forgets the verified customer's session.
    "forget_session": ActionSpec((), ("ok", "error"), ()),
}

# The action and outcome that make a chat verified; ``session_expired`` from any action undoes it.
VERIFYING_ACTION, VERIFIED_OUTCOME = "check_code", "verified"
SESSION_EXPIRED = "session_expired"
# Where data-changing requests are submitted; ``dialogs check`` guards every path to it.
SUBMIT_ACTION = "submit_request"
GUARDED_KINDS = (ERASURE, UPDATE_CONTACT)
# Hands the customer a copy of their data: ``dialogs check`` wants every path to it verified.
COPY_ACTION = "request_copy"

# What a step must render (``say: {render: …}``) before a guarded kind is confirmed.
PREVIEW_RENDER: dict[str, str] = {ERASURE: "erasure_preview", UPDATE_CONTACT: "contact_change"}

# Values the engine itself provides to dialogs, beside what steps save and set.
ENGINE_VALUES = (
    "verified",
    "locale",
    "agent_active",
    "shared_contact",
    "escalation_reason",
    "results",
)

VALIDATORS = ("phone", "email", "postal_address", "code", "yes_no")

RENDERERS = (
    "contact_change",
    "marketing_state",
    "opt_out_choice",
    "erasure_preview",
    "request_list",
    "access_summary",
)

# Commands that work at every step; a press of one of these ids that is not an
# option of the current step runs the command (e.g. the "Talk to a person" offer).
GLOBAL_COMMANDS = ("cancel", "back", "help", "language", "status", "agent", "start", "logout")

# Flows the engine itself enters: the menu (with its ``home`` step) and the global commands.
REQUIRED_FLOWS = ("start", "language", "status", "agent", "logout")

# Texts of the PDF copy (``bot/copy/pdf.py``): ``copy.<key>`` in ``dialogs/messages.yaml``.
COPY_TEXTS = (
    "title",
    "bank_default",
    "made_on",
    "reference",
    "intro",
    "values",
    "kept_until",
    "kept_while_open",
    "kept_while_open_plain",
    "not_kept",
    "purpose",
    "primary",
    "marketing_on",
    "marketing_off",
    "history",
    "history_line",
    "no_history",
    "opened",
    "closed",
    "still_open",
    "requests",
    "request_line",
    "no_requests",
    "nothing",
    "document",
    "product",
    "transaction",
)

# Named messages (``dialogs/messages.yaml``) that Python renders; they must exist.
ENGINE_MESSAGES = (
    "input.empty",
    "input.too_long",
    "input.binary",
    "input.emoji_only",
    "input.unsupported",
    "input.stale_button",
    "input.choose_option",
    "input.contact_not_own",
    "input.contact_unexpected",
    "input.choose_at_least_one",
    "freetext.did_you_mean",
    "freetext.did_you_mean_one_of",
    "freetext.not_understood",
    "selection.chosen",
    "tries.offer_agent",
    "option.agent",
    "agent.waiting_acknowledged",
    "engine.error",
    "engine.retry_later",
    "command.help",
    "command.cancelled",
    "command.nothing_to_go_back_to",
    *(f"command_menu.{name}" for name in GLOBAL_COMMANDS),
    "invalid.phone",
    "invalid.email",
    "invalid.address_format",
    "invalid.address_postcode",
    "invalid.address_country",
    "invalid.code",
    "invalid.yes_no",
    "change.phone",
    "change.email",
    "change.address",
    "change.not_on_file",
    "marketing.header",
    "marketing.on",
    "marketing.off",
    *(f"channel.{c}" for c in MARKETING_CHANNELS),
    *(f"optout.confirm.{c}" for c in (*MARKETING_CHANNELS, "all")),
    *(f"category.{c}" for c in CATEGORIES),
    "basis.unknown",
    *(f"product.{k}" for k in PRODUCT_KINDS),
    "product.other",
    "preview.header",
    "preview.erase",
    "preview.keep_until",
    "preview.keep_while_open",
    "preview.keep_while_open_plain",
    "preview.restricted",
    "status.none",
    "status.header",
    "status.line_open",
    "status.line_finished",
    "status.kept_until",
    "status.kept_while_open",
    "kind.erasure",
    "state.submitted",
    "access.header",
    "access.none",
    "access.line_erasable",
    "access.line_until",
    "access.line_while_open",
    "access.line_while_open_plain",
    "access.sending",
    "document.other",
    *(f"copy.{key}" for key in COPY_TEXTS),
    *(f"purpose.{c}" for c in CATEGORIES),
)
