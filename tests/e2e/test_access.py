"""A copy of my data (access request), as a customer gets it in their Telegram chat.

The real bot, backend and worker on SQLite and PostgreSQL, the Bot API
stand-in (which records the files ``sendDocument`` uploads). The customer asks
from the menu, proves who they are, reads the summary and receives the PDF and
the JSON file; the JSON is the CRM's record, the PDF's text holds their name
and every category. One page of each PDF is saved as a PNG with the test
artifacts (``test-artifacts/access/<engine>/``).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fakes.crm_server import running_crm_server
from pypdf import PdfReader
from sqlalchemy import select

from backend.crm.builtin import BuiltinCrm
from backend.crm.http import HttpCrm
from backend.models.audit import AuditEntry
from backend.models.ledger import Notification
from e2e.conftest import Stack
from e2e.steps import PHONES, choose, requests_of, start, verify

CHAT = 5301
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "access"

SUMMARY_HEAD = "This is the data we hold about you, and what the law makes us keep:"
SENDING = "Here is your copy: a PDF to read and a JSON file to use with other services. Please keep them safe: they hold all your personal data."
BY_AGENT = "I can't prepare the copy here right now. Your request number is {reference}; a colleague will send you the copy by {due_date} at the latest."
# Anna's record (e2e/conftest.py): what the bank holds about her, by category.
ANNA = {"ref": "C-1001", "name": "Anna Bērziņa", "phone": PHONES["lv"]}
HELD = ("contact", "marketing", "identity", "products", "transactions")
CATEGORY_NAMES = {
    "contact": "Contact details",
    "marketing": "Marketing preferences",
    "identity": "Identity documents",
    "products": "Products and accounts",
    "transactions": "Transactions",
}


def pdf_text(content: bytes) -> str:
    """The PDF's text as a reader would copy it, whitespace folded."""
    reader = PdfReader(io.BytesIO(content))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() or "" for page in reader.pages))


def save_first_page(content: bytes, folder: Path, name: str) -> Path:
    """Page 1 as a PNG next to the other test artifacts (poppler's pdftoppm)."""
    folder.mkdir(parents=True, exist_ok=True)
    pdf = folder / f"{name}.pdf"
    pdf.write_bytes(content)
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "poppler-utils is not installed (make fonts)"
    subprocess.run(  # noqa: S603 - Debian's pdftoppm on our own file
        [pdftoppm, "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(folder / name)],
        check=True, timeout=60,
    )  # fmt: skip
    return folder / f"{name}.png"


@pytest.mark.parametrize("locale", ["lv", "zh_Hant", "ru"])
async def test_a_verified_customer_gets_the_summary_then_a_pdf_and_the_json_of_their_data(
    stack: Stack, locale: str, db_kind: str
) -> None:
    api = stack.api
    await start(stack, CHAT, locale)
    await choose(stack, CHAT, "access")
    await verify(stack, CHAT, locale, ANNA["phone"])
    summary = await api.wait_for_message(CHAT, stack.t(locale, SUMMARY_HEAD))
    sending = await api.wait_for_message(CHAT, stack.t(locale, SENDING))
    pdf, copy = await api.wait_for_documents(CHAT, 2)
    # The summary names each category held, with what the law keeps and until when.
    for category in HELD:
        assert stack.t(locale, CATEGORY_NAMES[category]) in summary.text
    # The files come right after the message that announces them, before the menu.
    menu = await api.wait_for_message(CHAT, buttons="access", since=len(api.messages(CHAT)) - 1)
    assert sending.message_id < pdf.message_id < copy.message_id < menu.message_id
    assert pdf.filename.endswith(".pdf")
    assert pdf.content.startswith(b"%PDF")
    assert copy.filename.endswith(".json")

    # The JSON is the CRM's record, plus the customer's requests and consent history.
    data = json.loads(copy.content)
    on_file = await stack.services.crm.export(ANNA["ref"])
    assert {k: v for k, v in data.items() if k not in ("requests", "marketing_history")} == on_file
    [request] = await requests_of(stack, CHAT)
    assert request.kind == "access"
    assert request.state == "done"
    assert [r["reference"] for r in data["requests"]] == [request.reference]
    assert data["marketing_history"] == []

    # The PDF a person reads: their name, every category in their language, the bank.
    text = pdf_text(pdf.content)
    assert ANNA["name"] in text
    assert "LV80BANK0000435195001" in text
    for category in HELD:
        assert stack.t(locale, CATEGORY_NAMES[category]) in text, (category, text)
    assert stack.t(locale, "Your bank") in text
    assert request.reference in text
    png = save_first_page(pdf.content, ARTIFACTS / db_kind, f"copy-{locale}")
    assert png.stat().st_size > 10_000

    # The ledger row and its audit entries stay; the copy itself is nowhere in the backend.
    async with stack.services.sessions() as session:
        actions = list(
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.subject == request.reference)
            )
        )
        notices = list(await session.scalars(select(Notification)))
    assert {"request_submitted", "request_done", "access_copy_sent"} <= set(actions)
    # The chat answered already: no outcome notification repeats it.
    assert request.reference not in [notice.reference for notice in notices]
    for notice in notices:
        assert "LV80BANK0000435195001" not in (notice.details or "")
        assert ANNA["name"] not in (notice.details or "")
    assert "Bērziņa" not in (request.result or "")


