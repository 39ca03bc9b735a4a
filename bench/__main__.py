"""Run the benchmarks named on the command line, or all of them; see ``bench/__init__.py``."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    """Every bench module, by name."""
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))


def main(argv: list[str]) -> int:
    """Run the chosen benches in turn; exit 1 if any failed, 2 for an unknown name."""
    names = argv or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"bench: no such bench: {', '.join(unknown)} (have: {', '.join(available())})")
        return 2
    summary: list[tuple[str, int, float]] = []
    for name in names:
        print(f"== bench.{name}", flush=True)
        started = time.perf_counter()
        try:
            status = int(importlib.import_module(f"bench.{name}").main() or 0)
        except Exception as exc:  # one broken bench must not hide the others' figures
            print(f"bench.{name} crashed: {type(exc).__name__}: {exc}")
            status = 1
        summary.append((name, status, time.perf_counter() - started))
        print(flush=True)
    width = max(len("bench"), *(len(name) for name, _, _ in summary))
    print(f"{'bench':<{width}} {'result':<8} {'seconds':>8}")
    for name, status, seconds in summary:
        print(f"{name:<{width}} {'ok' if status == 0 else 'FAILED':<8} {seconds:>8.1f}")
    return 1 if any(status for _, status, _ in summary) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
