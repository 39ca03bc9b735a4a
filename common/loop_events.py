"""An ``asyncio.Event`` per event loop, for waking this process's own waiters at once.

A module that enqueues work (a notification, a notice to send) sets its event so
a waiter in the same process need not wait for its next poll; other processes
still find the work by polling. Tests run many event loops in one process, and an
event belongs to one loop, so each loop gets its own (forgotten with the loop).
"""

from __future__ import annotations

import asyncio
import weakref


class LoopEvents:
    """``get()``: this loop's event, made on first use."""

    def __init__(self) -> None:
        self._events: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        event = self._events.get(loop)
        if event is None:
            event = self._events[loop] = asyncio.Event()
        return event
