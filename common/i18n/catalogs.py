"""Translation catalogs read straight from the ``.po`` files, and a translator per locale.

``Catalogs.load`` parses ``locales/<locale>/LC_MESSAGES/<domain>.po`` with
Babel's ``read_po`` and builds gettext ``Translations`` in memory: there is no
compile step, so a stale ``.mo`` can never be served. Fuzzy and empty entries
are left out, so the customer sees the English source rather than a guess
(``datadesk locales check`` fails on both). A number picks its plural form by
the catalog's own ``Plural-Forms`` header, as GNU gettext does, so a catalog
means the same whatever Babel release is installed; ``datadesk locales check``
holds that header to CLDR's rules (``common.i18n.plurals``).
"""

from __future__ import annotations

import datetime
import decimal
import gettext
import io
import logging
import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.lists import format_list
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.numbers import format_decimal
from babel.support import Translations

from common.errors import ConfigError
from common.i18n.negotiation import negotiate
from common.i18n.plurals import PluralFormsError, compile_rule
from common.i18n.posyntax import first_problem
from common.vocabulary.locales import DEFAULT_LOCALE, SHIPPED_LOCALES

log = logging.getLogger(__name__)

ListStyle = Literal[
    "standard", "standard-short", "or", "or-short", "unit", "unit-short", "unit-narrow"
]
LIST_STYLES: tuple[ListStyle, ...] = (
    "standard",
    "standard-short",
    "or",
    "or-short",
    "unit",
    "unit-short",
    "unit-narrow",
)

Number = int | float | decimal.Decimal

# gettext keys a message with a context as "context\x04message".
_CONTEXT_GLUE = "\x04"


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies inside it, as people type it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_catalog(path: Path, locale: str, domain: str = "messages") -> Catalog:
    """Parse one ``.po`` file strictly; raise ConfigError ``file:line: …`` when it is broken."""
    where = display_path(path)
    try:
        raw = path.read_bytes()
        problem = first_problem(raw.decode("utf-8"))
        if problem is not None:
            raise ConfigError(where, problem.line, problem.message)
        return read_po(io.BytesIO(raw), locale=locale, domain=domain, abort_invalid=True)
    except PoFileError as exc:
        # Babel appends " on <0-based line>" to its message; the line is reported separately.
        message = str(exc).rsplit(" on ", 1)[0]
        raise ConfigError(where, exc.lineno + 1, message) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(where, None, f"not valid UTF-8 ({exc.reason})") from exc
    except (UnknownLocaleError, ValueError) as exc:
        raise ConfigError(where, None, f"cannot be read: {exc}") from exc


def is_translated(message: Message) -> bool:
    """Whether an entry has a usable translation: not fuzzy, and every form filled in."""
    if message.fuzzy:
        return False
    if isinstance(message.string, tuple | list):
        return bool(message.string) and all(message.string)
    return bool(message.string)


def message_key(message_id: str, context: str | None) -> str:
    """The gettext lookup key of a message id in a context."""
    return f"{context}{_CONTEXT_GLUE}{message_id}" if context else message_id


