"""``python -m backend.worker``: one worker process (``backend/ledger/worker.py``)."""

from __future__ import annotations

from backend.ledger.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
