"""The requests ledger: customer requests, which are also the work queue.

A request row carries its own state, lease, attempt count and next run time
(``backend.models.ledger``), so submitting a request and queueing it are one
write. The modules, in the order a request meets them:

| module           | does                                                                  |
|------------------|-----------------------------------------------------------------------|
| ``kinds/``       | one module per request kind: payload validation, carrying it out      |
| ``submit.py``    | validate, store once per idempotency key, answer (opt-outs at once)   |
| ``review.py``    | the back-office review queue: approve, reject                         |
| ``claims.py``    | batch claims with a lease, one customer's requests in order           |
| ``worker.py``    | the worker: slots, wake-ups, graceful stop                            |
| ``outcomes.py``  | recording outcomes and retries, many per transaction                  |
| ``states.py``    | the allowed moves and their audit actions                             |
| ``transitions.py`` | the one function that moves a request, with audit, notice, escalation |
| ``wakeup.py``    | waking idle workers (in-process, PostgreSQL ``LISTEN/NOTIFY``)        |
| ``status.py``    | what ``/status`` shows                                                |
| ``previews.py``, ``purge.py`` | erasure plans as shown, and held data afterwards         |

The names below are what the API and the console use.
"""

from __future__ import annotations

from backend.ledger.review import ReviewItem, approve, awaiting_review, reject
from backend.ledger.status import open_requests, recent_requests
from backend.ledger.submit import Submitted, connector, submit

__all__ = [
    "ReviewItem",
    "Submitted",
    "approve",
    "awaiting_review",
    "connector",
    "open_requests",
    "recent_requests",
    "reject",
    "submit",
]
