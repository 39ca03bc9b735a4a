"""Canned responses: ready answers agents send to customers, one text per shipped locale.

Product teams edit ``backend/console/canned.yaml``; a mistake is reported as
``file:line: what is wrong`` when the console starts, never at send time::

    responses:
      - id: greeting            # stable, [a-z0-9_]
        title: Greeting         # what the agent sees on the button (English)
        text: "Hello, I am …"   # English: the gettext message id

The text is translated in the gettext catalogs with the context
``canned reply`` (``make locales`` extracts it, ``datadesk locales check``
checks it; ``locales/README.md``). A locale without a translation gets the
English text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from backend.messages import catalogs as shipped_catalogs
from common.errors import ConfigError
from common.i18n import Catalogs
from common.vocabulary.locales import SHIPPED_LOCALES

DEFAULT_PATH = Path(__file__).resolve().parent / "canned.yaml"
# The gettext context of every canned reply (babel.cfg gives it to the extractor).
CONTEXT = "canned reply"
_ID = re.compile(r"^[a-z0-9_]{1,40}$")


@dataclass(frozen=True)
class Canned:
    """One canned response: its id, the agent-facing title, and a text per locale."""

    id: str
    title: str
    text: dict[str, str]


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping(node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    assert isinstance(node, yaml.MappingNode)
    return {str(k.value): (k, v) for k, v in node.value}


def load(path: Path = DEFAULT_PATH, catalogs: Catalogs | None = None) -> list[Canned]:
    """Read and check a canned-responses file, translated by ``catalogs`` (the shipped ones).

    Raises ConfigError naming file and line.
    """
    name = str(path)
    if catalogs is None:
        catalogs = shipped_catalogs()
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(name, None, f"cannot read: {exc.strerror}") from exc
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(name, line, f"not valid YAML: {exc.problem}") from exc
    if not isinstance(root, yaml.MappingNode) or "responses" not in _mapping(root):
        raise ConfigError(name, 1, "expected a mapping with a 'responses' list")
    _, items = _mapping(root)["responses"]
    if not isinstance(items, yaml.SequenceNode):
        raise ConfigError(name, _line(items), "'responses' must be a list")
    found: list[Canned] = []
    seen: set[str] = set()
    for item in items.value:
        if not isinstance(item, yaml.MappingNode):
            raise ConfigError(name, _line(item), "each response must be a mapping")
        fields = _mapping(item)
        for key in ("id", "title", "text"):
            if key not in fields:
                raise ConfigError(name, _line(item), f"response without '{key}'")
        unknown = set(fields) - {"id", "title", "text"}
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(name, _line(fields[key][0]), f"unknown key '{key}'")
        id_node = fields["id"][1]
        ident = str(id_node.value)
        if not isinstance(id_node, yaml.ScalarNode) or not _ID.match(ident):
            raise ConfigError(name, _line(id_node), "id must be lower-case letters, digits, _")
        if ident in seen:
            raise ConfigError(name, _line(id_node), f"duplicate id '{ident}'")
        seen.add(ident)
        title_node = fields["title"][1]
        if not isinstance(title_node, yaml.ScalarNode) or not str(title_node.value).strip():
            raise ConfigError(name, _line(title_node), f"'{ident}': title must be text")
        text_node = fields["text"][1]
        if not isinstance(text_node, yaml.ScalarNode) or not str(text_node.value).strip():
            raise ConfigError(name, _line(text_node), f"'{ident}': text must be English text")
        english = str(text_node.value).strip()
        found.append(
            Canned(
                id=ident,
                title=str(title_node.value).strip(),
                text={
                    locale: catalogs.translator(locale).gettext(english, CONTEXT)
                    for locale in SHIPPED_LOCALES
                },
            )
        )
    return found
