"""Spotting personal data a customer should not have typed into a chat.

``scan(text, sensitive=…)`` finds, in one message, a Luhn-valid card number
(13–19 digits, spaces or dashes allowed), an IBAN, a national id (Latvian
personas kods, Chinese resident id) and, on a step that asks for a one-time
code, the code. It answers what was found (kinds only, never the values) and
the text with each finding masked: cards as BIN + last 4, IBANs as country +
last 4, national ids and codes as ``••••``. The conversation deletes such a
message from the chat, tells the customer why, and keeps only the masked text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.cn import ric as cn_ric
from stdnum.lv import pvn as lv_pvn

from common.masking import DOT, mask_iban, mask_pan

# Order matters: a span claimed by an earlier kind is not looked at again.
KINDS = ("card", "iban", "national_id", "code")

# Runs of digits with single spaces or dashes between them; a card hides in a window of one.
_DIGIT_RUN = re.compile(r"(?<![\w+-])\d+(?:[ -]\d+)*(?![\w-])")
# Runs of space-separated letter/digit tokens; an IBAN starts at a token like "LV80".
_TOKEN_RUN = re.compile(r"(?<!\w)[A-Za-z0-9]+(?: [A-Za-z0-9]+)*(?!\w)")
_IBAN_START = re.compile(r"[A-Za-z]{2}\d{2}")
# Written with its dash, as on the identity card: an 11-digit run without one is
# as likely a phone number (a Chinese mobile), and blocking that would strand the customer.
_LV_ID = re.compile(r"(?<![\w-])\d{6}-\d{5}(?![\w-])")
_CN_ID = re.compile(r"(?<![\w-])\d{17}[\dXx](?![\w-])")
_CODE = re.compile(r"(?<![\w-])\d(?:[ -]?\d){3,7}(?![\w-])")
# New-style Latvian codes (from 2017) start with 32 and carry no checksum.
_LV_NEW = re.compile(r"^32\d{4}-\d{5}$")

Span = tuple[int, int, str, str]  # start, end, kind, masked replacement


@dataclass(frozen=True)
class Scan:
    """What one message held: the kinds found (in ``KINDS`` order) and its masked text."""

    kinds: tuple[str, ...]
    masked: str

    @property
    def found(self) -> bool:
        """Whether anything needs deleting."""
        return bool(self.kinds)


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _windows(run: re.Match[str], token: str, shortest: int, longest: int) -> list[tuple[int, int]]:
    """Windows of a run's consecutive tokens holding ``shortest``–``longest`` characters, longest first.

    Bounding the window keeps the work linear in the message's length: a card
    has at most 19 digits, an IBAN at most 34 characters.
    """
    tokens = [
        (m.start() + run.start(), m.end() - m.start()) for m in re.finditer(token, run.group(0))
    ]
    spans: list[tuple[int, int, int]] = []
    for i, (start, _) in enumerate(tokens):
        size = 0
        for position, length in tokens[i:]:
            size += length
            if size > longest:
                break
            if size >= shortest:
                spans.append((size, start, position + length))
    return [(start, end) for _, start, end in sorted(spans, key=lambda s: -s[0])]


def _is_phone(digits: str) -> bool:
    """Whether a card-length number is a valid international phone number typed without its +."""
    if len(digits) > 15:
        return False
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse("+" + digits)))
    except phonenumbers.NumberParseException:
        return False


def _cards(text: str) -> list[Span]:
    found: list[Span] = []
    for run in _DIGIT_RUN.finditer(text):
        for start, end in _windows(run, r"\d+", 13, 19):
            digits = _digits(text[start:end])
            if len(digits) >= 13 and luhn.is_valid(digits) and not _is_phone(digits):
                found.append((start, end, "card", mask_pan(digits)))
    return found


def _ibans(text: str) -> list[Span]:
    found: list[Span] = []
    for run in _TOKEN_RUN.finditer(text):
        for start, end in _windows(run, r"[A-Za-z0-9]+", 15, 34):
            candidate = text[start:end]
            compact = candidate.replace(" ", "")
            if (
                15 <= len(compact) <= 34
                and _IBAN_START.match(compact)
                and stdnum_iban.is_valid(compact)
            ):
                found.append((start, end, "iban", mask_iban(compact)))
    return found


def _is_lv_personal_code(candidate: str) -> bool:
    digits = _digits(candidate)
    # lv.pvn also validates company VAT numbers (first digit above 3): not a person's id.
    if len(digits) != 11 or digits[0] not in "0123":
        return False
    return bool(_LV_NEW.match(candidate)) or bool(lv_pvn.is_valid(digits))


def _national_ids(text: str) -> list[Span]:
    found: list[Span] = [
        (m.start(), m.end(), "national_id", DOT * 4)
        for m in _LV_ID.finditer(text)
        if _is_lv_personal_code(m.group(0))
    ]
    found += [
        (m.start(), m.end(), "national_id", DOT * 4)
        for m in _CN_ID.finditer(text)
        if cn_ric.is_valid(m.group(0))
    ]
    return found


def _codes(text: str) -> list[Span]:
    return [(m.start(), m.end(), "code", DOT * 4) for m in _CODE.finditer(text)]


def scan(text: str, *, sensitive: bool = False) -> Scan:
    """Find cards, IBANs, national ids (and on ``sensitive`` steps codes) in ``text``."""
    detectors: list[Callable[[str], list[Span]]] = [_cards, _ibans, _national_ids]
    if sensitive:
        detectors.append(_codes)
    claimed: list[Span] = []
    for detect in detectors:
        for span in detect(text):
            if all(span[1] <= s[0] or span[0] >= s[1] for s in claimed):
                claimed.append(span)
    masked = text
    for start, end, _kind, replacement in sorted(claimed, reverse=True):
        masked = masked[:start] + replacement + masked[end:]
    kinds = {span[2] for span in claimed}
    return Scan(kinds=tuple(k for k in KINDS if k in kinds), masked=masked)


# The bank's one-time codes have six digits (backend/codes.py).
_SENT_CODE = re.compile(r"\d(?:[ -]?\d){5}")


def mask_for_transcript(text: str, *, sensitive: bool = False) -> str:
    """The form of a customer's message that may be stored and shown to agents.

    On a step that asks for a code, a bare code of any length is masked (``scan``).
    Elsewhere only a bare number shaped like the codes the bank sends (six
    digits) is, whatever the step: a customer's ``12345`` stays readable.
    """
    masked = scan(text, sensitive=sensitive).masked
    return DOT * 4 if _SENT_CODE.fullmatch(masked.strip()) else masked
