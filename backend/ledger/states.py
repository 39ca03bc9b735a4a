"""Which moves a request may make, and what each is called in the audit log.

``MOVES`` is the whole state machine: a pair (from, to) is allowed exactly when
it is a key, and its value is the audit action ``transitions.transition``
writes. Adding a state or a transition is adding a line here (and the state
to ``common.vocabulary.request_states``), as ``done → reverted`` is.

``running → running`` is a take-over: the lease of a worker that died ran out
and another worker claims the request again.
"""

from __future__ import annotations

from collections.abc import Mapping

from common.vocabulary.request_states import (
    AWAITING_REVIEW,
    DONE,
    FAILED,
    FINAL_STATES,
    PARTLY_DONE,
    QUEUED,
    REJECTED,
    REVERTED,
    RUNNING,
    SUBMITTED,
    RequestState,
)

MOVES: Mapping[tuple[RequestState, RequestState], str] = {
    # Stored: waits for review, waits in the queue, or (an opt-out) is applied by the submitter.
    (SUBMITTED, AWAITING_REVIEW): "request_submitted",
    (SUBMITTED, QUEUED): "request_submitted",
    (SUBMITTED, RUNNING): "request_submitted",
    # The back-office decision.
    (AWAITING_REVIEW, QUEUED): "request_approved",
    (AWAITING_REVIEW, REJECTED): "request_rejected",
    # A worker claims it; a lease that ran out lets another take it over.
    (QUEUED, RUNNING): "request_claimed",
    (RUNNING, RUNNING): "request_claimed",
    # Back to the queue: a failed attempt waits for its retry, or a stopping worker
    # (or a submitter whose CRM call failed) hands it on.
    (RUNNING, QUEUED): "request_retry",
    # Outcomes.
    (RUNNING, DONE): "request_done",
    (RUNNING, PARTLY_DONE): "request_partly_done",
    (RUNNING, REJECTED): "request_rejected",
    (RUNNING, FAILED): "request_failed",
    # The customer undid a contact change from the "Was this you?" notice
    # (backend/contact_undo.py).
    (DONE, REVERTED): "request_reverted",
    # A supervisor's hand (backend/ledger/interventions.py): a failed request tried
    # again, or a queued (or failed) one cancelled, which the customer is told.
    (FAILED, QUEUED): "request_retried",
    (QUEUED, REJECTED): "request_cancelled",
    (FAILED, REJECTED): "request_cancelled",
}

# The customer is told these outcomes in their chat.
TOLD: frozenset[RequestState] = frozenset(FINAL_STATES)
# These also bring the chat to an agent, for this escalation reason.
ESCALATED: Mapping[RequestState, str] = {FAILED: "failed_request", REVERTED: "possible_fraud"}
# A request that reaches one of these keeps no personal values in its payload.
# A failed one keeps its (sealed) payload so a supervisor can retry it; cancelling
# it (failed → rejected) scrubs it (see ``scrubs``).
SCRUBBED_IN: frozenset[RequestState] = frozenset(FINAL_STATES) - {FAILED}
FINAL: frozenset[RequestState] = frozenset(FINAL_STATES)
# A failure for this reason has nothing worth keeping: the payload did not decrypt.
UNREADABLE = "stored_data_unreadable"


def scrubs(to: RequestState, reason: str | None) -> bool:
    """Whether a request moving to ``to`` (for ``reason``) loses its payload's values."""
    return to in SCRUBBED_IN or (to == FAILED and reason == UNREADABLE)


def allowed(current: RequestState, to: RequestState) -> bool:
    """Whether a request in ``current`` may move to ``to``."""
    return (current, to) in MOVES
