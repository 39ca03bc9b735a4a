"""The audit log: who did what to which request or customer, sealed into a keyed chain.

One module per part (docs/audit.md draws the whole):

- ``append``: ``record`` adds an entry, unsealed, inside the caller's
  transaction; no lock shared with other writers.
- ``sealer``: one sealer at a time gives committed entries their place in the
  chain (``seq``) and an HMAC linking each to the one before.
- ``keys``: the HMAC key and the checkpoint signing key, kept out of the database.
- ``key_check``: at start, refuses keys the chain or the latest checkpoint was not made with.
- ``chain``: the MAC of one entry.
- ``checkpoints``: Ed25519-signed (seq, head hash, time) lines appended to files
  outside the database.
- ``verifier``: ``datadesk audit verify``, naming what it finds.

Entries carry internal ids and codes only, never personal data: ``subject``
is a request reference or a customer ref, ``data`` small scalar facts.
"""

from __future__ import annotations

from backend.audit.append import Entry, Scalar, canonical_data, record, record_all
from backend.audit.sealer import Sealer, seal_pending
from backend.audit.verifier import Verdict, verify

__all__ = [
    "Entry",
    "Scalar",
    "Sealer",
    "Verdict",
    "canonical_data",
    "record",
    "record_all",
    "seal_pending",
    "verify",
]
