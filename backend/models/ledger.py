"""Tables of the ledger feature (see backend/models/__init__.py)."""
