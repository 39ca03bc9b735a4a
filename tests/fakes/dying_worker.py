"""``python -m tests.fakes.dying_worker --now ISO``: a worker that dies right after a CRM effect.

The kill tests run it to leave a request ``running`` with its effect applied
and its outcome not recorded, as a worker killed at that moment would: the
process ends with ``os._exit(DIED)``, no clean-up, no commit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import datetime

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


def main() -> int:
    """Run one worker with the fixed clock ``--now`` until it dies (or finds nothing due)."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.dying_worker")
    parser.add_argument("--now", required=True)
    args = parser.parse_args()

    async def body(services: Services, stop: asyncio.Event) -> int:
        crm = connector(services)
        await run_workers(
            services, crm, concurrency=1, stop=stop, once=True, purge=False, after_effect=die
        )
        return 0

    clock = FakeClock(datetime.fromisoformat(args.now))
    return asyncio.run(with_services(Settings.from_env(), body, clock))


if __name__ == "__main__":
    raise SystemExit(main())
