"""The assembled product: the ``datadesk`` command and ``datadesk run``.

The only package that imports both ``bot`` and ``backend`` (``tests/test_boundaries.py``
holds it to that); each side's own commands live on that side.
"""
