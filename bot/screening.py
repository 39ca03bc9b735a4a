"""Screening: what a customer's message may not carry, before any dialog sees it.

``screen`` scans a typed message (``bot.hygiene``) for card numbers, IBANs,
national ids and (where the step is not asking for one) codes: such a
message is deleted from the chat and explained; one holding anything but a
code is not acted on at all (``blocked``). It also gives the message's
transcript line, masked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot import hygiene
from bot.channel import Delete, Event, Outgoing, Reply, Text
from bot.transcript import customer_line

Say = Callable[[str], str]


@dataclass
class Screened:
    """What screening decided for one message."""

    line: tuple[str, str]
    deletes: list[Outgoing] = field(default_factory=list)
    notices: list[Outgoing] = field(default_factory=list)
    blocked: bool = False
    # The first kind of data found ("card", "code", …), None when nothing was.
    found: str | None = None


def screen(event: Event, *, sensitive: bool, say: Say, label: str | None = None) -> Screened:
    """Screen ``event``; ``say(message_id)`` renders a named message in the chat's locale.

    ``label`` is the button's label when ``event`` is a press (see ``bot.transcript``).
    """
    line = customer_line(event, sensitive=sensitive, label=label)
    if not isinstance(event, Text):
        return Screened(line)
    scan = hygiene.scan(event.text, sensitive=sensitive)
    screened = Screened(
        line,
        notices=[Reply(say(f"hygiene.{kind}")) for kind in scan.kinds],
        blocked=any(kind != "code" for kind in scan.kinds),
        found=scan.kinds[0] if scan.found else None,
    )
    if scan.found and event.message_id is not None:
        screened.deletes.append(Delete(event.message_id, scan.kinds[0]))
    return screened