async def test_a_consent_withdrawn_earlier_is_in_the_copy_with_its_date(stack: Stack) -> None:
    api = stack.api
    await start(stack, CHAT, "en")
    await choose(stack, CHAT, "marketing_opt_out")
    await verify(stack, CHAT, "en", ANNA["phone"])
    await api.wait_for_message(CHAT, buttons="all")
    await choose(stack, CHAT, "email")
    await api.wait_for_message(CHAT, buttons="yes")
    await choose(stack, CHAT, "yes")
    await api.wait_for_message(CHAT, buttons="access")
    await choose(stack, CHAT, "access")
    pdf, copy = await api.wait_for_documents(CHAT, 2)
    data = json.loads(copy.content)
    [opt_out] = [r for r in data["requests"] if r["kind"] == "marketing_opt_out"]
    assert data["marketing"]["email"] is False
    assert data["marketing_history"] == [
        {
            "date": opt_out["updated_at"],
            "channel": "email",
            "consent": False,
            "reference": opt_out["reference"],
        }
    ]
    text = pdf_text(pdf.content)
    assert f"Email switched off (request {opt_out['reference']})" in text


async def test_a_crm_that_cannot_export_hands_the_copy_to_a_colleague(stack: Stack) -> None:
    api = stack.api
    builtin = BuiltinCrm(stack.services.sessions, stack.services.clock)
    async with running_crm_server(builtin) as crm:
        crm.exports = False
        stack.services.crm = HttpCrm(crm.url, crm.token)
        await start(stack, CHAT, "lv")
        await choose(stack, CHAT, "access")
        await verify(stack, CHAT, "lv", ANNA["phone"])
        told = await api.wait_for_message(CHAT, stack.t("lv", BY_AGENT))
        assert ("GET", "/customers/C-1001/export") in crm.calls
    [request] = await requests_of(stack, CHAT)
    assert request.reference in told.text
    async with stack.services.sessions() as session:
        outcomes = list(await session.scalars(select(Notification.reference)))
    # Told once, by the chat: no outcome notification says it again.
    assert request.reference not in outcomes
    assert request.state == "failed"
    assert request.reason == "export_unavailable"
    assert api.documents(CHAT) == []
    # The chat waits for a person, who sends the copy.
    await api.wait_for_message(CHAT, buttons="stop_waiting")
    async with stack.services.sessions() as session:
        from backend.models.console import Escalation

        waiting = list(await session.scalars(select(Escalation.chat)))
    assert f"tg:{CHAT}" in waiting
