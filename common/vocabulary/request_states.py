"""A request's states, in the order it moves through them (``submitted → awaiting_review? →
queued → running → done | partly_done | rejected | failed``).

The ledger and the worker change a request's state; ``/status`` and the
outcome notifications show it to the customer under these ids.
"""

from __future__ import annotations

SUBMITTED = "submitted"
AWAITING_REVIEW = "awaiting_review"
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
PARTLY_DONE = "partly_done"
REJECTED = "rejected"
FAILED = "failed"
# Not finished yet: the customer still waits for an outcome.
OPEN_STATES = (SUBMITTED, AWAITING_REVIEW, QUEUED, RUNNING)
FINAL_STATES = (DONE, PARTLY_DONE, REJECTED, FAILED)
