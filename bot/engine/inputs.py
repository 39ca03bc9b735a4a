"""Typed input the dialogs cannot use at all, whatever the question: a reason id or None."""

from __future__ import annotations

import unicodedata

MAX_TEXT = 4096

# Emoji and what holds them together (variation selectors, joiners, skin tones, keycaps).
_EMOJI_CATEGORIES = {"So", "Sk", "Mn", "Me", "Cf", "Zs"}


def unusable(text: str) -> str | None:
    """``input.empty`` / ``input.too_long`` / ``input.binary`` / ``input.emoji_only``, or None."""
    if len(text) > MAX_TEXT:
        return "input.too_long"
    if not text.strip():
        return "input.empty"
    for char in text:
        category = unicodedata.category(char)
        if (
            (category == "Cc" and char not in "\n\r\t")
            or category in {"Cs", "Co", "Cn"}
            or char == "\ufffd"
        ):
            return "input.binary"
    stripped = [c for c in text if not c.isspace()]
    if all(unicodedata.category(c) in _EMOJI_CATEGORIES for c in stripped) and any(
        unicodedata.category(c) == "So" for c in stripped
    ):
        return "input.emoji_only"
    return None
