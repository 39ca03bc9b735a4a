"""A request's states, in the order it moves through them (``submitted → awaiting_review? →
queued → running → done | partly_done | rejected | failed``, and ``done → reverted``
when the customer undoes a contact change from the "Was this you?" notice).

``RequestState`` is a ``StrEnum``: each member is the very string stored in the
database and shown by ``/status`` and the outcome notifications, so it
compares equal to that string. Which moves are allowed is the ledger's rule
(``backend/ledger/states.py``), not part of the vocabulary.
"""

from __future__ import annotations

from enum import StrEnum


class RequestState(StrEnum):
    """One state of a request, stored and shown as its value."""

    SUBMITTED = "submitted"
    AWAITING_REVIEW = "awaiting_review"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    PARTLY_DONE = "partly_done"
    REJECTED = "rejected"
    FAILED = "failed"
    REVERTED = "reverted"


SUBMITTED = RequestState.SUBMITTED
AWAITING_REVIEW = RequestState.AWAITING_REVIEW
QUEUED = RequestState.QUEUED
RUNNING = RequestState.RUNNING
DONE = RequestState.DONE
PARTLY_DONE = RequestState.PARTLY_DONE
REJECTED = RequestState.REJECTED
FAILED = RequestState.FAILED
REVERTED = RequestState.REVERTED
# Not finished yet: the customer still waits for an outcome.
OPEN_STATES = (SUBMITTED, AWAITING_REVIEW, QUEUED, RUNNING)
FINAL_STATES = (DONE, PARTLY_DONE, REJECTED, FAILED, REVERTED)
