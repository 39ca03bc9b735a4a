"""Tables of the crm feature (see backend/models/__init__.py)."""
