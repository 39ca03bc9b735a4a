"""The backend's and the worker's Prometheus metrics (names listed in ``docs/operators.md``, "Monitoring").

Counters and histograms move where things happen (the API's middleware,
verification, console logins, notification acknowledgements). The gauges
that describe the shared database (requests by kind and state, the queue,
audit sealing, escalations waiting) are read by ``refresh_ledger_gauges``
when ``/metrics`` is scraped (``common.monitoring``): every backend and
worker process reports the same values, so take ``max`` across them, not
``sum``. ``ready`` is the readiness probe of both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select, text

from backend.keys import key_is_current
from backend.models.audit import AuditEntry
from backend.models.console import Escalation
from backend.models.ledger import Request
from common.monitoring import REGISTRY, Monitoring
from common.vocabulary.request_states import RequestState

if TYPE_CHECKING:
    from backend.services import Services

HTTP_REQUESTS = Counter(
    "datadesk_http_requests",
    "Backend HTTP requests answered, by method, route pattern and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "datadesk_http_request_seconds",
    "Time the backend took to answer, by route pattern.",
    ["route"],
    registry=REGISTRY,
)
VERIFICATIONS = Counter(
    "datadesk_verification_outcomes",
    "One-time code steps by step (verification.start, contact_proof.start, "
    "verification.resend, verification.check: the audit log's actions) and outcome "
    "(sent, verified, wrong_code, expired, locked_out, …).",
    ["step", "outcome"],
    registry=REGISTRY,
)
CONSOLE_LOGIN_FAILURES = Counter(
    "datadesk_console_login_failures",
    "Agent console logins refused, by reason (wrong_password, slow_down, too_many_attempts).",
    ["reason"],
    registry=REGISTRY,
)
NOTIFICATION_LAG = Histogram(
    "datadesk_notification_delivery_lag_seconds",
    "From a notification's creation to the bot acknowledging it was shown in the chat.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
WORKER_ATTEMPTS = Counter(
    "datadesk_worker_attempts",
    "Requests a worker carried out, by kind and result (done, partly_done, rejected, failed, "
    "or error: the attempt failed and is retried).",
    ["kind", "result"],
    registry=REGISTRY,
)
WORKER_SECONDS = Histogram(
    "datadesk_worker_request_seconds",
    "Time a worker took to carry out a request (its CRM calls), by kind.",
    ["kind"],
    registry=REGISTRY,
)
REQUESTS = Gauge(
    "datadesk_requests",
    "Requests in the ledger by kind and state.",
    ["kind", "state"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "datadesk_queue_depth", "Requests queued (due now or later).", registry=REGISTRY
)
QUEUE_OLDEST_AGE = Gauge(
    "datadesk_queue_oldest_age_seconds",
    "How long the longest-waiting due request has waited for a worker (0: none waits).",
    registry=REGISTRY,
)
AUDIT_UNSEALED = Gauge(
    "datadesk_audit_unsealed_entries",
    "Audit entries not yet sealed into the chain.",
    registry=REGISTRY,
)
AUDIT_SEALING_LAG = Gauge(
    "datadesk_audit_sealing_lag_seconds",
    "Age of the oldest audit entry not yet sealed (0: all sealed).",
    registry=REGISTRY,
)
ESCALATIONS_WAITING = Gauge(
    "datadesk_escalations_waiting",
    "Escalated chats waiting for an agent to take them.",
    registry=REGISTRY,
)
ESCALATIONS_OLDEST_WAIT = Gauge(
    "datadesk_escalations_oldest_wait_seconds",
    "How long the longest-waiting escalated chat has waited (0: none waits).",
    registry=REGISTRY,
)


def _age(now: datetime, since: datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


async def refresh_ledger_gauges(svc: Services) -> None:
    """Read the gauges above from the database: aggregate queries on indexed columns, one short read."""
    now = svc.clock.now()
    async with svc.sessions() as session:
        counts = (
            await session.execute(
                select(Request.kind, Request.state, func.count()).group_by(
                    Request.kind, Request.state
                )
            )
        ).all()
        depth = await session.scalar(
            select(func.count()).select_from(Request).where(Request.state == RequestState.QUEUED)
        )
        oldest_due = await session.scalar(
            select(func.min(Request.next_run_at)).where(
                Request.state == RequestState.QUEUED, Request.next_run_at <= now
            )
        )
        unsealed, oldest_unsealed = (
            await session.execute(
                select(func.count(), func.min(AuditEntry.at)).where(AuditEntry.seq.is_(None))
            )
        ).one()
        waiting, oldest_waiting = (
            await session.execute(
                select(func.count(), func.min(Escalation.created_at)).where(
                    Escalation.state == "waiting"
                )
            )
        ).one()
    # States that emptied since the last read go back to 0, not stay at their last count.
    REQUESTS.clear()
    for kind, state, count in counts:
        REQUESTS.labels(kind=kind, state=str(getattr(state, "value", state))).set(count)
    QUEUE_DEPTH.set(depth or 0)
    QUEUE_OLDEST_AGE.set(_age(now, _aware(oldest_due)))
    AUDIT_UNSEALED.set(unsealed or 0)
    AUDIT_SEALING_LAG.set(_age(now, _aware(oldest_unsealed)))
    ESCALATIONS_WAITING.set(waiting or 0)
    ESCALATIONS_OLDEST_WAIT.set(_age(now, _aware(oldest_waiting)))


def _aware(value: object) -> datetime | None:
    """A ``min()`` of a UTC column, made aware whatever the driver handed back."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def ready(svc: Services) -> str | None:
    """The backend's and the worker's readiness: the database answers and still takes this key."""
    try:
        async with svc.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            current = await key_is_current(conn, svc.keyring)
    except Exception:
        return "database unavailable"
    if not current:
        # A rotation retired this process's key, or the key table changed under it.
        return "key not current"
    return None


def monitoring(svc: Services) -> Monitoring:
    """What ``/readyz`` and ``/metrics`` ask in a backend or worker process."""

    async def probe() -> str | None:
        return await ready(svc)

    async def gauges() -> None:
        await refresh_ledger_gauges(svc)

    return Monitoring(probe, (gauges,))
