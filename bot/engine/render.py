"""Texts rendered for the customer: dialog texts, named messages, and the named renderers.

Placeholders take the conversation's collected values; an ISO date (``2029-06-30``)
becomes a ``datetime.date`` first, so ``Translator.format`` writes it as the
customer's locale does. A translation with a broken placeholder falls back to
the English source rather than failing the conversation.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from typing import Any

from bot.engine.model import Dialogs, Text
from bot.engine.state import State
from bot.i18n import Translator
from common.masking import DOT
from common.vocabulary.categories import PRODUCT_OPEN_BASIS
from common.vocabulary.marketing_channels import MARKETING_CHANNELS

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _param(value: Any) -> Any:
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            return value
    return value


def _count(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def render_text(text: Text, translator: Translator, params: Mapping[str, Any]) -> str:
    """One ``Text`` in the translator's locale, placeholders filled from ``params``."""
    values = {k: _param(v) for k, v in params.items()}
    if text.literal:
        return text.source
    if text.plural is not None and text.count is not None:
        n = _count(values.get(text.count))
        values.setdefault("count", n)
        template = translator.ngettext(text.source, text.plural, n, text.context)
    else:
        template = translator.gettext(text.source, text.context)
    return translator.format(template, **values)


def render_message(
    dialogs: Dialogs, translator: Translator, message_id: str, /, **params: Any
) -> str:
    """A named message of ``dialogs/messages.yaml``; KeyError when the id is not defined."""
    return render_text(dialogs.messages[message_id], translator, params)


class Page:
    """Renders named messages for one conversation in one locale (what renderers use)."""

    def __init__(self, dialogs: Dialogs, translator: Translator) -> None:
        self.dialogs = dialogs
        self.translator = translator

    def say(self, message_id: str, /, **params: Any) -> str:
        """A named message; KeyError when the dialogs do not define it."""
        return render_message(self.dialogs, self.translator, message_id, **params)

    def named(self, prefix: str, code: Any, fallback: str, /, **params: Any) -> str:
        """``prefix.code`` when defined, else ``prefix.fallback`` (codes from the backend)."""
        key = f"{prefix}.{code}"
        return self.say(key if key in self.dialogs.messages else f"{prefix}.{fallback}", **params)

    def date(self, value: Any) -> str | None:
        """An ISO date in the locale's long form; None when it is not a date."""
        parsed = _param(value)
        if isinstance(parsed, datetime.date):
            return self.translator.format_date(parsed)
        return None


def _data(state: State, action: str) -> dict[str, Any]:
    found = state.results.get(action)
    return found if isinstance(found, dict) else {}


def _primary_masked(entries: Any) -> str | None:
    if not isinstance(entries, list):
        return None
    items = [e for e in entries if isinstance(e, dict) and isinstance(e.get("masked"), str)]
    primary = [e for e in items if e.get("primary")] or items
    return str(primary[0]["masked"]) if primary else None


def _address_line(address: Any) -> str | None:
    """A typed address masked as the backend masks the one on file: house and flat numbers hidden."""
    if not isinstance(address, dict):
        return None
    lines = [re.sub(r"\d+", DOT, str(address[k])) for k in ("line1", "line2") if address.get(k)]
    rest = [str(address[k]) for k in ("city", "postcode", "country") if address.get(k)]
    return ", ".join([*lines, *rest])


def contact_change(page: Page, state: State) -> str:
    """Old → new for the contact being changed (old masked from the profile)."""
    kind = str(state.vars.get("kind") or "phone")
    profile = _data(state, "load_profile")
    if kind == "address":
        old_address = profile.get("address")
        old = old_address.get("masked") if isinstance(old_address, dict) else None
        new = _address_line(state.vars.get("new_address"))
    else:
        old = _primary_masked(profile.get("phones" if kind == "phone" else "emails"))
        new = state.vars.get("masked")
    not_on_file = page.say("change.not_on_file")
    return page.named("change", kind, "phone", old=old or not_on_file, new=new or not_on_file)


def marketing_state(page: Page, state: State) -> str:
    """How the bank may market to the customer now, channel by channel."""
    marketing = _data(state, "load_profile").get("marketing")
    consents = marketing if isinstance(marketing, dict) else {}
    lines = [page.say("marketing.header")]
    for channel in MARKETING_CHANNELS:
        name = page.say(f"channel.{channel}")
        lines.append(
            page.say("marketing.on" if consents.get(channel) else "marketing.off", channel=name)
        )
    return "\n".join(lines)


# The retention basis that is nothing but "while a product is open" (retention.yaml).
# Categories whose deletion affects an open product (contact for its online services,
# identity for its checks); the "open product" warning is shown only when one is deleted.
TOUCH_PRODUCTS = frozenset({"contact", "identity", "products", "transactions"})


