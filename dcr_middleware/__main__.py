"""``python -m dcr_middleware``: the same as the ``dcr-middleware`` command."""

import sys

from .cli import main

sys.exit(main())
