"""``python -m datadesk``: the ``datadesk`` command without its installed script."""

import sys

from datadesk.cli import main

sys.exit(main())
