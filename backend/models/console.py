"""Tables of the console feature (see backend/models/__init__.py)."""
