"""Browser tests of the agent console: Playwright driving Debian's Chromium.

The whole system runs as in the end-to-end suite (``tests/e2e/conftest.py``'s
``stack``: Bot API stand-in, backend, worker, bot), so what the agent does in
the browser is checked where the customer sees it: in the Telegram chat.
Playwright's own browser download is not used; ``/usr/bin/chromium`` is (the
Makefile's ``browser`` target installs it).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import e2e.conftest as e2e_fixtures
import pytest
from _pytest.fixtures import FixtureFunctionDefinition
from e2e.conftest import Stack
from playwright.async_api import Browser, async_playwright

from common.settings import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}


# Every fixture of the end-to-end suite (``stack`` and what it asks for), so this
# folder follows that suite as it grows; ``settings_overrides`` is redefined below.
globals().update(
    {
        name: value
        for name, value in vars(e2e_fixtures).items()
        if isinstance(value, FixtureFunctionDefinition)
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Erasures wait for a supervisor's review, so the review queue has work."""
    return {"review_kinds": frozenset({"erasure"})}


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium for one test."""
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (one stat before any I/O starts)
        raise pytest.UsageError(
            f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def artifacts(db_kind: str) -> Path:
    """Where screenshots go (gitignored); one folder per database engine."""
    path = ARTIFACTS / "console" / db_kind
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["Stack"]
