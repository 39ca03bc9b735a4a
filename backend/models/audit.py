"""Tables of the audit feature (see backend/models/__init__.py)."""
