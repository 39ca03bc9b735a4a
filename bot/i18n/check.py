"""``datadesk locales check``: every catalog complete, reviewed and consistent with the sources.

One ``file:line: message`` per problem, exit 1; a one-line summary and exit 0
when clean. A problem is any of:

- a shipped locale without a catalog, a catalog that cannot be parsed, or one
  that translates the same message twice;
- a missing translation (an empty ``msgstr`` or plural form) or a fuzzy one;
- placeholders that differ from the source (``{reference}`` vs ``{referense}``),
  or unbalanced braces;
- a plural with a number of forms other than the ``Plural-Forms`` header's, or
  a header that disagrees with CLDR's plural categories for the locale (a
  different number of forms, or a formula that puts a number in the wrong
  category; see ``common.i18n.plurals``);
- a catalog out of date with the sources: a message the sources have that the
  catalog lacks, or an entry the sources no longer have (``make locales`` fixes both);
- ``locales/messages.pot`` out of date with the sources.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import string
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import PoFileError, read_po, unescape

from bot.i18n.sources import extract_template
from bot.settings import BotSettings
from common.errors import ConfigError
from common.i18n.catalogs import display_path, is_translated, message_key, read_catalog
from common.i18n.plurals import PluralFormsError, compile_rule, describe_forms, header_mismatch
from common.vocabulary.locales import SHIPPED_LOCALES

DOMAIN = "messages"
_TOO_MANY_FORMS = "msg has more translations than num_plurals of catalog"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing a translator or product team has to fix, and where."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.message}"
            if self.line
            else f"{self.path}: {self.message}"
        )


def _quote(text: str, limit: int = 60) -> str:
    """A message id shortened for a one-line report."""
    flat = " ".join(text.split())
    return '"' + (flat if len(flat) <= limit else flat[: limit - 1] + "…") + '"'


def _label(message: Message) -> str:
    """How a report names an entry: its (first) id, and its context if any."""
    msgid = message.id if isinstance(message.id, str) else message.id[0]
    return _quote(msgid) + (f" (context {message.context!r})" if message.context else "")


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a ``str.format`` template; ValueError on unbalanced braces."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def plural_help(catalog: Catalog) -> str:
    """Which numbers pick which form under the catalog's header: ``[0] 1, 21, 31…; [1] 2, 3, 4…``."""
    try:
        rule = compile_rule(catalog.plural_expr, catalog.num_plurals)
    except PluralFormsError:
        return "see the Plural-Forms header"
    return describe_forms(rule, catalog.num_plurals)


@dataclass
class _Layout:
    """What Babel's parser does not keep: plural forms per entry, and repeated entries."""

    forms: dict[int, int]  # msgid line → how many msgstr[i] lines the entry has
    repeats: list[tuple[int, int, str]]  # (line, first line, msgid) of a repeated entry


def _layout(path: Path) -> _Layout:
    """Scan a ``.po`` file's live entries (obsolete ``#~`` ones are skipped)."""
    forms: dict[int, int] = {}
    first: dict[tuple[str, str], int] = {}
    repeats: list[tuple[int, int, str]] = []
    context: list[str] = []
    msgid: list[str] = []
    current = 0
    target: list[str] | None = None

    def close() -> None:
        if current and "".join(msgid):
            key = ("".join(context), "".join(msgid))
            if key in first:
                repeats.append((current, first[key], key[1]))
            else:
                first[key] = current

    for lineno, line in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1
    ):
        if line.startswith("msgctxt "):
            close()
            current, context, msgid = 0, [unescape(line[8:].strip())], []
            target = context
        elif line.startswith("msgid "):
            if current:
                close()
                context = []
            current, msgid = lineno, [unescape(line[6:].strip())]
            target = msgid
        elif line.startswith("msgstr[") and current:
            forms[current] = forms.get(current, 0) + 1
            target = None
        elif line.startswith(("msgstr", "msgid_plural")):
            target = None
        elif line.startswith('"') and target is not None:
            target.append(unescape(line.strip()))
        elif not line.strip():
            close()
            current, context, msgid, target = 0, [], [], None
    close()
    return _Layout(forms, repeats)


