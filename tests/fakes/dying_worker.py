"""``python -m tests.fakes.dying_worker --now ISO [--die-at effect|outcome|seal]``: a worker killed mid-request.

The kill tests run it to leave a request as a worker killed at that moment
would: the process ends with ``os._exit(DIED)``, no clean-up, no commit.

- ``effect``: right after the CRM effect, before the outcome is recorded.
- ``outcome``: inside the transaction that records the outcome, as it writes
  the customer's notification (the state change already sent, not committed).
- ``seal``: inside the audit sealer's transaction, as it sends the seals
  (sequence numbers and MACs sent, not committed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import datetime
from typing import Any

from sqlalchemy import event

from backend.ledger.claims import Claimed
from backend.ledger.submit import connector
from backend.ledger.worker import run_workers
from backend.runner import with_services
from backend.services import Services
from backend.settings import Settings
from common.clock import FakeClock

DIED = 17


def die(job: Claimed) -> None:
    """End the process at once, as a kill would."""
    os._exit(DIED)


def die_on_notification(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
    """``before_cursor_execute``: end the process as the outbox insert is sent."""
    if statement.lstrip().upper().startswith("INSERT INTO NOTIFICATIONS"):
        os._exit(DIED)


def die_on_seal(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
    """``before_cursor_execute``: end the process as the sealer's update is sent."""
    if statement.lstrip().upper().startswith("UPDATE AUDIT_ENTRIES"):
        os._exit(DIED)


def main() -> int:
    """Run one worker with the fixed clock ``--now`` until it dies (or finds nothing due)."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.dying_worker")
    parser.add_argument("--now", required=True)
    parser.add_argument("--die-at", choices=("effect", "outcome", "seal"), default="effect")
    args = parser.parse_args()

    async def body(services: Services, stop: asyncio.Event) -> int:
        crm = connector(services)
        after_effect = die if args.die_at == "effect" else None
        if args.die_at == "outcome":
            event.listen(services.engine.sync_engine, "before_cursor_execute", die_on_notification)
        if args.die_at == "seal":
            event.listen(services.engine.sync_engine, "before_cursor_execute", die_on_seal)
        await run_workers(
            services,
            crm,
            concurrency=1,
            stop=stop,
            once=True,
            purge=False,
            after_effect=after_effect,
        )
        return 0

    clock = FakeClock(datetime.fromisoformat(args.now))
    return asyncio.run(with_services(Settings.from_env(), body, clock))


if __name__ == "__main__":
    raise SystemExit(main())
