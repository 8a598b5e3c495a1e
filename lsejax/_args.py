"""Validation and canonicalisation of Python-level arguments, before anything is traced.

Every public function calls these first, so a bad ``axis``, ``b`` or ``where`` raises a
``ValueError``/``TypeError`` naming the argument instead of a deep XLA error or a silent
broadcast to the wrong shape.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

def as_array(x, name: str) -> jax.Array:
  """``x`` as a JAX array, or a TypeError naming ``name``."""
  if isinstance(x, (jax.Array, np.ndarray, np.generic, int, float, complex, bool)):
    return jnp.asarray(x)
  if isinstance(x, (list, tuple)):
    try:
      arr = np.asarray(x)
    except ValueError as err:  # ragged nesting
      raise TypeError(f"{name} must be an array; got a ragged {type(x).__name__}") from err
    if arr.dtype.kind not in "biufc":
      raise TypeError(f"{name} must be numeric; got {type(x).__name__} of {arr.dtype}")
    return jnp.asarray(arr)
  raise TypeError(f"{name} must be an array, got {type(x).__name__}")


def inexact(a: jax.Array) -> jax.Array:
  """``a`` as an inexact array: integers and bools are promoted to the default float dtype.

  float16 and bfloat16 stay as they are: the kernel sums them in float32 (their sums overflow and
  their exp underflows) and the public functions cast results back to the input dtype.
  """
  if a.dtype == jnp.bool_ or jnp.issubdtype(a.dtype, jnp.integer):
    return a.astype(jnp.result_type(float))
  return a


def axes(axis, ndim: int, name: str = "axis") -> tuple[int, ...]:
  """``axis`` (None, an int or a sequence of ints) as sorted non-negative ints."""
  if axis is None:
    return tuple(range(ndim))
  items = tuple(axis) if isinstance(axis, Sequence) and not isinstance(axis, str) else (axis,)
  out = []
  for item in items:
    try:
      index = operator.index(item)
    except TypeError:
      raise TypeError(f"{name} must be None, an int or a tuple of ints; got {axis!r}") from None
    if not -ndim <= index < ndim:
      raise ValueError(f"{name}={axis!r} is out of range for an array of {ndim} dimensions")
    out.append(index % ndim)
  if len(set(out)) != len(out):
    raise ValueError(f"{name}={axis!r} repeats an axis")
  return tuple(sorted(out))


def broadcast_to(x, shape: tuple[int, ...], name: str) -> jax.Array:
  """``x`` broadcast to ``shape`` (the shape of ``a``), or a ValueError naming ``name``."""
  x = as_array(x, name)
  try:
    if np.broadcast_shapes(x.shape, shape) == shape:
      return jnp.broadcast_to(x, shape)
  except ValueError:
    pass
  raise ValueError(f"{name} of shape {x.shape} does not broadcast to the shape {shape} of the input")


def where_mask(where, shape: tuple[int, ...]) -> jax.Array | None:
  """``where`` as a boolean mask of ``shape`` (None stays None)."""
  if where is None:
    return None
  where = broadcast_to(where, shape, "where")
  if not (where.dtype == jnp.bool_ or jnp.issubdtype(where.dtype, jnp.integer)):
    raise TypeError(f"where must be a boolean mask; got dtype {where.dtype}")
  return where.astype(bool)