def lower_initial(text: str) -> str:
    """``text`` with its first letter in lower case, unless its first word is an acronym.

    For list items inside a sentence (``Kontaktinformācija`` → ``kontaktinformācija``);
    an acronym such as ``SMS`` or ``PDF`` stays as written.
    """
    first = text.split(maxsplit=1)[0] if text.strip() else ""
    letters = [c for c in first if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return text
    return text[:1].lower() + text[1:]


def _list_spec(spec: str) -> tuple[ListStyle, bool]:
    """A list placeholder's spec: a list style, ``lower``, or both (``or,lower``).

    ``lower`` writes each item with a lower-case initial, for lists inside a
    sentence in languages that do so (``Dzēstie dati: {categories:lower}.``).
    """
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    lower = "lower" in parts
    styles = [part for part in parts if part != "lower"]
    if len(styles) > 1 or (styles and styles[0] not in LIST_STYLES):
        raise ValueError(spec)
    style: ListStyle = "standard"
    for known in LIST_STYLES:
        if styles and styles[0] == known:
            style = known
    return style, lower


class _LocaleFormatter(string.Formatter):
    """``str.format`` for catalog templates: locale-aware values, plain ``{name}`` fields only."""

    def __init__(self, locale: Locale) -> None:
        self.locale = locale

    def format_field(self, value: object, format_spec: str) -> str:
        """Format dates and numbers the way the locale writes them."""
        try:
            if isinstance(value, datetime.datetime):
                return str(format_datetime(value, format_spec or "medium", locale=self.locale))
            if isinstance(value, datetime.date):
                return str(format_date(value, format_spec or "long", locale=self.locale))
            if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
                return str(format_decimal(value, format_spec or None, locale=self.locale))
            if isinstance(value, list | tuple):
                items = [self.format_field(item, "") for item in value]
                style, lower = _list_spec(format_spec)
                if lower:
                    items = [lower_initial(item) for item in items]
                return str(format_list(items, style, locale=self.locale))
            return str(super().format_field(value, format_spec))
        except Exception:
            # The spec comes from a catalog a person edits: a bad one must cost the
            # formatting, never the conversation.
            log.warning("format spec %r does not fit a %s value", format_spec, type(value).__name__)
            if isinstance(value, list | tuple):
                return ", ".join(str(item) for item in value)
            return str(value)

    def render(self, template: str, params: dict[str, object]) -> str:
        """Fill ``{name}`` fields; an unknown or unsafe field is left as written and logged."""
        try:
            parts = list(self.parse(template))
        except ValueError:
            # A stray brace: show the text as written rather than fail the conversation.
            log.warning("template has unbalanced braces; shown unformatted")
            return template
        out: list[str] = []
        for literal, field, spec, conversion in parts:
            out.append(literal)
            if field is None:
                continue
            # Only plain names: a translated template must never reach into attributes.
            if not field.isidentifier() or field not in params:
                log.warning("template placeholder %r has no value; left as written", field)
                out.append(
                    "{"
                    + field
                    + (f"!{conversion}" if conversion else "")
                    + (f":{spec}" if spec else "")
                    + "}"
                )
                continue
            value = params[field]
            if conversion:
                value = self.convert_field(value, conversion)
            out.append(self.format_field(value, spec or ""))
        return "".join(out)


class Translator:
    """Translations and formats for one locale; a missing translation shows the English source."""

    def __init__(
        self, locale: str, translations: gettext.NullTranslations, known: frozenset[str]
    ) -> None:
        self.locale = locale
        self.babel_locale = Locale.parse(locale)
        self._translations = translations
        self._known = known
        self._formatter = _LocaleFormatter(self.babel_locale)

    def gettext(self, message: str, context: str | None = None) -> str:
        """The translation of ``message`` (in ``context``), or ``message`` itself."""
        if not message:
            # gettext("") is the catalog header, never what a caller wants.
            return message
        if context:
            return self._translations.pgettext(context, message)
        return self._translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int, context: str | None = None) -> str:
        """The form of a plural message that fits ``n`` under the locale's plural rules."""
        count = int(n)
        if context:
            return self._translations.npgettext(context, singular, plural, count)
        return self._translations.ngettext(singular, plural, count)

    def has(self, message: str, context: str | None = None) -> bool:
        """Whether ``message`` has a reviewed translation (not missing, not fuzzy)."""
        return message_key(message, context) in self._known

    def format_date(self, value: datetime.date, format: str = "long") -> str:
        """A date as the locale writes it (``long``: 1 March 2026, 2026. gada 1. marts, 2026年3月1日)."""
        if isinstance(value, datetime.datetime):
            return str(format_datetime(value, format, locale=self.babel_locale))
        return str(format_date(value, format, locale=self.babel_locale))

    def format_number(self, value: Number) -> str:
        """A number with the locale's decimal and grouping signs."""
        return str(format_decimal(value, locale=self.babel_locale))

    def format_list(self, items: Sequence[str], style: ListStyle = "standard") -> str:
        """Items joined as the locale joins them (A, B and C; A, B un C; A、B和C)."""
        return str(format_list(list(items), style, locale=self.babel_locale))

    def format(self, template: str, /, **params: object) -> str:
        """Fill ``{name}`` placeholders; dates, numbers and lists are formatted for the locale."""
        return self._formatter.render(template, params)


def _translator(locale: str, catalog: Catalog, where: str) -> Translator:
    """Build the in-memory gettext translations for one parsed catalog."""
    # The file's own header picks the form, as in GNU gettext: the msgstr[i] order was
    # written for that formula, whatever order the installed Babel lists CLDR's in.
    try:
        plural = compile_rule(catalog.plural_expr, catalog.num_plurals)
    except PluralFormsError as exc:
        raise ConfigError(where, None, f"Plural-Forms: {exc}") from exc
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    translations = Translations(fp=buffer, domain=catalog.domain)
    translations.plural = plural
    known = frozenset(
        message_key(m.id if isinstance(m.id, str) else m.id[0], m.context)
        for m in catalog
        if m.id and is_translated(m)
    )
    return Translator(locale, translations, known)


def _locale_dirs(locales_dir: Path, domain: str) -> Iterable[tuple[str, Path]]:
    """(locale id, .po path) for every locale folder holding the domain's catalog."""
    for entry in sorted(locales_dir.iterdir()):
        po = entry / "LC_MESSAGES" / f"{domain}.po"
        if entry.is_dir() and po.is_file():
            yield entry.name, po


class Catalogs:
    """Every locale's catalog under one ``locales/`` folder."""

    def __init__(self, translators: dict[str, Translator]) -> None:
        self._translators = translators
        shipped = [loc for loc in SHIPPED_LOCALES if loc in translators]
        self.locales: tuple[str, ...] = (*shipped, *sorted(set(translators) - set(shipped)))
        self._fallback = translators.get(DEFAULT_LOCALE) or Translator(
            DEFAULT_LOCALE, gettext.NullTranslations(), frozenset()
        )

    @classmethod
    def load(cls, locales_dir: Path, domain: str = "messages") -> Catalogs:
        """Read every ``<locale>/LC_MESSAGES/<domain>.po``; a broken file raises ConfigError."""
        if not locales_dir.is_dir():
            raise ConfigError(display_path(locales_dir), None, "no such locales folder")
        translators: dict[str, Translator] = {}
        for locale, path in _locale_dirs(locales_dir, domain):
            try:
                Locale.parse(locale)
            except (UnknownLocaleError, ValueError) as exc:
                raise ConfigError(display_path(path), None, f"unknown locale {locale!r}") from exc
            catalog = read_catalog(path, locale, domain)
            translators[locale] = _translator(locale, catalog, display_path(path))
        return cls(translators)

    def translator(self, locale: str) -> Translator:
        """The translator for ``locale``; an unknown one gets its negotiated or the default locale."""
        found = self._translators.get(locale)
        if found is not None:
            return found
        return self._translators.get(negotiate(locale, self.locales), self._fallback)

    def has(self, locale: str, message: str, context: str | None = None) -> bool:
        """Whether ``locale`` has a reviewed translation of ``message`` (not missing, not fuzzy)."""
        found = self._translators.get(locale)
        return found is not None and found.has(message, context)
