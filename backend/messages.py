"""Texts the backend itself sends (one-time-code SMS and email), from ``policies/messages.yaml``.

The file is keyed by locale, then by message key; every locale must carry
every key of ``en`` with the same ``{placeholders}``. ``check`` reports
problems as ``file:line: what is wrong``; ``render`` falls back to ``en`` for
a locale the file does not ship.
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

import yaml

from common.errors import ConfigError

MESSAGES_FILE = Path(__file__).resolve().parent / "policies" / "messages.yaml"
SOURCE_LOCALE = "en"


def placeholders(text: str) -> frozenset[str]:
    """The ``{names}`` a template uses."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


def _line_of(path: Path, locale: str, key: str | None = None) -> int | None:
    """The line where ``locale`` (and ``key`` under it) is written, for error messages."""
    node = yaml.compose(path.read_text(encoding="utf-8"))
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if k.value == locale:
            if key is None or not isinstance(v, yaml.MappingNode):
                return int(k.start_mark.line) + 1
            for kk, _ in v.value:
                if kk.value == key:
                    return int(kk.start_mark.line) + 1
            return int(k.start_mark.line) + 1
    return None


def check(path: Path = MESSAGES_FILE) -> list[str]:
    """Every problem in the messages file as ``file:line: message``; empty when it is sound."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return [str(ConfigError(str(path), line, f"not valid YAML: {exc}"))]
    if not isinstance(data, dict) or not isinstance(data.get(SOURCE_LOCALE), dict):
        return [
            str(ConfigError(str(path), 1, f"expected a mapping with a {SOURCE_LOCALE!r} locale"))
        ]
    source: dict[str, str] = data[SOURCE_LOCALE]
    problems = []
    for locale, texts in data.items():
        if not isinstance(texts, dict):
            problems.append(
                str(ConfigError(str(path), _line_of(path, locale), "expected key: text"))
            )
            continue
        for key, text in source.items():
            if key not in texts:
                line = _line_of(path, locale)
                problems.append(str(ConfigError(str(path), line, f"{locale}: missing {key!r}")))
            elif placeholders(str(texts[key])) != placeholders(str(text)):
                line = _line_of(path, locale, key)
                want = ", ".join(sorted(placeholders(str(text)))) or "none"
                problems.append(
                    str(
                        ConfigError(str(path), line, f"{locale}.{key}: placeholders must be {want}")
                    )
                )
        for key in texts:
            if key not in source:
                line = _line_of(path, locale, key)
                problems.append(
                    str(ConfigError(str(path), line, f"{locale}.{key}: not in {SOURCE_LOCALE}"))
                )
    return problems


@lru_cache(maxsize=4)
def load(path: Path = MESSAGES_FILE) -> dict[str, dict[str, str]]:
    """The messages, checked; raises ``ConfigError`` with the first problem."""
    problems = check(path)
    if problems:
        raise ConfigError(str(path), None, "; ".join(problems))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {str(loc): {str(k): str(v) for k, v in texts.items()} for loc, texts in data.items()}


def render(locale: str, key: str, *, bank: str | None = None, **values: str) -> str:
    """The ``key`` message in ``locale`` (or English) with ``values`` filled in.

    ``{bank}`` is ``bank`` (the ``BANK_NAME`` setting) or, unset, the locale's
    ``bank_default`` ("Your bank").
    """
    messages = load()
    texts = messages.get(locale) or messages[SOURCE_LOCALE]
    return texts[key].format(bank=bank or texts["bank_default"], **values)
