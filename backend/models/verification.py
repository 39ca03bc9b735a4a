"""Tables of the verification feature (see backend/models/__init__.py)."""
