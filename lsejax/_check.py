"""Checking a custom gradient against autodiff of a reference and against finite differences."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class GradientCheck(NamedTuple):
  """Largest differences between the gradient of ``f`` and two independent references.

  Relative differences are norm-wise: the largest absolute difference over the largest
  absolute reference entry.
  """

  max_abs_vs_reference: float  # |∇f − ∇reference| (autodiff of the reference formula)
  max_rel_vs_reference: float
  max_abs_vs_finite_diff: float  # |∇f·v − central difference of f along v|
  max_rel_vs_finite_diff: float


def _rel(diff: np.ndarray, scale: np.ndarray) -> float:
  # Norm-wise: an entry far below the others (a derivative of 1e-22 whose finite difference is
  # 0) must not turn a correct gradient into an error of 1e277.
  if not diff.size:
    return 0.0
  return float(np.max(diff) / max(float(np.max(np.abs(scale))), np.finfo(np.float64).tiny))


def check_gradients(f: Callable, reference: Callable, *args, max_directions: int = 32,
                    seed: int = 0) -> GradientCheck:
  r"""Compares ``jax.grad(f)`` with ``jax.grad(reference)`` and with central finite differences.

  Both are taken with respect to the first argument (an array). The finite differences use
  ``h = eps^{1/3} · max(1, |x|)`` along each coordinate when there are at most
  ``max_directions`` of them, else along that many random unit directions.

  Args:
    f: scalar function whose gradient is under test (e.g. built on :func:`lsejax.logsumexp`).
    reference: the same function written naively (plain ``jnp.log(jnp.sum(jnp.exp(…)))``).
    *args: arguments of both; the first is differentiated.
    max_directions: the most finite-difference directions.
    seed: seed of the random directions.

  Returns:
    A :class:`GradientCheck` of max absolute and relative differences.

  Examples:
    >>> import jax.numpy as jnp, lsejax
    >>> naive = lambda x: jnp.log(jnp.sum(jnp.exp(x)))
    >>> check = lsejax.check_gradients(lsejax.logsumexp, naive, jnp.array([0.5, -1.0, 2.0]))
    >>> check.max_rel_vs_reference < 1e-5 and check.max_rel_vs_finite_diff < 1e-2
    True
  """
  x, rest = jnp.asarray(args[0]), args[1:]
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"the first argument must be a float array, got dtype {x.dtype}")
  grad = np.asarray(jax.jit(jax.grad(f))(x, *rest), np.float64)
  ref = np.asarray(jax.jit(jax.grad(reference))(x, *rest), np.float64)
  diff_ref = np.abs(grad - ref)

  n = x.size
  if n <= max_directions:
    directions = np.eye(n)
  else:
    directions = np.random.default_rng(seed).normal(size=(max_directions, n))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
  h = float(np.finfo(np.dtype(x.dtype)).eps ** (1 / 3) * max(1.0, float(jnp.max(jnp.abs(x)))))
  fx = jax.jit(f)
  flat = x.reshape(-1)
  fd = []
  for v in directions:
    step = jnp.asarray(h * v, x.dtype).reshape(x.shape)
    fd.append((float(fx(flat.reshape(x.shape) + step, *rest))
               - float(fx(flat.reshape(x.shape) - step, *rest))) / (2 * h))
  fd = np.asarray(fd)
  directional = directions @ grad.reshape(-1)
  diff_fd = np.abs(directional - fd)
  return GradientCheck(float(diff_ref.max(initial=0.0)), _rel(diff_ref, ref),
                       float(diff_fd.max(initial=0.0)), _rel(diff_fd, fd))
