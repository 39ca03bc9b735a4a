"""Benchmarks: ``python -m bench [NAME ...]`` (``make bench``).

Each ``bench/NAME.py`` has ``main() -> int``: it runs its cases (each bounded
to a few seconds), prints its own table of figures and returns 0, or 1 when a
case could not complete. ``python -m bench`` runs every module in name order,
or only those named, then prints one summary line per module.
"""
