"""The backend's texts live in the gettext catalogs, and every translation came over unchanged.

``tests/fixtures/backend_texts_before/`` holds ``backend/policies/messages.yaml``
and ``backend/console/canned.yaml`` as they were when each locale's text sat in
the YAML. Every key renders, in every locale, exactly as it did then (with the
bank's name set and unset), and ``datadesk locales check`` now watches these
texts like the dialogs'. When a translator improves one of these texts on
purpose, change the fixture with it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from babel.messages.frontend import parse_mapping_cfg

from backend import messages
from backend.console import canned
from bot.i18n.sources import BACKEND_TEXTS, extract_template
from common.settings import REPO_ROOT
from common.vocabulary.locales import SHIPPED_LOCALES
from datadesk.cli import main

BEFORE = Path(__file__).parent / "fixtures" / "backend_texts_before"


def _values(template: str) -> dict[str, str]:
    """A distinct sample value for every placeholder but ``{bank}``."""
    return {name: f"<{name}>" for name in messages.placeholders(template) if name != "bank"}


def _old_messages() -> dict[str, dict[str, str]]:
    data = yaml.safe_load((BEFORE / "messages.yaml").read_text(encoding="utf-8"))
    return {str(locale): dict(texts) for locale, texts in data.items()}


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
@pytest.mark.parametrize("bank", ["Acme Bank", None])
def test_every_backend_text_renders_as_it_did_from_the_yaml(locale: str, bank: str | None) -> None:
    old = _old_messages()
    assert set(messages.load()) == set(old["en"])
    for key, template in old[locale].items():
        values = _values(old["en"][key])
        expected = template.format(bank=bank or old[locale]["bank_default"], **values)
        assert messages.render(locale, key, bank=bank, **values) == expected, (locale, key)


def test_a_language_the_catalogs_lack_gets_english_and_a_regional_one_its_language() -> None:
    assert messages.render("de", "sms_code", code="123456").startswith("Your bank: your one-time")
    assert messages.render("lv-LV", "email_subject") == "Jūsu banka: Jūsu vienreizējais kods"


def test_every_canned_reply_reads_as_it_did_from_the_yaml() -> None:
    data = yaml.safe_load((BEFORE / "canned.yaml").read_text(encoding="utf-8"))
    old = {item["id"]: (item["title"], item["text"]) for item in data["responses"]}
    now = {c.id: (c.title, c.text) for c in canned.load()}
    assert now == {
        ident: (title, {loc: text.strip() for loc, text in texts.items()})
        for ident, (title, texts) in old.items()
    }


def test_the_canned_replies_speak_gender_neutrally_and_lv_writes_jums_capitalised() -> None:
    replies = " ".join(text for c in canned.load() for text in c.text.values())
    assert not re.search(r"\bjums\b|\bjūs\b|\bjūsu\b", replies)
    assert "izlasījis" not in replies
    assert "izlasījusi" not in replies
    assert not re.search(r"\bЯ (прочитал|ознакомился|проверил)", replies)


def test_the_template_carries_the_backend_texts_with_their_contexts() -> None:
    template = extract_template(REPO_ROOT, REPO_ROOT / "dialogs")
    for key, source in messages.load().items():
        entry = template.get(source.text, context=source.context)
        assert entry is not None, key
        assert any(path == "backend/policies/messages.yaml" for path, _ in entry.locations)
    greeting = next(c for c in canned.load() if c.id == "greeting")
    entry = template.get(greeting.text["en"], context=canned.CONTEXT)
    assert entry is not None
    assert "title: Greeting" in entry.auto_comments


def _copy_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "data")
    for name in ("bot", "backend", "dialogs", "locales"):
        shutil.copytree(REPO_ROOT / name, root / name, ignore=ignore)
    shutil.copy(REPO_ROOT / "babel.cfg", root / "babel.cfg")
    monkeypatch.chdir(root)
    monkeypatch.setenv("DATADESK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DATADESK_LOCALES_DIR", str(root / "locales"))
    monkeypatch.setenv("DATADESK_DIALOGS_DIR", str(root / "dialogs"))
    return root


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, start=1) if needle in line)


def test_locales_check_refuses_a_broken_backend_text_and_an_untranslated_canned_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_project(tmp_path, monkeypatch)
    ru = root / "locales/ru/LC_MESSAGES/messages.po"
    text = ru.read_text(encoding="utf-8")
    assert "ваш одноразовый код — {code}." in text
    ru.write_text(text.replace("ваш одноразовый код — {code}.", "ваш одноразовый код — {kod}."))
    lv = root / "locales/lv/LC_MESSAGES/messages.po"
    text = lv.read_text(encoding="utf-8")
    translated = 'msgstr "Paldies! Lūdzu, uzgaidiet brīdi, kamēr es to pārbaudu."'
    assert translated in text
    lv.write_text(text.replace(translated, 'msgstr ""'), encoding="utf-8")

    status = main(["locales", "check"])
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    (placeholder,) = [line for line in out if "{kod}" in line]
    where = re.match(r"locales/ru/LC_MESSAGES/messages\.po:(\d+): ", placeholder)
    assert where is not None, placeholder
    # The line named is where the entry starts (its comments), just above the wrong text.
    assert 0 <= _line_of(ru, "{kod}") - int(where.group(1)) <= 6, placeholder
    assert "'one-time code SMS'" in placeholder
    assert any(
        line.startswith("locales/lv/LC_MESSAGES/messages.po:")
        and "missing translation" in line
        and "'canned reply'" in line
        for line in out
    ), out


def test_locales_check_sees_a_changed_canned_reply_until_make_locales(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_project(tmp_path, monkeypatch)
    path = root / "backend/console/canned.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Thank you. Please give me a moment", "Thanks. One moment"))
    assert main(["locales", "check"]) == 1
    out = capsys.readouterr().out
    assert "Thanks. One moment" in out


def test_the_backend_texts_read_without_babel_cfg_are_the_ones_babel_cfg_maps(
    tmp_path: Path,
) -> None:
    # An installed wheel has no babel.cfg; `locales check` there reads BACKEND_TEXTS.
    with (REPO_ROOT / "babel.cfg").open(encoding="utf-8") as fileobj:
        methods, options = parse_mapping_cfg(fileobj, "babel.cfg")  # type: ignore[no-untyped-call]
    mapped = {pattern: options.get(pattern, {}) for pattern, _ in methods}
    for name, wanted in BACKEND_TEXTS:
        assert mapped.get(name) == wanted, name
    with_cfg = extract_template(REPO_ROOT, REPO_ROOT / "dialogs")
    without_cfg = extract_template(tmp_path)
    backend = {
        (m.context, m.id)
        for m in with_cfg
        if any(path.startswith("backend/") and path.endswith(".yaml") for path, _ in m.locations)
    }
    assert backend
    assert backend <= {(m.context, m.id) for m in without_cfg}
