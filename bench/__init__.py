"""Side-by-side benchmark of ``lsejax.logsumexp`` against jax.nn, naive autodiff, scipy and torch.

Run ``python -m bench`` (full run, several minutes on a small CPU) or ``python -m bench --quick``
(tiny shapes, under a minute). Results go to ``bench/results/<name>.{json,md,png}``; see
``python -m bench --help``. The harness is in :mod:`bench.run`; the contenders in
:mod:`bench.contenders`; timing in :mod:`bench.timing`; the table and plot in :mod:`bench.report`.
"""

from bench.run import main as main

__all__ = ["main"]
