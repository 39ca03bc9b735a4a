"""Request references: what a customer quotes, ``DD-`` and six Crockford base32 characters.

Drawn from ``secrets`` so that one customer's reference says nothing about
another's. 32**6 (about a billion) values make a collision rare; the ledger
still retries on one, since the column is unique.
"""

from __future__ import annotations

import re
import secrets

# Crockford's base32: digits and capitals without I, L, O and U.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 6
PATTERN = re.compile(rf"DD-[{ALPHABET}]{{{LENGTH}}}")


def new_reference() -> str:
    """A fresh random reference, e.g. ``DD-7K2Q9M``."""
    return "DD-" + "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def is_reference(text: str) -> bool:
    """Whether ``text`` has the exact shape of a reference."""
    return PATTERN.fullmatch(text) is not None
