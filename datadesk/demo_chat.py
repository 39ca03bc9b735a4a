"""``datadesk chat --as C-1101``: the terminal chat as one of the demo customers.

The bot knows nothing of the CRM; this assembly layer reads the demo seed
(``backend/crm/demo.py``, the same data ``crm seed-demo`` loads) so that
``share`` shares that customer's number, and the chat is the customer's own.
"""

from __future__ import annotations

import argparse
import sys

from backend.crm.demo import demo_document
from bot.settings import BotSettings
from bot.terminal import chat_command as terminal_chat


def demo_phone(ref: str) -> str | None:
    """The primary phone of demo customer ``ref``; None when the seed has no such customer."""
    for customer in demo_document()["customers"]:
        if customer["ref"] == ref:
            phones = customer.get("phones") or []
            primary = [p["number"] for p in phones if p.get("primary")] or [
                p["number"] for p in phones
            ]
            return str(primary[0]) if primary else None
    return None


def resolve(args: argparse.Namespace) -> str | None:
    """Fill ``args.phone`` from ``--as``; an error line when the ref is no demo customer."""
    ref = getattr(args, "as_ref", None)
    if not ref:
        return None
    phone = demo_phone(ref)
    if phone is None:
        refs = [c["ref"] for c in demo_document()["customers"]]
        return f"--as {ref}: no such demo customer (they run {refs[0]}…{refs[6]}, {refs[7]}…{refs[-1]})"
    args.phone = phone
    return None


def chat_command(args: argparse.Namespace, settings: BotSettings) -> int:
    """``datadesk chat [--lang xx] [--as REF]``: the terminal chat, as a demo customer if asked."""
    problem = resolve(args)
    if problem is not None:
        print(f"datadesk chat: {problem}", file=sys.stderr)
        return 2
    return terminal_chat(args, settings)
