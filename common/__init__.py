"""What the bot and the backend both use: the shared kernel.

Clock, masking, logging set-up and redaction, the base errors, database
helpers (engines, sessions, ``UTCDateTime``, migrations), settings parsing
helpers, and the contract vocabulary (``common.vocabulary``). It imports
neither ``bot`` nor ``backend``, and neither of them imports the other
(``tests/test_boundaries.py``); only ``datadesk`` assembles both.
"""
