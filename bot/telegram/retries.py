"""An update whose handling failed is tried again, in its chat's order, then given up with an apology.

Where the retry boundary is: handling an update is ``Conversations.handle``
(load the chat's record, step, save the new state with the update's id and
transcript lines in one write) and then showing its answer
(``TelegramChannel.deliver``). The save is the boundary:

- a failure before it (the bot database refusing: too many connections, a
  restart, SQLite locked past its busy timeout; an unreadable table) leaves
  the chat's state as it was, so the update is tried again as a whole, from
  that state. The backend calls its dialogs made on the way are not made
  again: this process answers them from what the earlier attempt got
  (``bot.stepping``, replay), so a code checked (and spent) before the save
  failed counts as checked once, and a request is filed once (filings carry
  an Idempotency-Key too, for a retry in another process, which has no replay).
- a failure after it (Telegram would not take the answer, after the send's
  own retries) is not retried: the state has moved on, and the update's id
  is saved with it, so a second try would be skipped as handled
  (``bot.records.Records.claim``) anyway. It is logged and counted.
- a save that committed but whose acknowledgement was lost (the connection
  dropped after COMMIT) is retried, found handled and skipped: the update
  is applied exactly once, though its answer is not shown.

Each failed attempt waits ``BACKOFF[n]`` before the next, with the chat's
later updates waiting behind it; after ``ATTEMPTS`` the update is given up:
the customer is asked to send it again (``engine.retry_later``, in the
chat's language), ``datadesk_bot_updates_given_up`` counts it, and the log
names the update id and the exception's type only (an exception's text or
traceback can carry what the customer typed).

Webhook updates through the bot database's inbox (``bot.telegram.inbox``)
count their attempts in the inbox row, so a process that dies between
attempts leaves the count to the next; polling updates (and webhook ones
without a bot database) are retried in the process that fetched them, whose
restart loses an update in back-off (Telegram was told it was received when
the next one was fetched).
"""

from __future__ import annotations

import logging

from bot.metrics import UPDATE_ERRORS

log = logging.getLogger(__name__)

# Seconds before the 2nd, 3rd and 4th attempt; about 10 s in all, within which a
# restarted PostgreSQL or a connection slot freed is usually back.
BACKOFF: tuple[float, ...] = (0.5, 2.0, 8.0)


def attempts(backoff: tuple[float, ...] = BACKOFF) -> int:
    """How many times an update is tried with ``backoff``: once, and once after each pause."""
    return len(backoff) + 1


def after_failure(
    update_id: int, attempt: int, exc: BaseException, backoff: tuple[float, ...] = BACKOFF
) -> float | None:
    """Count and log failed ``attempt`` (1-based); the pause before the next, None to give up."""
    UPDATE_ERRORS.inc()
    kind = type(exc).__name__
    if attempt <= len(backoff):
        wait = backoff[attempt - 1]
        log.warning(
            "update %s failed (%s), attempt %d of %d; trying again in %gs",
            update_id,
            kind,
            attempt,
            attempts(backoff),
            wait,
        )
        return wait
    log.error("update %s given up after %d attempts (%s)", update_id, attempt, kind)
    return None
