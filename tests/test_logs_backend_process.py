"""``datadesk backend`` as operators run it: under failing mail, SMS and bad input, stderr holds no personal data.

The real process, its own logging set-up at DEBUG, the built-in CRM loaded
with ``datadesk crm import``; an SMTP server that refuses the recipient and
an SMS gateway that answers 500; then bodies that used to end in a 500
with the customer's name and address in the traceback. Everything the
process wrote to stderr is searched for her personal values and codes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
from conftest import SECRET_KEY, SERVICE_TOKEN
from fakes.personal import OLGA, OLGA_EMAIL, OLGA_PHONE, PERSONAL
from fakes.sms_sink import running_sms_sink
from fakes.smtp import running_smtp

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until_up(url: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(60), aiohttp.ClientSession() as client:
        while True:
            assert process.returncode is None, "the backend stopped; see its stderr"
            try:
                async with client.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def test_a_backend_process_under_failures_writes_no_personal_value_to_stderr(
    tmp_path: Path, backend_db_url: str
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    stderr = tmp_path / "stderr.log"
    (tmp_path / "olga.json").write_text(json.dumps({"customers": [OLGA]}), encoding="utf-8")
    with running_smtp(refuse_recipients=True) as mailbox:
        async with running_sms_sink() as sink:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "DATADESK_DATA_DIR": str(tmp_path / "var"),
                "DATADESK_DATABASE_URL": backend_db_url,
                "DATADESK_SECRET_KEY": SECRET_KEY,
                "DATADESK_SERVICE_TOKEN": SERVICE_TOKEN,
                "DATADESK_HTTP_PORT": str(port),
                "DATADESK_LOG_LEVEL": "DEBUG",
                "DATADESK_SMS_GATEWAY": "http",
                "DATADESK_SMS_GATEWAY_URL": sink.url,
                "DATADESK_SMS_GATEWAY_TOKEN": sink.token,
                "DATADESK_SMTP_HOST": mailbox.host,
                "DATADESK_SMTP_PORT": str(mailbox.port),
                "DATADESK_SMTP_FROM": "datadesk@bank.test",
            }
            cli = [sys.executable, "-m", "datadesk.cli"]
            with stderr.open("w") as err:
                loading = await asyncio.create_subprocess_exec(
                    *cli, "crm", "import", str(tmp_path / "olga.json"),
                    cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
                )  # fmt: skip
                assert await asyncio.wait_for(loading.wait(), 120) == 0
                process = await asyncio.create_subprocess_exec(
                    *cli, "backend", cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err
                )
            try:
                await _until_up(url, process)
                sink.fail_next(4, 500)
                headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
                async with aiohttp.ClientSession(url, headers=headers) as api:

                    async def post(path: str, body: str) -> int:
                        async with api.post(
                            path, data=body, headers={"Content-Type": "application/json"}
                        ) as resp:
                            return resp.status

                    start = {"phone": OLGA_PHONE, "locale": "lv"}
                    sms = json.dumps({**start, "chat": "tg:1", "channel": "sms"})
                    email = json.dumps({**start, "chat": "tg:2", "channel": "email"})
                    assert await post("/api/v1/verifications", sms) == 202
                    assert await post("/api/v1/verifications", email) == 202
                    line = json.dumps("Olga Petrova, Dzirnavu iela 37-12")[1:-1]
                    broken = '{"direction": "in", "text": "' + line + ' \\ud800"}'
                    assert await post("/api/v1/chats/tg:1/messages", broken) == 422
                    deep = '{"text": "' + line + '", "x": ' + "[" * 20000 + "]" * 20000 + "}"
                    assert await post("/api/v1/chats/tg:1/messages", deep) == 400
                    assert (
                        await post("/api/v1/notifications/ack", '{"ids": [9223372036854775808]}')
                        == 422
                    )
                async with asyncio.timeout(30):
                    while len(sink.rejected) < 4 or not mailbox.refused:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                # The delivery tasks log after the last refusal; stopping drains them.
            finally:
                process.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(process.wait(), 60)
    written = await asyncio.to_thread(stderr.read_text, encoding="utf-8")
    assert code == 0, written
    assert mailbox.refused == [OLGA_EMAIL]
    assert written.count("code not delivered") == 2, written
    codes = [m.group(0) for m in (re.search(r"\b\d{6}\b", s.text) for s in sink.refused) if m]
    assert codes
    found = [v for v in (*PERSONAL, *codes) if v.casefold() in written.casefold()]
    assert found == [], written
