"""Free text: which menu journey a customer's typed message names, in any shipped language.

    Matcher(phrasings)            phrasings: journey → locale → example texts
        .guess(text) -> Guess     .journey (None: not understood), .alternatives, .offers
        .rank(text)  -> [(journey, score)], best first

Offline and in memory; see ``bot.understanding.matcher`` for how it scores and
``bot.understanding.features`` for what it forgives (inflection, typos,
missing diacritics, Chinese without spaces). The phrasings live in the dialog
files (``dialogs/README.md``, "Free text").
"""

from __future__ import annotations

from bot.understanding.matcher import Guess, Matcher

__all__ = ["Guess", "Matcher"]
