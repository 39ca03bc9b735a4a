"""Texts the backend itself sends and shows, translated through the gettext catalogs.

``policies/messages.yaml`` holds each text once, in English, under the key the
code asks for, with its gettext context (and a note for translators)::

    sms_code:
      context: one-time code SMS
      comment: "SMS with a one-time code … {code}: the code."
      text: "{bank}: your one-time code is {code}. …"

The English text is the message id: ``make locales`` extracts it (``babel.cfg``)
and the translations live in ``locales/*/LC_MESSAGES/messages.po`` beside the
dialogs' texts, so ``datadesk locales check`` covers them (missing, fuzzy,
placeholders). The catalogs are the shipped ones (``common.i18n.shipped_dir``):
an installed wheel's ``bot/data/locales``, a checkout's ``locales/``. A locale
without a translation of a text shows the English source.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from common.errors import ConfigError
from common.i18n import Catalogs, Translator, shipped_dir

MESSAGES_FILE = Path(__file__).resolve().parent / "policies" / "messages.yaml"
_FIELDS = frozenset({"context", "comment", "text"})


@dataclass(frozen=True)
class Source:
    """One text as the messages file writes it: gettext context and English text."""

    context: str
    text: str


def placeholders(text: str) -> frozenset[str]:
    """The ``{names}`` a template uses."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _read(path: Path) -> tuple[dict[str, Source], list[str]]:
    """The texts of a messages file, and every problem as ``file:line: message``."""
    name = str(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return {}, [str(ConfigError(name, None, f"cannot read: {exc.strerror}"))]
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        return {}, [str(ConfigError(name, line, f"not valid YAML: {exc.problem}"))]
    if not isinstance(root, yaml.MappingNode):
        return {}, [str(ConfigError(name, 1, "expected a mapping of key: {context, text}"))]
    found: dict[str, Source] = {}
    problems: list[str] = []
    for key_node, value in root.value:
        key = str(key_node.value)
        if not isinstance(value, yaml.MappingNode):
            problems.append(
                str(ConfigError(name, _line(key_node), f"{key}: expected context, text"))
            )
            continue
        fields = {str(k.value): v for k, v in value.value}
        for unknown in sorted(set(fields) - _FIELDS):
            problems.append(str(ConfigError(name, _line(value), f"{key}: unknown key {unknown!r}")))
        texts = {}
        for field in ("context", "text"):
            node = fields.get(field)
            if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
                where = _line(node) if node is not None else _line(key_node)
                problems.append(str(ConfigError(name, where, f"{key}: {field} must be text")))
            else:
                texts[field] = str(node.value)
        if key in found:
            problems.append(str(ConfigError(name, _line(key_node), f"{key}: written twice")))
        elif len(texts) == 2:
            found[key] = Source(texts["context"], texts["text"])
    if not problems and "bank_default" not in found:
        problems.append(str(ConfigError(name, 1, "bank_default: missing")))
    return found, problems


def check(path: Path = MESSAGES_FILE) -> list[str]:
    """Every problem in the messages file as ``file:line: message``; empty when it is sound.

    Translations are checked with the rest of the catalogs by ``datadesk locales check``.
    """
    return _read(path)[1]


@lru_cache(maxsize=4)
def load(path: Path = MESSAGES_FILE) -> dict[str, Source]:
    """The texts by key, checked; raises ``ConfigError`` with every problem."""
    found, problems = _read(path)
    if problems:
        raise ConfigError(str(path), None, "; ".join(problems))
    return found


@lru_cache(maxsize=4)
def catalogs(locales_dir: Path | None = None) -> Catalogs:
    """The shipped catalogs (read once); a broken catalog raises ``ConfigError``."""
    return Catalogs.load(locales_dir or shipped_dir("locales"))


def translator(locale: str) -> Translator:
    """The shipped catalogs' translator for ``locale`` (a negotiated one, or English)."""
    return catalogs().translator(locale)


def render(locale: str, key: str, *, bank: str | None = None, **values: str) -> str:
    """The ``key`` message in ``locale`` (or English) with ``values`` filled in.

    ``{bank}`` is ``bank`` (the ``BANK_NAME`` setting) or, unset, ``bank_default``
    in the locale ("Your bank").
    """
    texts = load()
    speak = translator(locale)
    source = texts[key]
    if not bank:
        default = texts["bank_default"]
        bank = speak.gettext(default.text, default.context)
    return speak.gettext(source.text, source.context).format(bank=bank, **values)
