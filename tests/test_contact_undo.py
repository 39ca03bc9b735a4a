"""Was this you? The old contact is told of a change at once and can undo it for 72 hours.

The real backend over HTTP on SQLite and PostgreSQL, a real worker run, the
SMS gateway sink and an aiosmtpd server: what the old phone or mailbox
receives, what the undo page answers, and what the CRM holds afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta

import aiohttp
import pytest
from conftest import LiveBackend
from fakes.ledger import add_customers, customer, proof_token, session_token, submit
from fakes.sms_sink import SmsSink, running_sms_sink
from fakes.smtp import SmtpCapture, running_smtp
from sqlalchemy import select

from backend import undo_notices
from backend.mailer import SmtpMailer
from backend.models.audit import AuditEntry
from backend.models.console import Escalation
from backend.models.ledger import Notification, Request
from backend.models.undo import ContactUndo
from backend.sms import HttpSmsGateway
from common.clock import FakeClock
from common.masking import mask_phone

OLD_PHONE, NEW_PHONE = "+37120000001", "+37129999999"
OLD_EMAIL, NEW_EMAIL = "c-1@example.lv", "new.owner@example.org"
LINK = re.compile(r"(http://\S+/undo/([A-Za-z0-9_-]{43})\?lang=[a-zA-Z_]+)")


@pytest.fixture
async def sms(backend: LiveBackend) -> AsyncIterator[SmsSink]:
    """The backend's SMS goes to a sink; one attempt per send, so a failure shows at once.

    Undo links name the test's backend (``PUBLIC_URL``).
    """
    backend.services.settings = replace(backend.services.settings, public_url=backend.url)
    async with running_sms_sink("t") as sink:
        backend.services.sms = HttpSmsGateway(sink.url, "t", attempts=1, backoff=0)
        yield sink


@pytest.fixture
def mail(backend: LiveBackend) -> Iterator[SmtpCapture]:
    with running_smtp() as capture:
        backend.services.mailer = SmtpMailer(capture.host, capture.port, "bank@example.lv")
        yield capture


async def run_worker(backend: LiveBackend) -> None:
    """One worker drains the queue and sends the notices that are due."""
    from backend.ledger.worker import run_workers

    svc = backend.services
    await run_workers(svc, svc.crm, concurrency=1, stop=asyncio.Event(), once=True, purge=False)


async def change(backend: LiveBackend, field: str, value: str, locale: str = "en") -> str:
    """Submit and carry out a change of ``field``; its reference."""
    await add_customers(backend.services, customer("C-1"))
    token = await session_token(backend.services, "C-1")
    if field == "address":
        payload = {
            "field": "address",
            "address": {
                "line1": "Jauna iela 9",
                "city": "Rīga",
                "postcode": "LV-1050",
                "country": "LV",
            },
        }
    else:
        proof = await proof_token(backend.services, "C-1", field, value)
        payload = {"field": field, "proof_token": proof}
    status, body = await submit(backend, token, "update_contact", payload, locale=locale)
    assert status == 201, body
    await run_worker(backend)
    return str(body["reference"])


async def crm(backend: LiveBackend) -> dict[str, object]:
    exported = await backend.services.crm.export("C-1")
    assert exported is not None
    return exported


async def press_undo(url: str) -> tuple[int, str]:
    """Open the page as a browser does, then press its button (the form's POST)."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(url) as page:
            html = await page.text()
        form = re.search(r'name="form" value="([0-9a-f]+)"', html)
        async with browser.post(url, data={"form": form.group(1) if form else ""}) as answer:
            return answer.status, await answer.text()


async def test_a_new_phone_is_told_to_the_old_one_and_undone_only_by_the_pages_button(
    backend: LiveBackend, sms: SmsSink
) -> None:
    reference = await change(backend, "phone", NEW_PHONE)
    [notice] = [m for m in sms.messages if m.to == OLD_PHONE]
    assert mask_phone(NEW_PHONE) in notice.text
    assert NEW_PHONE not in notice.text
    assert "November 22, 2026" in notice.text
    url, token = LINK.search(notice.text).groups()  # type: ignore[union-attr]
    # Only a digest of the token is stored.
    async with backend.services.sessions() as session:
        row = (await session.scalars(select(ContactUndo))).one()
        assert row.token_digest != token
        assert row.notice is None
    # Opening the link (a preview, a mail scanner) changes nothing.
    async with aiohttp.ClientSession() as browser, browser.get(url) as page:
        assert page.status == 200
        assert "Undo this change" in await page.text()
    assert (await crm(backend))["phones"] == [{"number": NEW_PHONE, "primary": True}]
    status, html = await press_undo(url)
    assert status == 200
    assert "The change is undone" in html
    assert (await crm(backend))["phones"] == [{"number": OLD_PHONE, "primary": True}]
    async with backend.services.sessions() as session:
        request = (await session.scalars(select(Request))).one()
        assert (request.reference, request.state) == (reference, "reverted")
        told = (await session.scalars(select(Notification).order_by(Notification.id))).all()
        assert [(n.type, n.outcome) for n in told][-1] == ("request_outcome", "reverted")
        escalation = (await session.scalars(select(Escalation))).one()
        assert (escalation.chat, escalation.reason) == ("tg:42", "possible_fraud")
        actions = (await session.scalars(select(AuditEntry.action))).all()
        assert "request_reverted" in actions


async def test_a_notice_the_gateway_refuses_is_sent_again_later_not_lost(
    backend: LiveBackend, sms: SmsSink, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sms.fail_next(1, 503)
    await change(backend, "phone", NEW_PHONE)
    assert [m.to for m in sms.messages] == []
    assert len(sms.rejected) == 1
    # Not before its back-off …
    assert await undo_notices.send_due(backend.services) == 0
    clock.advance(seconds=31)
    assert await undo_notices.send_due(backend.services) == 1
    assert [m.to for m in sms.messages] == [OLD_PHONE]
    # … and once only.
    clock.advance(hours=2)
    assert await undo_notices.send_due(backend.services) == 0
    # The log names the request, never the numbers or the link.
    assert "-notice attempt 1/1 failed: HTTP 503" in caplog.text
    token = LINK.search(sms.messages[0].text).group(2)  # type: ignore[union-attr]
    for secret in (OLD_PHONE, NEW_PHONE, OLD_PHONE[1:], token, "/undo/"):
        assert secret not in caplog.text


@pytest.mark.parametrize("locale", ["lv", "zh_Hant"])
async def test_a_new_email_is_told_to_the_old_address_in_the_customers_language(
    backend: LiveBackend, sms: SmsSink, mail: SmtpCapture, locale: str
) -> None:
    await change(backend, "email", NEW_EMAIL, locale=locale)
    [message] = [m for m, to in zip(mail.messages, mail.recipients, strict=True) if OLD_EMAIL in to]
    body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "n•••@example.org" in body
    assert NEW_EMAIL not in body
    word = {"lv": "E-pasta adrese", "zh_Hant": "電子郵件地址"}[locale]
    assert word in body
    url = LINK.search(body).group(1)  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as browser, browser.get(url) as page:
        html = await page.text()
    button = {"lv": "Atsaukt šīs izmaiņas", "zh_Hant": "撤銷這次變更"}[locale]
    assert button in html
    assert NEW_EMAIL not in html


async def test_a_used_an_expired_and_an_unknown_link_get_the_same_page_and_change_nothing(
    backend: LiveBackend, sms: SmsSink, clock: FakeClock
) -> None:
    await change(backend, "phone", NEW_PHONE)
    url = LINK.search(sms.messages[-1].text).group(1)  # type: ignore[union-attr]
    assert (await press_undo(url))[0] == 200
    used = await press_undo(url)
    unknown = await press_undo(url.replace("/undo/", "/undo/AAAA"))
    assert used == unknown
    assert "This link no longer works" in used[1]
    # A second change, left for 72 hours.
    token = await session_token(backend.services, "C-1")
    proof = await proof_token(backend.services, "C-1", "phone", "+37129999990")
    await submit(
        backend, token, "update_contact", {"field": "phone", "proof_token": proof}, locale="en"
    )
    await run_worker(backend)
    url = LINK.search(sms.messages[-1].text).group(1)  # type: ignore[union-attr]
    clock.advance(timedelta(hours=72).total_seconds())
    assert await press_undo(url) == unknown
    assert (await crm(backend))["phones"] == [{"number": "+37129999990", "primary": True}]


async def test_a_post_without_the_pages_form_token_does_nothing(
    backend: LiveBackend, sms: SmsSink
) -> None:
    await change(backend, "phone", NEW_PHONE)
    url = LINK.search(sms.messages[-1].text).group(1)  # type: ignore[union-attr]
    async with (
        aiohttp.ClientSession() as other_site,
        other_site.post(url, data={"form": "0" * 64}) as answer,
    ):
        assert "This link no longer works" in await answer.text()
    assert (await crm(backend))["phones"] == [{"number": NEW_PHONE, "primary": True}]
    assert (await press_undo(url))[0] == 200


async def test_undo_does_not_bring_back_a_contact_erased_since(
    backend: LiveBackend, sms: SmsSink
) -> None:
    await change(backend, "phone", NEW_PHONE)
    url = LINK.search(sms.messages[-1].text).group(1)  # type: ignore[union-attr]
    await backend.services.crm.erase("C-1", frozenset({"contact"}), (), idempotency_key="DD-ERASED")
    status, html = await press_undo(url)
    assert status == 200
    assert "Nothing to restore" in html
    assert (await crm(backend))["phones"] == []
    async with backend.services.sessions() as session:
        assert (await session.scalars(select(Request.state))).one() == "done"
        assert (await session.scalars(select(Escalation.reason))).one() == "possible_fraud"


async def test_a_new_postal_address_is_told_to_the_phone_on_file_and_can_be_undone(
    backend: LiveBackend, sms: SmsSink
) -> None:
    await change(backend, "address", "")
    [notice] = sms.messages
    assert notice.to == OLD_PHONE
    assert "J•••• i••• •, Rīga" in notice.text
    await press_undo(LINK.search(notice.text).group(1))  # type: ignore[union-attr]
    address = (await crm(backend))["address"]
    assert isinstance(address, dict)
    assert address["line1"] == "Brīvības iela 1"


async def test_the_old_contact_is_deleted_by_the_purge_a_day_after_the_link_expired(
    backend: LiveBackend, sms: SmsSink, clock: FakeClock
) -> None:
    from backend.ledger.purge import purge_once

    await change(backend, "phone", NEW_PHONE)
    clock.advance(hours=72 + 23)
    await purge_once(backend.services)
    async with backend.services.sessions() as session:
        assert len((await session.scalars(select(ContactUndo))).all()) == 1
    clock.advance(hours=2)
    await purge_once(backend.services)
    async with backend.services.sessions() as session:
        assert (await session.scalars(select(ContactUndo))).all() == []


def test_public_url_is_read_without_its_trailing_slash_and_defaults_to_the_listening_address() -> (
    None
):
    from backend.settings import Settings
    from common.settings import SettingsError

    env = {"DATADESK_PUBLIC_URL": "https://bank.example/datadesk/"}
    assert Settings.from_env(env).public_url == "https://bank.example/datadesk"
    assert Settings.from_env({"DATADESK_HTTP_PORT": "9000"}).public_url == "http://127.0.0.1:9000"
    with pytest.raises(SettingsError, match=r"DATADESK_PUBLIC_URL: 'bank\.example' is not"):
        Settings.from_env({"DATADESK_PUBLIC_URL": "bank.example"})


async def test_with_the_crm_down_the_page_asks_to_try_again_and_the_link_still_works(
    backend: LiveBackend, sms: SmsSink
) -> None:
    from e2e.conftest import free_port

    from backend.crm.http import HttpCrm

    await change(backend, "phone", NEW_PHONE)
    url = LINK.search(sms.messages[-1].text).group(1)  # type: ignore[union-attr]
    builtin = backend.services.crm
    backend.services.crm = HttpCrm(f"http://127.0.0.1:{free_port()}", None, timeout=2)
    status, html = await press_undo(url)
    assert status == 503
    assert "Please try again shortly" in html
    backend.services.crm = builtin
    assert (await crm(backend))["phones"] == [{"number": NEW_PHONE, "primary": True}]
    status, html = await press_undo(url)
    assert status == 200
    assert "The change is undone" in html
    assert (await crm(backend))["phones"] == [{"number": OLD_PHONE, "primary": True}]
