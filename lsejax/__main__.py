"""``python -m lsejax``: the same as the ``lsejax`` console script."""

import sys

from lsejax.cli import main

sys.exit(main())