def _header_line(path: Path, name: str) -> int:
    """The line of a header field such as ``Plural-Forms`` (1 when it is absent)."""
    for lineno, line in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1
    ):
        if line.startswith(f'"{name}:'):
            return lineno
    return 1


def _parse(path: Path, locale: str, where: str) -> tuple[Catalog | None, list[Problem]]:
    """Read a catalog; a wrong plural count is reported by the form check, not as a parse error."""
    try:
        return read_catalog(path, locale, DOMAIN), []
    except ConfigError as exc:
        if exc.message != _TOO_MANY_FORMS:
            return None, [Problem(where, exc.line or 0, exc.message)]
    # Babel drops the extra forms when told not to abort; its warnings go to stdout, so hush them.
    with contextlib.redirect_stdout(io.StringIO()), path.open("rb") as fileobj:
        try:
            return read_po(fileobj, locale=locale, domain=DOMAIN), []
        except (PoFileError, ValueError) as exc:
            return None, [Problem(where, 0, f"cannot be read: {exc}")]


def _entry_problems(
    message: Message, catalog: Catalog, locale: str, where: str, forms: dict[int, int]
) -> Iterable[Problem]:
    """Problems of one catalog entry, apart from whether the sources still have it."""
    line = message.lineno or 0
    if message.pluralizable:
        expected = catalog.num_plurals
        found = forms.get(line, 0)
        if found != expected:
            yield Problem(
                where,
                line,
                f"{_label(message)} has {found} plural forms; the Plural-Forms header of this "
                f"{Locale.parse(locale).english_name} catalog needs "
                f"{expected}: {plural_help(catalog)}",
            )
            return
    if message.fuzzy:
        yield Problem(
            where,
            line,
            f"fuzzy translation of {_label(message)}: review it, then remove the fuzzy flag",
        )
        return
    if not is_translated(message):
        yield Problem(where, line, f"missing translation of {_label(message)}")
        return
    sources = [message.id] if isinstance(message.id, str) else list(message.id)
    targets = [message.string] if isinstance(message.string, str) else list(message.string or ())
    try:
        source_sets = [placeholders(text) for text in sources]
    except ValueError:
        yield Problem(where, line, f"the source {_label(message)} has unbalanced braces")
        return
    allowed = set().union(*source_sets)
    # A plural's singular may say "one" where other forms say {count}; a form may drop what
    # only one source has, never what both have, and never add a name the source lacks.
    required = set.intersection(*source_sets)
    for index, target in enumerate(targets):
        name = f"translation of {_label(message)}" + (
            f" form [{index}]" if len(targets) > 1 else ""
        )
        try:
            found_set = placeholders(target)
        except ValueError:
            yield Problem(
                where, line, f"{name} has unbalanced braces; write a literal brace as {{{{ or }}}}"
            )
            continue
        if not required <= found_set <= allowed:
            have = ", ".join(f"{{{p}}}" for p in sorted(found_set)) or "none"
            want = ", ".join(f"{{{p}}}" for p in sorted(allowed)) or "none"
            yield Problem(where, line, f"{name} has placeholders {have}; the source has {want}")


def _keys(catalog: Catalog) -> dict[str, Message]:
    """Entries by lookup key (context + first id), header and obsolete entries left out."""
    return {
        message_key(m.id if isinstance(m.id, str) else m.id[0], m.context): m
        for m in catalog
        if m.id
    }


