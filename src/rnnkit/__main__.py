"""``python -m rnnkit``: the same command line as ``rnnkit``."""

import sys

from .cli import main

sys.exit(main())
