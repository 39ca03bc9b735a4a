"""A strict line-by-line reading of ``.po`` syntax, before Babel parses the file.

Babel's parser is lenient where a translator's slip matters most: it reads
``msgstr Пожалуйста`` (no quotes) or ``msgstr "Пожалуйста`` (no closing quote)
by cutting the first and last characters, and the customer then reads
"ожалуйста". Every line of a catalog must be one of:

- blank, or a comment (``#``, ``#.``, ``#:``, ``#,``, ``#|``, ``#~``);
- a keyword and one quoted string: ``msgctxt``, ``msgid``, ``msgid_plural``,
  ``msgstr`` or ``msgstr[N]``, then ``"…"``;
- a quoted string alone, continuing the previous one.

A quoted string opens and closes with ``"``, holds no bare ``"``, and uses only
the escapes gettext knows. The first line that breaks these rules is reported
with its number and what is wrong, the same whichever Babel release is installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEYWORD = re.compile(r"(msgctxt|msgid_plural|msgid|msgstr\[\d+\]|msgstr)(?=\s|\")\s*(.*)\Z")
_ESCAPES = frozenset('\\"abfnrtv')


@dataclass(frozen=True)
class SyntaxProblem:
    """The first malformed line of a catalog: its 1-based number and what is wrong."""

    line: int
    message: str


def _string_problem(text: str) -> str | None:
    """What is wrong with one quoted PO string (``"…"``, nothing after it), or None."""
    if not text.startswith('"'):
        return "the text must be in double quotes"
    index = 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 >= len(text):
                break
            escaped = text[index + 1]
            if escaped not in _ESCAPES and not escaped.isdigit() and escaped != "x":
                return f"unknown escape \\{escaped}; write a backslash as \\\\"
            index += 2
            continue
        if char == '"':
            if text[index + 1 :].strip():
                return 'text after the closing quote; write a quote inside the text as \\"'
            return None
        index += 1
    return "the quoted text is not closed with a double quote"


def first_problem(source: str) -> SyntaxProblem | None:
    """The first line of ``source`` (a ``.po`` file's text) that is not PO syntax, or None."""
    for number, raw in enumerate(source.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _KEYWORD.match(line)
        if match is not None:
            keyword, rest = match.groups()
            problem = _string_problem(rest)
            if problem is not None:
                return SyntaxProblem(number, f"{keyword}: {problem}")
            continue
        if line.startswith('"'):
            problem = _string_problem(line)
            if problem is not None:
                return SyntaxProblem(number, problem)
            continue
        word = line.split(maxsplit=1)[0]
        return SyntaxProblem(
            number,
            f"{word[:30]!r} is not a PO keyword; a line starts with msgid, msgstr, msgctxt, "
            'a quoted continuation "…" or # for a comment',
        )
    return None
