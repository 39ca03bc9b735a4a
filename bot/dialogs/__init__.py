"""Tools for people who edit dialog files: ``dialogs check``, ``dialogs test``, ``dialogs reload``."""
