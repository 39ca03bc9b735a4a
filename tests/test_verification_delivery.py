"""Codes leave by SMS (console or HTTP gateway) or email (SMTP), in the customer's language."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from fakes.sms_sink import running_sms_sink
from fakes.smtp import running_smtp
from fakes.verification_world import ANNA, World, world

from backend import messages
from backend.mailer import MailDeliveryError, SmtpMailer
from backend.sms import ConsoleSmsGateway, HttpSmsGateway, SmsDeliveryError

__all__ = ["world"]


async def test_the_http_gateway_gets_the_contract_payload_in_the_customers_language():
    async with running_sms_sink("tok") as sink:
        gateway = HttpSmsGateway(sink.url, "tok", backoff=0.001)
        await gateway.send("+37120000001", "Jūsu datadesk kods: 123456.", "vf_1")
        assert [(m.to, m.text, m.reference) for m in sink.messages] == [
            ("+37120000001", "Jūsu datadesk kods: 123456.", "vf_1")
        ]


async def test_the_http_gateway_retries_refusals_with_backoff_until_accepted():
    async with running_sms_sink("tok") as sink:
        sink.fail_next(2, status=503)
        await HttpSmsGateway(sink.url, "tok", attempts=4, backoff=0.001).send(
            "+37120000001", "t", "vf_2"
        )
        assert sink.rejected == [(503, "vf_2"), (503, "vf_2")]
        assert len(sink.messages) == 1


async def test_the_http_gateway_reports_a_failure_by_reference_only(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO)
    async with running_sms_sink("tok") as sink:
        sink.fail_next(3, status=500)
        gateway = HttpSmsGateway(sink.url, "tok", attempts=3, backoff=0.001)
        with pytest.raises(SmsDeliveryError) as failure:
            await gateway.send("+37120000001", "code 654321", "vf_3")
        assert failure.value.reference == "vf_3"
        assert sink.messages == []
        assert len(sink.rejected) == 3
    assert "vf_3" in caplog.text
    assert "20000001" not in caplog.text
    assert "654321" not in caplog.text


async def test_a_wrong_gateway_token_is_a_failure_not_a_crash():
    async with running_sms_sink("right") as sink:
        gateway = HttpSmsGateway(sink.url, "wrong", attempts=2, backoff=0.001)
        with pytest.raises(SmsDeliveryError):
            await gateway.send("+37120000001", "t", "vf_4")


async def test_the_console_gateway_prints_the_text_to_a_masked_number():
    out = io.StringIO()
    await ConsoleSmsGateway(out).send("+37120000001", "Jūsu datadesk kods: 123456.", "vf_5")
    assert out.getvalue() == "[SMS to +371 2•••••01] Jūsu datadesk kods: 123456.\n"


async def test_the_sms_text_is_in_the_locale_the_chat_uses(world: World):
    await world.start(ANNA, locale="ru")
    [message] = await world.sink.wait_for(1)
    code = world.sink.codes_for(ANNA)[0]
    assert message.text == messages.render("ru", "sms_code", code=code)
    assert message.text.startswith("Ваш банк: ваш одноразовый код")
    assert "datadesk" not in message.text


async def test_the_codes_name_the_bank_from_the_bank_name_setting(world: World):
    from dataclasses import replace

    world.services.settings = replace(world.services.settings, bank_name="Acme Banka")
    await world.start(ANNA, locale="lv")
    [message] = await world.sink.wait_for(1)
    assert message.text.startswith("Acme Banka: Jūsu vienreizējais kods ir ")
    assert messages.render("zh_Hant", "email_subject", bank="Acme") == "【Acme】您的驗證碼"


async def test_email_codes_go_to_the_address_on_file_and_verify(world: World):
    with running_smtp() as smtp:
        world.services.mailer = SmtpMailer(smtp.host, smtp.port, "bank@example.lv")
        status, started = await world.start(ANNA, channel="email")
        assert status == 202
        assert started["channel"] == "email"
        [mail] = await smtp.wait_for(1)
        assert mail["To"] == "anna@example.lv"
        assert mail["Subject"] == messages.render("lv", "email_subject")
        [code] = smtp.codes_for("anna@example.lv")
        status, body = await world.check(started["verification_id"], code)
        assert status == 200
        assert body["session_token"]
    assert world.sink.messages == []


async def test_email_is_listed_for_codes_only_while_a_mail_server_is_configured(world: World):
    url = world.backend.api("/api/v1/verifications/channels")
    async with world.backend.client.get(url) as resp:
        assert (resp.status, await resp.json()) == (200, {"channels": ["sms"]})
    with running_smtp() as smtp:
        world.services.mailer = SmtpMailer(smtp.host, smtp.port, "bank@example.lv")
        async with world.backend.client.get(url) as resp:
            assert await resp.json() == {"channels": ["sms", "email"]}


async def test_an_smtp_server_that_is_down_is_a_delivery_error():
    with running_smtp() as smtp:
        port = smtp.port
    with pytest.raises(MailDeliveryError):
        await SmtpMailer("127.0.0.1", port, "bank@example.lv", timeout=2).send(
            "a@b.lv", "s", "b", "vf_6"
        )


def test_every_locale_has_every_code_message_with_the_same_placeholders():
    assert messages.check() == []
    texts = messages.load()
    for locale in ("en", "lv", "ru", "zh_Hans", "zh_Hant"):
        speak = messages.translator(locale)
        for key, source in texts.items():
            assert speak.has(source.text, source.context), (locale, key)
            text = speak.gettext(source.text, source.context)
            assert messages.placeholders(text) == messages.placeholders(source.text)
            if key in ("sms_code", "sms_proof_code", "email_code", "email_proof_code"):
                assert "{code}" in text
                assert "{bank}" in text
                assert "datadesk" not in text


def test_a_broken_messages_file_is_reported_with_file_and_line(tmp_path: Path):
    broken = tmp_path / "messages.yaml"
    broken.write_text(
        'bank_default:\n  context: bank name\n  text: "Your bank"\n'
        "sms_code:\n  context: one-time code SMS\n  txt: code {code}\n"
    )
    assert messages.check(broken) == [
        f"{broken}:5: sms_code: unknown key 'txt'",
        f"{broken}:4: sms_code: text must be text",
    ]
