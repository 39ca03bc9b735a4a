"""Validators named by ``ask`` steps: each turns typed text into a value or a reason id.

A reason id names a message in ``dialogs/messages.yaml`` (``invalid.phone``, …),
shown to the customer in their language before the question is asked again.

Region hints for numbers typed without a country code: the bank is Latvian, so
``en``, ``lv`` and ``ru`` customers are assumed to type Latvian numbers;
``zh_Hans`` → China (CN), ``zh_Hant`` → Taiwan (TW). A number with ``+`` or
``00`` in front is read as international whatever the locale. Postal addresses
default to the same country when none is written.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from common.vocabulary.locales import SHIPPED_LOCALES

REGION_HINTS: dict[str, str] = {
    "en": "LV",
    "lv": "LV",
    "ru": "LV",
    "zh_Hans": "CN",
    "zh_Hant": "TW",
}
DEFAULT_REGION = "LV"


@dataclass(frozen=True)
class Valid:
    """The cleaned value to save (JSON-serialisable)."""

    value: Any


@dataclass(frozen=True)
class Invalid:
    """Why the input was refused: a message id from ``dialogs/messages.yaml``."""

    reason: str


Result = Valid | Invalid
Validator = Callable[[str, str], Result]


def region_for(locale: str) -> str:
    """The country assumed for local phone numbers and addresses in ``locale``."""
    return REGION_HINTS.get(locale, DEFAULT_REGION)


def phone(text: str, locale: str) -> Result:
    """A phone number in E.164 (``+37120000001``); local numbers read with the locale's region."""
    raw = text.strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    try:
        parsed = phonenumbers.parse(raw, region_for(locale))
    except phonenumbers.NumberParseException:
        return Invalid("invalid.phone")
    if not phonenumbers.is_valid_number(parsed):
        return Invalid("invalid.phone")
    return Valid(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def email(text: str, locale: str) -> Result:
    """A normalised email address; the domain is not looked up (no DNS from the bot)."""
    try:
        checked = validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError:
        return Invalid("invalid.email")
    return Valid(checked.normalized)


def code(text: str, locale: str) -> Result:
    """A one-time code: 6 digits; spaces and dashes between them are forgiven (``123 456``)."""
    compact = re.sub(r"[\s\-.]", "", text)
    if re.fullmatch(r"[0-9]{6}", compact):
        return Valid(compact)
    return Invalid("invalid.code")


_YES = {
    "yes", "y", "yeah", "yep", "sure", "ok", "okay", "confirm",
    "jā", "ja", "jaa", "labi", "apstiprinu", "protams", "der",
    "да", "ага", "угу", "конечно", "подтверждаю", "хорошо", "давай", "давайте", "ок",
    "是", "是的", "是啊", "好", "好的", "好啊", "好吧", "行", "对", "對", "确认", "確認",
    "可以", "没问题", "沒問題", "嗯",
}  # fmt: skip
_NO = {
    "no", "n", "nope", "cancel",
    "nē", "ne", "nee", "atcelt", "nevajag",
    "нет", "не", "неа", "не надо", "не нужно", "отмена",
    "不", "不是", "否", "不要", "不要了", "取消", "不用", "不用了", "不了", "算了", "没有", "沒有",
}  # fmt: skip


_COURTESY = {
    "please", "pls", "thanks", "thank", "you",
    "lūdzu", "ludzu", "paldies",
    "пожалуйста", "спасибо",
    "请", "請", "谢谢", "謝謝",
}  # fmt: skip
# Chinese is written without spaces: "不用了谢谢", "好的，谢谢", "请确认".
_CJK_COURTESY = re.compile(r"^(?:请|請)|(?:谢谢|謝謝|谢了|謝了)(?:你|您)?$")


def yes_no(text: str, locale: str) -> Result:
    """``yes`` or ``no`` from a typed answer in any shipped language (jā, да, 是, …)."""
    word = re.sub(r"[\s!.。！?？,，]+", " ", text).strip().casefold()
    # "yes please", "jā, lūdzu", "нет, спасибо": the courtesy is not the answer.
    word = " ".join(w for w in word.split() if w not in _COURTESY) or word
    word = _CJK_COURTESY.sub("", word) or word
    if word in _YES:
        return Valid("yes")
    if word in _NO:
        return Valid("no")
    return Invalid("invalid.yes_no")


@functools.cache
def _country_names() -> dict[str, str]:
    """Country names in every shipped language (and codes) → ISO 3166 alpha-2 code."""
    from babel import Locale

    names: dict[str, str] = {}
    for locale in SHIPPED_LOCALES:
        for territory, name in Locale.parse(locale).territories.items():
            if len(territory) == 2 and territory.isalpha():
                names[name.casefold()] = territory
                names[territory.casefold()] = territory
    return names


_POSTCODES = {
    "LV": re.compile(r"(?:LV[- ]?)?(\d{4})", re.IGNORECASE),
}
_GENERIC_POSTCODE = re.compile(r"[A-Z0-9][A-Z0-9 \-]{1,9}", re.IGNORECASE)


def _postcode(raw: str, country: str) -> str | None:
    pattern = _POSTCODES.get(country)
    if pattern is not None:
        match = pattern.fullmatch(raw.strip())
        return f"{country}-{match.group(1)}" if match else None
    cleaned = raw.strip().upper()
    if _GENERIC_POSTCODE.fullmatch(cleaned) and any(c.isdigit() for c in cleaned):
        return cleaned
    return None


def postal_address(text: str, locale: str) -> Result:
    """``street and number, [more,] city, postcode[, country]`` → an address mapping.

    Parts are separated by commas or new lines. The country is a name in any
    shipped language or a two-letter code; without one, the locale's region.
    """
    parts = [p.strip() for p in re.split(r"[,，、\n]", text) if p.strip()]
    if len(parts) < 3:
        return Invalid("invalid.address_format")
    country = region_for(locale)
    named = _country_names().get(parts[-1].casefold())
    if named is not None:
        country = named
        parts = parts[:-1]
    elif len(parts) >= 4 or not any(c.isdigit() for c in parts[-1]):
        return Invalid("invalid.address_country")
    if len(parts) < 3:
        return Invalid("invalid.address_format")
    postcode = _postcode(parts[-1], country)
    if postcode is None:
        return Invalid("invalid.address_postcode")
    address: dict[str, str] = {
        "line1": parts[0],
        "city": parts[-2],
        "postcode": postcode,
        "country": country,
    }
    if len(parts) > 3:
        address["line2"] = ", ".join(parts[1:-2])
    if any(len(value) > 120 for value in address.values()):
        return Invalid("invalid.address_format")
    return Valid(address)


VALIDATORS: dict[str, Validator] = {
    "phone": phone,
    "email": email,
    "postal_address": postal_address,
    "code": code,
    "yes_no": yes_no,
}
