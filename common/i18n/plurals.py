"""Plural forms: the catalog's own ``Plural-Forms`` header picks the form; CLDR judges the header.

At run time a number's form index comes from the formula in the catalog's
header, exactly as GNU gettext and Python's :mod:`gettext` do. A catalog is
therefore correct by itself: which order a Babel release lists CLDR's
categories in (Latvian is ``zero, one, other`` in Babel 2.19, ``one, other,
zero`` in gettext's tradition) cannot change what a customer reads.

``datadesk locales check`` then compares the header with CLDR's plural
categories for the locale, by category name rather than by index, so the
comparison too is independent of Babel's order: every form index must collect
the numbers of exactly one CLDR category, and every category must have a form.
"""

from __future__ import annotations

import decimal
import gettext
from collections.abc import Callable
from dataclasses import dataclass

from babel import Locale

# What gettext.GNUTranslations.plural takes: any real number, counted as an integer.
PluralRule = Callable[[float | decimal.Decimal], int]

# Numbers that tell every CLDR integer rule apart: 0–219 covers the tens and teens
# (11–19, 111–119), and the larger ones catch rules on n % 1000 and millions.
SAMPLES: tuple[int, ...] = (
    *range(220),
    *range(1000, 1025),
    *range(1100, 1125),
    *range(100_000, 100_012),
    *range(1_000_000, 1_000_012),
)


class PluralFormsError(ValueError):
    """A ``Plural-Forms`` formula that gettext cannot evaluate."""


def compile_rule(expression: str, num_plurals: int) -> PluralRule:
    """gettext's evaluation of a ``plural=`` C expression; PluralFormsError when it is not one.

    An index outside ``0 .. num_plurals - 1`` falls back to the last form, as
    GNU gettext does, so a bad header costs grammar, never the conversation.
    """
    try:
        rule = gettext.c2py(expression)
    except (ValueError, SyntaxError, RecursionError) as exc:
        raise PluralFormsError(f"plural={expression!r} is not a gettext formula") from exc
    last = max(num_plurals - 1, 0)

    def pick(n: float | decimal.Decimal) -> int:
        index = int(rule(int(n)))
        return index if 0 <= index <= last else last

    return pick


def cldr_category(locale: str, n: int) -> str:
    """CLDR's plural category of the integer ``n`` in ``locale`` (``one``, ``few``, ``zero``…)."""
    return str(Locale.parse(locale).plural_form(n))


def cldr_categories(locale: str) -> dict[str, list[int]]:
    """CLDR's integer plural categories for ``locale``, each with the sample numbers in it."""
    found: dict[str, list[int]] = {}
    for n in SAMPLES:
        found.setdefault(cldr_category(locale, n), []).append(n)
    return found


def _examples(numbers: list[int], limit: int = 3) -> str:
    return ", ".join(str(n) for n in numbers[:limit]) + "…"


def describe_categories(locale: str) -> str:
    """``zero (0, 10, 11…), one (1, 21, 31…), other (2, 3, 4…)`` for a report."""
    return ", ".join(
        f"{category} ({_examples(numbers)})"
        for category, numbers in cldr_categories(locale).items()
    )


def describe_forms(rule: PluralRule, num_plurals: int) -> str:
    """Which numbers a formula sends to which form: ``[0] 1, 21, 31…; [1] 2, 3, 4…``."""
    examples: dict[int, list[int]] = {index: [] for index in range(num_plurals)}
    for n in SAMPLES:
        examples.setdefault(rule(n), []).append(n)
    return "; ".join(f"[{index}] {_examples(numbers)}" for index, numbers in examples.items())


@dataclass(frozen=True)
class HeaderMismatch:
    """How a ``Plural-Forms`` header disagrees with CLDR, in words for a translator."""

    message: str


def header_mismatch(locale: str, num_plurals: int, expression: str) -> HeaderMismatch | None:
    """Compare a catalog's ``Plural-Forms`` with CLDR's categories for ``locale``; None when they agree."""
    name = Locale.parse(locale).english_name
    categories = cldr_categories(locale)
    wanted = f"{name} has {len(categories)}: {describe_categories(locale)}"
    if num_plurals != len(categories):
        return HeaderMismatch(f"Plural-Forms says nplurals={num_plurals}; {wanted}")
    try:
        raw = gettext.c2py(expression)
    except (ValueError, SyntaxError, RecursionError):
        return HeaderMismatch(f"Plural-Forms: plural={expression!r} is not a gettext formula")
    owner: dict[int, tuple[str, int]] = {}  # form index → (category, first number seen there)
    claimed: dict[str, int] = {}  # category → form index
    for n in SAMPLES:
        index = int(raw(n))
        if not 0 <= index < num_plurals:
            return HeaderMismatch(
                f"Plural-Forms gives {n} form [{index}], but there are only {num_plurals} forms"
            )
        category = cldr_category(locale, n)
        if index in owner and owner[index][0] != category:
            first_category, first = owner[index]
            return HeaderMismatch(
                f"Plural-Forms puts {n} in form [{index}] with {first}, but CLDR counts {n} as "
                f"'{category}' and {first} as '{first_category}'; {wanted}"
            )
        if category in claimed and claimed[category] != index:
            return HeaderMismatch(
                f"Plural-Forms splits CLDR's '{category}' numbers between forms "
                f"[{claimed[category]}] and [{index}] (at {n}); {wanted}"
            )
        owner.setdefault(index, (category, n))
        claimed.setdefault(category, index)
    return None