def erasure_preview(page: Page, state: State) -> str:
    """Per category: erased, or kept with its legal basis and end date (or while a product is open)."""
    preview = _data(state, "preview_erasure")
    lines = [page.say("preview.header")]
    kept = False
    found = preview.get("categories")
    categories = [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []
    for entry in categories:
        category = page.named("category", entry.get("category"), "contact")
        if entry.get("action") == "erase":
            lines.append(page.say("preview.erase", category=category))
            continue
        kept = True
        basis = page.named("basis", entry.get("basis"), "unknown")
        until = entry.get("until")
        while_open = entry.get("while_open")
        if isinstance(until, str):
            lines.append(
                page.say("preview.keep_until", category=category, until=_param(until), basis=basis)
            )
        else:
            product = while_open if isinstance(while_open, dict) else {}
            # A basis that is only "while your product is open" would repeat the condition.
            plain = entry.get("basis") == PRODUCT_OPEN_BASIS
            lines.append(
                page.say(
                    "preview.keep_while_open_plain" if plain else "preview.keep_while_open",
                    category=category,
                    product=page.named("product", product.get("kind"), "other"),
                    masked=str(product.get("masked") or ""),
                    basis=basis,
                )
            )
    if kept:
        lines.append(page.say("preview.restricted"))
    erased = {e.get("category") for e in categories if e.get("action") == "erase"}
    for warning in preview.get("warnings") or []:
        if warning == "open_products" and not erased & TOUCH_PRODUCTS:
            continue
        key = f"preview.warning.{warning}"
        if key in page.dialogs.messages:
            lines.append(page.say(key))
    return "\n".join(lines)


def _kept(page: Page, hold: dict[str, Any]) -> str:
    """One line of what a finished erasure kept: the category, until when (or while a product is open)."""
    category = page.named("category", hold.get("category"), "contact")
    until = hold.get("until")
    if isinstance(until, str):
        return page.say("status.kept_until", category=category, until=_param(until))
    return page.say("status.kept_while_open", category=category)


def request_list(page: Page, state: State) -> str:
    """The requests of the last 12 months: reference, kind, state, received and finished or due
    dates, and for a finished erasure what was kept until when; or that there are none."""
    requests = [
        r for r in _data(state, "list_requests").get("requests") or [] if isinstance(r, dict)
    ]
    if not requests:
        return page.say("status.none")
    lines = [page.say("status.header", count=len(requests))]
    for request in requests:
        common = {
            "reference": str(request.get("reference") or ""),
            "kind": page.named("kind", request.get("kind"), "erasure"),
            "state": page.named("state", request.get("state"), "submitted"),
            "received": _param(str(request.get("received_at") or "")[:10]),
        }
        finished = request.get("finished_at")
        if isinstance(finished, str):
            lines.append(page.say("status.line_finished", finished=_param(finished[:10]), **common))
            lines.extend(
                _kept(page, hold) for hold in request.get("holds") or [] if isinstance(hold, dict)
            )
        else:
            lines.append(
                page.say("status.line_open", due_date=_param(request.get("due_date")), **common)
            )
    return "\n".join(lines)


def access_summary(page: Page, state: State) -> str:
    """Per category held: what the bank must keep for legal reasons, and until when."""
    found = _data(state, "request_copy").get("summary")
    entries = [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []
    if not entries:
        return page.say("access.none")
    lines = [page.say("access.header")]
    for entry in entries:
        category = page.named("category", entry.get("category"), "contact")
        kept = entry.get("kept")
        if not isinstance(kept, dict):
            lines.append(page.say("access.line_erasable", category=category))
            continue
        basis = page.named("basis", kept.get("basis"), "unknown")
        if isinstance(kept.get("until"), str):
            until = _param(kept["until"])
            lines.append(page.say("access.line_until", category=category, until=until, basis=basis))
            continue
        held_by = kept.get("while_open")
        product: dict[str, Any] = held_by if isinstance(held_by, dict) else {}
        # As in the preview: a basis that is only "while your product is open" is not repeated.
        plain = kept.get("basis") == PRODUCT_OPEN_BASIS
        lines.append(
            page.say(
                "access.line_while_open_plain" if plain else "access.line_while_open",
                category=category,
                product=page.named("product", product.get("kind"), "other"),
                masked=str(product.get("masked") or ""),
                basis=basis,
            )
        )
    return "\n".join(lines)


def opt_out_choice(page: Page, state: State) -> str:
    """What stopping marketing through the chosen channel (``channel``, or ``all``) will do."""
    channel = state.vars.get("channel")
    known = channel if channel in (*MARKETING_CHANNELS, "all") else "all"
    return page.say(f"optout.confirm.{known}")


RENDERERS: dict[str, Callable[[Page, State], str]] = {
    "contact_change": contact_change,
    "marketing_state": marketing_state,
    "opt_out_choice": opt_out_choice,
    "erasure_preview": erasure_preview,
    "request_list": request_list,
    "access_summary": access_summary,
}