def check_catalog(path: Path, locale: str, template: Catalog | None) -> tuple[list[Problem], int]:
    """Check one ``.po`` file; return its problems and how many entries it has."""
    where = display_path(path)
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError):
        return [
            Problem(where, 0, f"folder {locale!r} is not a known locale id (e.g. lv, zh_Hant)")
        ], 0
    catalog, problems = _parse(path, locale, where)
    if catalog is None:
        return problems, 0
    mismatch = header_mismatch(locale, catalog.num_plurals, catalog.plural_expr)
    if mismatch is not None:
        problems.append(Problem(where, _header_line(path, "Plural-Forms"), mismatch.message))
    layout = _layout(path)
    for line, first, msgid in layout.repeats:
        problems.append(
            Problem(where, line, f"{_quote(msgid)} is already translated at line {first}; keep one")
        )
    entries = _keys(catalog)
    for message in entries.values():
        problems.extend(_entry_problems(message, catalog, locale, where, layout.forms))
    if template is not None:
        wanted = _keys(template)
        for key, message in entries.items():
            if key not in wanted:
                problems.append(
                    Problem(
                        where,
                        message.lineno or 0,
                        f"{_label(message)} is no longer in the sources; run `make locales`",
                    )
                )
            elif wanted[key].pluralizable != message.pluralizable:
                problems.append(
                    Problem(
                        where,
                        message.lineno or 0,
                        f"{_label(message)} changed between plural and singular in the sources; run `make locales`",
                    )
                )
        for key, message in wanted.items():
            if key not in entries:
                source, lineno = message.locations[0] if message.locations else (where, 0)
                problems.append(
                    Problem(
                        source, lineno, f"{_label(message)} is not in {where}; run `make locales`"
                    )
                )
    return problems, len(entries)


def _template_problems(locales_dir: Path, template: Catalog) -> list[Problem]:
    """A stale ``messages.pot`` next to the catalogs, if there is one."""
    pot = locales_dir / f"{DOMAIN}.pot"
    if not pot.is_file():
        return []
    where = display_path(pot)
    try:
        with pot.open("rb") as fileobj:
            written = _keys(read_po(fileobj, domain=DOMAIN, abort_invalid=True))
    except (PoFileError, ValueError) as exc:
        return [Problem(where, 0, f"cannot be read: {exc}")]
    wanted = _keys(template)
    new, gone = len(wanted.keys() - written.keys()), len(written.keys() - wanted.keys())
    if new or gone:
        return [
            Problem(
                where,
                0,
                f"out of date with the sources ({new} new, {gone} gone); run `make locales`",
            )
        ]
    return []


def check_locales(
    locales_dir: Path,
    template: Catalog | None,
    required: Sequence[str] = SHIPPED_LOCALES,
) -> tuple[list[Problem], str]:
    """Check every catalog under ``locales_dir``; return the problems and a summary line."""
    problems: list[Problem] = []
    found = (
        sorted(p.name for p in locales_dir.iterdir() if (p / "LC_MESSAGES").is_dir())
        if locales_dir.is_dir()
        else []
    )
    locales = [*required, *(loc for loc in found if loc not in required)]
    sizes: list[int] = []
    for locale in locales:
        path = locales_dir / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        if not path.is_file():
            problems.append(
                Problem(
                    display_path(path),
                    0,
                    f"no catalog for {'shipped ' if locale in required else ''}locale {locale}; "
                    "create it with "
                    f"`pybabel init -i {display_path(locales_dir)}/{DOMAIN}.pot -d {display_path(locales_dir)} -l {locale}`",
                )
            )
            continue
        locale_problems, size = check_catalog(path, locale, template)
        problems.extend(locale_problems)
        sizes.append(size)
    if template is not None:
        problems.extend(_template_problems(locales_dir, template))
    count = len(template) if template is not None else max(sizes, default=0)
    summary = f"locales check: {len(locales)} locales ({', '.join(locales)}), {count} messages each, all translated"
    return problems, summary


def check_command(args: argparse.Namespace, settings: BotSettings) -> int:
    """``datadesk locales check``: print problems as ``file:line: message``; exit 1 on any."""
    problems: list[Problem] = []
    template: Catalog | None = None
    try:
        template = extract_template(settings.locales_dir.parent, settings.dialogs_dir)
    except ConfigError as exc:
        problems.append(Problem(display_path(Path(exc.path)), exc.line or 0, exc.message))
    found, summary = check_locales(settings.locales_dir, template)
    problems.extend(found)
    for problem in problems:
        print(problem)
    if problems:
        print(f"locales check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(summary)
    return 0
