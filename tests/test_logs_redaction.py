"""The log formatter: whole records masked, other libraries' exception messages withheld.

A traceback keeps what a developer needs to find the bug (frames, exception
types, the SQL statement, our own messages) and loses what could be personal
data (a refused address, a value a parser choked on), chained exceptions too.
"""

from __future__ import annotations

import io
import logging
import smtplib
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import StatementError

from backend.errors import ConnectorError
from backend.mailer import MailDeliveryError
from common.logs import WITHHELD, RedactingFormatter, redacting_handler

ROOT = Path(__file__).resolve().parent.parent
# Kept out of the lines that raise: a traceback quotes source lines, and the
# product's source never holds personal data.
ADDRESS = "Olga Petrova, Dzirnavu iela 37-12"
EMAIL = "olga.petrova@example.lv"
PHONE = "+37126123456"


def written() -> str:
    """What the product's handler writes for one ERROR record about the exception being handled."""
    stream = io.StringIO()
    log = logging.getLogger("test.logs")
    log.propagate = False
    log.handlers[:] = [redacting_handler(stream)]
    try:
        log.error("request 42 failed", exc_info=sys.exc_info())
    finally:
        log.handlers.clear()
        log.propagate = True
    return stream.getvalue()


def test_a_refused_recipient_chained_under_our_error_is_not_written() -> None:
    refused = {EMAIL: (550, f"5.1.1 <{EMAIL}> unknown".encode())}
    try:
        try:
            raise smtplib.SMTPRecipientsRefused(refused)
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailDeliveryError("vf_abc", "SMTPRecipientsRefused 550") from exc
    except MailDeliveryError:
        out = written()
    assert "olga.petrova" not in out
    assert f"smtplib.SMTPRecipientsRefused: {WITHHELD}" in out
    assert "The above exception was the direct cause of the following exception" in out
    # Our own error keeps its message: it names the verification, not the person.
    assert "MailDeliveryError: email vf_abc not accepted: SMTPRecipientsRefused 550" in out


def test_a_foreign_message_is_withheld_but_frames_and_types_stay() -> None:
    def parse_address(line: str) -> None:
        raise ValueError(f"cannot parse {line!r}")

    try:
        parse_address(ADDRESS)
    except ValueError:
        out = written()
    assert "Olga" not in out
    assert "Dzirnavu" not in out
    assert "in parse_address" in out
    assert f"ValueError: {WITHHELD}" in out
    assert out.startswith(out.split(" ERROR ")[0])  # the timestamp is left alone
    assert "ERROR test.logs: request 42 failed" in out


def test_our_errors_and_errors_about_the_program_keep_their_messages() -> None:
    try:
        raise ConnectorError("CRM answered HTTP 502 to GET")
    except ConnectorError:
        assert "ConnectorError: CRM answered HTTP 502 to GET" in written()
    try:
        None.missing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError:
        assert "'NoneType' object has no attribute 'missing'" in written()


def test_an_exception_raised_while_handling_another_withholds_both() -> None:
    try:
        try:
            {}[PHONE]
        except KeyError:
            raise RuntimeError(EMAIL) from None
    except RuntimeError:
        out = written()
    assert "26123456" not in out
    assert "olga.petrova" not in out
    assert "KeyError" not in out  # ``from None`` hides the context, as Python does

    try:
        try:
            {}[PHONE]
        except KeyError:
            raise RuntimeError("lookup failed") from None.missing  # type: ignore[attr-defined]
    except AttributeError:
        out = written()
    assert "During handling of the above exception, another exception occurred" in out
    assert "26123456" not in out


def test_a_statement_error_shows_its_sql_not_its_values() -> None:
    engine = create_engine("sqlite://")
    query = text("SELECT * FROM nowhere WHERE name = :name")
    with engine.connect() as conn:
        try:
            conn.execute(query, {"name": ADDRESS})
        except StatementError:
            out = written()
    assert "Olga" not in out
    assert "[SQL: SELECT * FROM nowhere WHERE name = ?]" in out


def test_a_database_error_shows_the_database_s_own_code_not_its_message(tmp_path: Path) -> None:
    # A database's message may quote what it was given; its error code names the cause alone.
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}", hide_parameters=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE people (name TEXT, CHECK (name NOT LIKE '%Olga%'))"))
    with engine.connect() as conn:
        try:
            conn.execute(text("INSERT INTO people VALUES (:name)"), {"name": ADDRESS})
        except StatementError:
            out = written()
    engine.dispose()
    assert "Olga" not in out
    assert "sqlite3.IntegrityError: (message withheld: it may hold personal data) " in out
    assert "[code: SQLITE_CONSTRAINT_CHECK]" in out


def test_exception_groups_are_rendered_member_by_member() -> None:
    try:
        raise ExceptionGroup("two failures", [ValueError(ADDRESS), ConnectorError("CRM timed out")])
    except ExceptionGroup:
        out = written()
    assert "Olga" not in out
    assert "ExceptionGroup: two failures (2 sub-exceptions)" in out
    assert f"ValueError: {WITHHELD}" in out
    assert "ConnectorError: CRM timed out" in out


def test_a_traceback_another_handler_cached_is_not_reused() -> None:
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, None)
    record.exc_text = f"ValueError: {ADDRESS}"
    out = RedactingFormatter("%(message)s").format(record)
    assert "Olga" not in out
    assert WITHHELD in out


def test_the_message_and_stack_are_masked() -> None:
    stream = io.StringIO()
    log = logging.getLogger("test.logs.stack")
    log.propagate = False
    log.handlers[:] = [redacting_handler(stream)]
    try:
        log.warning("sent 482913 to +371 2612 3456 at olga.petrova@example.lv", stack_info=True)
    finally:
        log.handlers.clear()
        log.propagate = True
    out = stream.getvalue()
    for value in ("482913", "2612 3456", "olga.petrova"):
        assert value not in out
    assert "Stack (most recent call last)" in out


def test_an_uncaught_exception_in_a_process_goes_through_the_redacting_handler() -> None:
    script = textwrap.dedent(
        """
        import threading
        from common.logs import configure
        configure()
        def worker():
            raise KeyError("olga.petrova@example.lv")
        thread = threading.Thread(target=worker, name="mailer")
        thread.start()
        thread.join()
        raise ValueError("Olga Petrova, Dzirnavu iela 37-12")
        """
    )
    done = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "CRITICAL datadesk: uncaught exception in thread mailer" in done.stderr
    assert "CRITICAL datadesk: uncaught exception\n" in done.stderr
    assert f"ValueError: {WITHHELD}" in done.stderr
    for value in ("Olga", "Dzirnavu", "olga.petrova"):
        assert value not in done.stderr
