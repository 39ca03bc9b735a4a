"""The CRM: where customers' data lives. ``connector`` is the interface; ``builtin`` the default."""
