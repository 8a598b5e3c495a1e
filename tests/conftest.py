"""Shared test configuration for lsejax.

float64 is enabled for the whole session at import, so that references can be computed in
float64; every float32/float16/bfloat16 test therefore passes its dtype explicitly.

The project runs pytest with ``--import-mode=importlib``, under which ``tests/`` is not on
``sys.path``: the shared helpers live here as session-scoped fixtures (session scope keeps them
usable from hypothesis ``@given`` tests), and this folder is put on the path for the one shared
data module, ``_published.py`` (the published TravelMode figures).
"""

from __future__ import annotations

import pathlib
import sys

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# (rtol, atol) for comparing a result computed in `dtype` with a float64 reference of moderate
# magnitude. float16/bfloat16 are computed in float32 by lsejax and rounded once on output.
_TOLERANCES = {
    np.dtype(np.float64): (1e-12, 1e-12),
    np.dtype(np.float32): (2e-5, 2e-6),
    np.dtype(jnp.float16): (2e-3, 2e-3),
    np.dtype(jnp.bfloat16): (1.6e-2, 1.6e-2),
    np.dtype(np.complex128): (1e-12, 1e-12),
    np.dtype(np.complex64): (2e-5, 2e-6),
}


def tolerance(dtype) -> tuple[float, float]:
  """``(rtol, atol)`` for results of dtype ``dtype`` against a float64 reference."""
  return _TOLERANCES[np.dtype(dtype)]


def assert_close(actual, expected, dtype=None, rtol=None, atol=None, err_msg=""):
  """``np.testing.assert_allclose`` at the tolerance of ``dtype`` (default: ``actual``'s dtype).

  NaN and ±inf must match position for position (assert_allclose's ``equal_nan`` semantics).
  """
  actual_np = np.asarray(actual)
  if dtype is None:
    dtype = actual_np.dtype
  d_rtol, d_atol = tolerance(dtype)
  rtol = d_rtol if rtol is None else rtol
  atol = d_atol if atol is None else atol
  compute = np.complex128 if np.iscomplexobj(actual_np) or np.iscomplexobj(expected) else np.float64
  np.testing.assert_allclose(actual_np.astype(compute), np.asarray(expected, compute), rtol=rtol,
                             atol=atol, equal_nan=True, err_msg=err_msg)


@pytest.fixture(scope="session")
def tol():
  """``tol(dtype) -> (rtol, atol)``: the comparison tolerance of a dtype."""
  return tolerance


@pytest.fixture(scope="session")
def close():
  """``close(actual, expected, dtype=None, rtol=None, atol=None)``: assert_allclose by dtype."""
  return assert_close
