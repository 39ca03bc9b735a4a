"""Which shipped locale a customer gets, from the language tag their platform reports.

The fallback order, written down so product teams can predict it:

1. The tag is parsed by Babel (``zh-TW``, ``zh_TW`` and ``ZH-tw`` are the same
   tag). Babel fills in the script a territory implies: ``zh-TW``, ``zh-HK`` and
   ``zh-MO`` are Traditional (``Hant``), ``zh-CN`` and ``zh-SG`` Simplified
   (``Hans``).
2. A tag with neither script nor territory gets its likely script from CLDR
   (``zh`` → ``zh_Hans``).
3. ``language_Script`` is tried first, then ``language`` alone, against the
   shipped locales with Babel's ``negotiate_locale`` (the function behind
   ``Locale.negotiate``, which returns the shipped id as spelt) (``ru-RU`` → ``ru``, ``lv-LV`` → ``lv``).
4. Anything else (``pt-BR``, an unknown or malformed tag, no tag) → ``en``.

Negotiation is total: it never raises, whatever the platform sends. CLDR's likely
subtags name locales Babel ships no data for (``no`` → ``no_Latn_NO``), so a
likely tag is only split into its parts, never loaded as a locale.
"""

from __future__ import annotations

from babel import Locale, UnknownLocaleError
from babel.core import get_global, negotiate_locale, parse_locale

from common.vocabulary.locales import DEFAULT_LOCALE, SHIPPED_LOCALES

# Telegram sends IETF tags of a few characters; anything longer is not a tag.
_MAX_TAG_LENGTH = 35


def _parse(language_code: str) -> Locale | None:
    """Parse an IETF or POSIX tag with Babel; None when it names no known locale."""
    tag = language_code.strip().replace("-", "_")
    if not tag or len(tag) > _MAX_TAG_LENGTH:
        return None
    try:
        return Locale.parse(tag)
    except (UnknownLocaleError, ValueError, TypeError):
        pass
    # "pt_XX" is no known locale but its language may still be; keep the language.
    language = tag.split("_", 1)[0]
    try:
        return Locale.parse(language)
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def _script(locale: Locale) -> str | None:
    """The locale's script, or the likely one CLDR gives for its bare language."""
    if locale.script:
        return str(locale.script)
    expanded = get_global("likely_subtags").get(str(locale.language))
    if not isinstance(expanded, str):
        return None
    try:
        return parse_locale(expanded)[2]
    except ValueError:
        return None


def negotiate(language_code: str | None, available: tuple[str, ...] = SHIPPED_LOCALES) -> str:
    """Return the shipped locale id for a platform language tag; ``en`` when none fits."""
    if not language_code or not isinstance(language_code, str):
        return DEFAULT_LOCALE
    parsed = _parse(language_code)
    if parsed is None:
        return DEFAULT_LOCALE
    candidates = [str(parsed.language)]
    script = _script(parsed)
    if script:
        candidates.insert(0, f"{parsed.language}_{script}")
    # No aliases: Babel's default ones would turn "zh" into "zh_CN", which we do not ship.
    return negotiate_locale(candidates, available, aliases={}) or DEFAULT_LOCALE
