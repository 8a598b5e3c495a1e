"""``python -m bench``: see :func:`bench.run.main`."""

from bench.run import main

raise SystemExit(main())
