"""Internationalisation: locale negotiation, catalogs read from ``.po`` files, and translators.

The seam other bot modules use (names agreed between engineers; extend, never rename)::

    SHIPPED_LOCALES, DEFAULT_LOCALE        (owned by common.vocabulary.locales)
    negotiate(language_code) -> locale id
    Catalogs.load(locales_dir, domain="messages") -> Catalogs
        .locales, .translator(locale) -> Translator, .has(locale, message, context=None)
    Translator: .locale, .gettext, .ngettext, .format_date, .format_number, .format

Message ids are the English source texts, extracted from ``dialogs/*.yaml`` by
``bot.i18n.extract`` and from Python by Babel (see ``locales/README.md``).
"""

from __future__ import annotations

from common.i18n.catalogs import Catalogs, Translator
from common.i18n.negotiation import negotiate
from common.vocabulary.locales import DEFAULT_LOCALE, SHIPPED_LOCALES

__all__ = ["DEFAULT_LOCALE", "SHIPPED_LOCALES", "Catalogs", "Translator", "negotiate"]
