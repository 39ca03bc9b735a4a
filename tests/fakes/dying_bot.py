"""``python -m tests.fakes.dying_bot --chat C --update-id N --die-at saved|filed``: a bot killed mid-update.

The kill tests run it to leave a chat as a bot process killed at that moment
would: it handles one ``/start`` through the real conversation service, then
ends with ``os._exit(DIED)``, no clean-up. Settings come from the
``DATADESK_*`` environment, as for ``datadesk bot``.

- ``saved``: right after the update's state and transcript lines were saved
  (in one write), before any line reached the backend.
- ``filed``: right after the backend accepted the lines, before the bot noted
  them filed (so a restarted bot files them again).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from bot.backend_client import BackendClient
from bot.channel import Start
from bot.conversation import Conversations
from bot.settings import BotSettings

DIED = 17


def main() -> int:
    """Handle one /start in ``--chat`` and die at ``--die-at``."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.dying_bot")
    parser.add_argument("--chat", required=True)
    parser.add_argument("--update-id", type=int, required=True)
    parser.add_argument("--die-at", choices=("saved", "filed"), required=True)
    args = parser.parse_args()

    async def body() -> int:
        settings = BotSettings.from_env()
        backend = BackendClient(settings.backend_url, settings.service_token or "")
        conversations = await Conversations.open(settings, backend=backend)
        if args.die_at == "saved":
            # Records.save wakes the filer right after the write: die there.
            conversations.filer.wake = lambda: os._exit(DIED)  # type: ignore[method-assign]
        else:
            real = backend.file_transcript

            async def file_then_die(lines: list[Any]) -> dict[str, Any]:
                await real(lines)
                os._exit(DIED)

            backend.file_transcript = file_then_die  # type: ignore[method-assign]
        await conversations.handle(args.chat, Start("en", update_id=args.update_id))
        await conversations.flush()
        return 0

    return asyncio.run(body())


if __name__ == "__main__":
    raise SystemExit(main())
