"""A Babel extractor for dialog YAML: every ``text`` and ``label`` a customer can see.

Registered as the ``datadesk_dialogs`` extraction method (``pyproject.toml``,
``babel.extractors``) and used by ``babel.cfg``, so ``pybabel extract`` reads
dialog files beside Python. The format it reads (the engine's dialog files)::

    - id: ask_phone
      text: "Please share your phone number."     # a message
      context: verify                              # optional gettext msgctxt
      comment: "Shown before the contact button."  # optional note for translators
      options:
        - {id: yes, label: "Yes"}                  # a button label
    - text: {one: "You have {count} open request.",
             other: "You have {count} open requests.", count: count}   # a plural

Other YAML files use it too (``babel.cfg``): the backend's texts
(``backend/policies/messages.yaml``) and the canned replies
(``backend/console/canned.yaml``), whose section gives two options:
``context`` (the msgctxt of a text without its own ``context:``) and
``comment_key`` (a sibling key, e.g. ``title``, shown to translators).

A YAML comment directly above a text whose first line starts with one of the
``--add-comments`` tags (e.g. ``# TRANSLATORS: …``) is carried too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from typing import IO, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from common.errors import ConfigError

log = logging.getLogger(__name__)

TEXT_KEYS = frozenset({"text", "label"})
_STR_TAG = "tag:yaml.org,2002:str"

# What extract() yields: (line, gettext function name, message(s), translator comments).
Extracted = tuple[int, str | None, str | tuple[str, ...], list[str]]


def _scalar(node: Node | None) -> str | None:
    """The text of a string scalar node, else None."""
    if isinstance(node, ScalarNode) and node.tag == _STR_TAG and node.value.strip():
        return str(node.value)
    return None


class _Walker:
    """Walks one YAML file's node tree and yields Babel extraction tuples."""

    def __init__(
        self,
        filename: str,
        lines: list[str],
        keywords: Collection[str],
        tags: Collection[str],
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.filename = filename
        self.lines = lines
        self.keywords = set(keywords)
        self.tags = tuple(tags)
        options = options or {}
        # babel.cfg options: a context for texts without their own, and a sibling key
        # whose value is shown to translators (canned replies: ``comment_key = title``).
        self.default_context = str(options.get("context") or "") or None
        self.comment_key = str(options.get("comment_key") or "") or None

    def walk(self, node: Node) -> Iterator[Extracted]:
        """Yield every translatable string under ``node``, in file order."""
        if isinstance(node, SequenceNode):
            for item in node.value:
                yield from self.walk(item)
        elif isinstance(node, MappingNode):
            siblings = {k.value: v for k, v in node.value if isinstance(k, ScalarNode)}
            context = _scalar(siblings.get("context")) or self.default_context
            comment = _scalar(siblings.get("comment"))
            if self.comment_key and comment is None:
                value = _scalar(siblings.get(self.comment_key))
                comment = f"{self.comment_key}: {value}" if value else None
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value in TEXT_KEYS:
                    yield from self.messages(value, context, comment)
                else:
                    yield from self.walk(value)

    def messages(self, node: Node, context: str | None, comment: str | None) -> Iterator[Extracted]:
        """Yield the message(s) of one ``text``/``label`` value."""
        line = node.start_mark.line + 1
        comments = [*self.tagged_comments(node.start_mark.line), *([comment] if comment else [])]
        if isinstance(node, SequenceNode):
            for item in node.value:
                yield from self.messages(item, context, comment)
        elif isinstance(node, MappingNode):
            forms = {k.value: v for k, v in node.value if isinstance(k, ScalarNode)}
            one, other = _scalar(forms.get("one")), _scalar(forms.get("other"))
            if one is None or other is None:
                log.warning(
                    "%s:%d: a plural text needs both 'one' and 'other'", self.filename, line
                )
                return
            yield self.plural(line, one, other, context, comments)
        elif isinstance(node, ScalarNode) and node.tag != _STR_TAG:
            # YAML reads an unquoted No or 12 as a boolean or number, not as text.
            log.warning("%s:%d: text is not a string; quote it", self.filename, line)
        else:
            text = _scalar(node)
            if text is not None:
                yield self.singular(line, text, context, comments)

    def singular(self, line: int, text: str, context: str | None, comments: list[str]) -> Extracted:
        """One message, with its context when the keyword set can carry it."""
        if context and "pgettext" in self.keywords:
            return line, "pgettext", (context, text), comments
        return line, "gettext" if "gettext" in self.keywords else None, text, comments

    def plural(
        self, line: int, one: str, other: str, context: str | None, comments: list[str]
    ) -> Extracted:
        """A singular/plural pair: English ``one`` and ``other`` become msgid and msgid_plural."""
        if context and "npgettext" in self.keywords:
            return line, "npgettext", (context, one, other), comments
        if "ngettext" in self.keywords:
            return line, "ngettext", (one, other), comments
        log.warning("%s:%d: plural skipped: no 'ngettext' keyword", self.filename, line)
        return line, None, one, comments

    def tagged_comments(self, index: int) -> list[str]:
        """The ``# TAG: …`` comment block directly above line ``index`` (0-based), if any."""
        block: list[str] = []
        above = index - 1
        while above >= 0 and self.lines[above].lstrip().startswith("#"):
            block.insert(0, self.lines[above].lstrip()[1:].strip())
            above -= 1
        for start, text in enumerate(block):
            if any(text.startswith(tag) for tag in self.tags):
                return [" ".join(block[start:])]
        return []


def extract_dialogs(
    fileobj: IO[bytes],
    keywords: Collection[str] | Mapping[str, Any],
    comment_tags: Collection[str],
    options: Mapping[str, Any],
) -> Iterator[Extracted]:
    """Babel extractor protocol: yield ``(lineno, funcname, messages, comments)`` per text.

    A file that is not valid YAML raises ConfigError ``file:line: …`` so that
    ``pybabel extract`` and ``datadesk locales check`` say where it is broken.
    """
    filename = str(getattr(fileobj, "name", "<dialogs>"))
    encoding = str(options.get("encoding", "utf-8"))
    try:
        source = fileobj.read().decode(encoding)
    except UnicodeDecodeError as exc:
        raise ConfigError(filename, None, f"not valid {encoding} ({exc.reason})") from exc
    walker = _Walker(filename, source.splitlines(), keywords, comment_tags, options)
    try:
        documents = list(yaml.compose_all(source, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(filename, line, f"not valid YAML: {exc.problem or exc}") from exc
    for document in documents:
        if document is not None:
            yield from walker.walk(document)
