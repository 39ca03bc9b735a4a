"""Child processes of one test or bench run, each logging to a file of its own; stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from common.settings import REPO_ROOT


class Processes:
    """``python ARGS`` children started in the checkout, their output in ``folder/NAME.log``."""

    def __init__(self, folder: Path, *, grace: float = 15.0) -> None:
        self.folder = folder
        self.grace = grace  # how long a child may take to stop after SIGTERM before it is killed
        self.running: list[asyncio.subprocess.Process] = []
        self.names: list[str] = []

    async def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115, ASYNC230 - lives as long as the child
        process = await asyncio.create_subprocess_exec(
            sys.executable, *args, env=env, cwd=REPO_ROOT, stdout=log, stderr=log
        )
        self.running.append(process)
        self.names.append(name)

    async def run(self, name: str, args: list[str], env: dict[str, str]) -> None:
        """Run one command to its end; RuntimeError with its output if it failed."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, *args, env=env, cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await process.communicate()
        if process.returncode:
            raise RuntimeError(f"{name} failed:\n{out.decode(errors='replace')}")

    def ended_early(self) -> list[str]:
        """Children that are no longer running (name: exit status), for the report."""
        return [
            f"{name}: exit {p.returncode}"
            for name, p in zip(self.names, self.running, strict=True)
            if p.returncode is not None
        ]

    def logs(self) -> str:
        """Everything the children wrote."""
        return "\n".join(p.read_text(errors="replace") for p in self.folder.glob("*.log"))

    async def stop(self) -> None:
        for process in self.running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                await asyncio.wait_for(process.wait(), self.grace)
            except TimeoutError:
                process.kill()
                await process.wait()
