"""The copy of a customer's data as two documents: JSON for machines, PDF for people.

``request_copy`` (``bot.actions``) receives the copy from the backend
(``POST /api/v1/access``) and keeps it only in the action's context, never in
the chat's saved state; ``documents`` turns it into the two files the channel
sends right after the dialog's ``access.sending`` message. Both live only in
memory until the channel has sent them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.channel import Document

log = logging.getLogger(__name__)

# The named message the documents follow in the chat (``dialogs/messages.yaml``).
SENDING_MESSAGE = "access.sending"
JSON_TYPE = "application/json"
PDF_TYPE = "application/pdf"


class Texts:
    """Named messages of ``dialogs/messages.yaml`` in one locale, for the documents."""

    def __init__(self, say: Callable[..., str]) -> None:
        self._say = say

    def say(self, message_id: str, /, **params: Any) -> str:
        """A named message; KeyError when the dialogs do not define it."""
        return self._say(message_id, **params)

    def named(self, prefix: str, code: Any, fallback: str, /, **params: Any) -> str:
        """``prefix.code`` when defined, else ``prefix.fallback`` (codes from the CRM)."""
        try:
            return self._say(f"{prefix}.{code}", **params)
        except KeyError:
            return self._say(f"{prefix}.{fallback}", **params)


@dataclass(frozen=True)
class CopyAnswer:
    """What the backend answered to an access request: the copy and how to present it."""

    reference: str
    copy: dict[str, Any]
    summary: list[dict[str, Any]]
    bank_name: str | None
    generated_at: str


def from_answer(answer: dict[str, Any]) -> CopyAnswer | None:
    """The copy in a ``POST /api/v1/access`` answer, or None when it holds none."""
    copy, summary = answer.get("copy"), answer.get("summary")
    if not isinstance(copy, dict) or not isinstance(summary, list):
        return None
    return CopyAnswer(
        reference=str(answer.get("reference") or ""),
        copy=copy,
        summary=[e for e in summary if isinstance(e, dict)],
        bank_name=answer.get("bank_name") if isinstance(answer.get("bank_name"), str) else None,
        generated_at=str(answer.get("generated_at") or ""),
    )


def _filename(reference: str, extension: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9-]", "", reference) or "copy"
    return f"copy-{safe}.{extension}"


def json_document(answer: CopyAnswer) -> Document:
    """The copy exactly as the backend built it, indented, UTF-8."""
    body = json.dumps(answer.copy, ensure_ascii=False, indent=2).encode()
    return Document(_filename(answer.reference, "json"), JSON_TYPE, body)


def documents(answer: CopyAnswer, locale: str, texts: Texts) -> list[Document]:
    """The PDF and the JSON file; the JSON alone when the PDF cannot be made (logged)."""
    from bot.access_pdf import PdfUnavailable, render_pdf

    made = [json_document(answer)]
    try:
        pdf = render_pdf(answer, locale, texts)
    except PdfUnavailable as exc:
        log.error("copy %s: no PDF: %s", answer.reference, exc)
        return made
    return [Document(_filename(answer.reference, "pdf"), PDF_TYPE, pdf), *made]
