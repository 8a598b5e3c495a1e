"""The one numerics kernel behind every reduction in lsejax.

Everything that reduces ``log Σ_i b_i exp(a_i)`` goes through these few functions, so the shift,
the ±inf/NaN guards and the closed-form derivative live in exactly one place.

A reduction is described per row (per reduced slice) by three numbers:

* ``shift``: the largest live entry, used to shift the exponent. It is kept at ``+inf`` (so that
  a row holding ``+inf`` takes the limit of the softmax) but replaced by 0 where the row has no
  live entry (``-inf``) or the max is NaN (the NaN then reaches the sum by itself).
* ``top``: ``Σ b_i`` over the entries equal to the shift, each of which contributes exactly
  ``exp(0) = 1``;
* ``rest``: ``Σ b_i exp(a_i − shift)`` over the others.

``log|top + rest|`` is then ``log|top| + log1p(rest / top)``, which keeps a tiny ``rest`` that a
plain ``log(1 + rest)`` would round away (float64 ``logsumexp([0, -40])`` is 4.2e-18, not 0).

The derivative of the result with respect to ``b_i`` is ``exp(a_i − shift) / (top + rest)``
(:func:`mass_weights`); with respect to ``a_i`` it is ``b_i`` times that: the softmax.
All functions work on arrays with the reduced axes kept (``keepdims=True``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax


class RowStats(NamedTuple):
  """Per-row statistics of a reduction (reduced axes kept as size 1)."""

  shift: jax.Array  # the shift: the row max, or +inf, or 0 for rows with no live entry
  total: jax.Array  # Σ b exp(a − shift), signed
  log_total: jax.Array  # log|total|, -inf where the sum is 0
  sign: jax.Array  # sign of the sum; 0 for an empty or exactly cancelling sum

  @property
  def value(self) -> jax.Array:
    """``log|Σ b exp(a)|``: -inf for a sum of 0, +inf for a row holding +inf."""
    return self.shift.astype(self.log_total.dtype) + self.log_total

  @property
  def dead(self) -> jax.Array:
    """Rows whose result is -inf: they carry no mass, so no gradient."""
    return self.value == -jnp.inf


def live_mask(b: jax.Array | None, where: jax.Array | None) -> jax.Array | None:
  """Entries that carry mass: inside ``where`` and with a nonzero weight (None: all)."""
  if b is None:
    return where
  nonzero = b != 0
  return nonzero if where is None else where & nonzero


def mask(x: jax.Array, keep: jax.Array | None, fill) -> jax.Array:
  """``x`` where ``keep`` holds, else ``fill`` (a select, so NaN/inf in ``x`` never leak)."""
  return x if keep is None else jnp.where(keep, x, jnp.asarray(fill, x.dtype))


def row_shift(a_live: jax.Array, axes: tuple[int, ...]) -> jax.Array:
  """The shift of each row: its max, kept at +inf, 0 where it is -inf or NaN.

  The max only picks the shift; it never decides the value: a NaN that ``jnp.max`` drops (as
  XLA:CPU does for long float32 rows) still reaches the sum. The shift is a constant for autodiff:
  the result does not depend on it, so second derivatives through the forward stay exact.
  """
  m = jnp.max(jnp.real(a_live), axis=axes, keepdims=True, initial=-jnp.inf)
  m = jnp.where((m == -jnp.inf) | jnp.isnan(m), jnp.zeros_like(m), m)
  return lax.stop_gradient(m)


def shifted(a: jax.Array, shift: jax.Array) -> jax.Array:
  """``a − shift``, with the limit convention for rows whose shift is +inf.

  In such a row the +inf entries become 0 (``exp`` → 1, so tied +inf entries share the mass
  evenly) and every finite entry becomes -inf (``exp`` → 0): the limit of the softmax.
  """
  if jnp.iscomplexobj(a):
    return a - shift.astype(a.dtype)
  return jnp.where((shift == jnp.inf) & (a == jnp.inf), jnp.zeros_like(a), a - shift)


def _log_abs_sum(top: jax.Array, rest: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(log|top + rest|, sign, top + rest)``, using log1p where ``top`` dominates.

  Every branch is fed safe operands (the double-where idiom) so that no unselected branch puts a
  NaN into a second derivative.
  """
  total = top + rest
  top_nonzero = top != 0
  safe_top = jnp.where(top_nonzero, top, jnp.ones_like(top))
  ratio = rest / safe_top
  use_log1p = top_nonzero & (ratio > -1)  # False for NaN too
  via_log1p = jnp.log(jnp.abs(safe_top)) + jnp.log1p(jnp.where(use_log1p, ratio, 0))
  is_zero = total == 0
  safe_total = jnp.where(use_log1p | is_zero, jnp.ones_like(total), total)
  direct = jnp.where(is_zero, -jnp.inf, jnp.log(jnp.abs(safe_total)))
  return jnp.where(use_log1p, via_log1p, direct), jnp.sign(total), total


def row_stats(a: jax.Array, b: jax.Array | None, where: jax.Array | None,
              axes: tuple[int, ...]) -> RowStats:
  """The forward reduction: shift, signed total, ``log|Σ b exp(a)|`` and its sign per row.

  Written with differentiable operations throughout, so that autodiff of it (which reverse-over-
  reverse differentiation performs) is exact.
  """
  live = live_mask(b, where)
  a_live = mask(a, live, -jnp.inf)
  shift = row_shift(a_live, axes)
  z = shifted(a_live, shift)
  terms = jnp.exp(z)
  if b is not None:
    terms = mask(b, live, 0) * terms
  if jnp.iscomplexobj(a):
    # Complex sums have no dominant real term to split off; follow jax.nn.logsumexp.
    total = jnp.sum(terms, axis=axes, keepdims=True)
    abs_total = jnp.abs(total)
    safe = jnp.where(abs_total == 0, jnp.ones_like(total), total)
    sign = jnp.where(abs_total == 0, jnp.zeros_like(total), total / jnp.abs(safe))
    log_abs = jnp.where(abs_total == 0, -jnp.inf, jnp.log(jnp.abs(safe)))
    return RowStats(shift, total, log_abs, sign)
  at_top = z == 0
  zero = jnp.zeros_like(terms)
  top = jnp.sum(jnp.where(at_top, terms, zero), axis=axes, keepdims=True)
  rest = jnp.sum(jnp.where(at_top, zero, terms), axis=axes, keepdims=True)
  log_total, sign, total = _log_abs_sum(top, rest)
  return RowStats(shift, total, log_total, sign)


def mass_weights(a: jax.Array, where: jax.Array | None, stats: RowStats,
                 scale: jax.Array) -> jax.Array:
  """``scale · ∂ log|Σ b exp(a)| / ∂b_i = scale · exp(a_i − shift) / total``, guarded.

  ``scale`` is a per-row factor (the incoming cotangent, or 1). Rows whose result is -inf carry
  no mass and get weight 0 (never NaN); rows whose result is NaN get NaN; entries outside
  ``where`` get 0. Multiplying by ``b_i`` gives the softmax, the derivative with respect to ``a_i``.
  """
  dead = stats.dead
  safe_total = jnp.where(dead, jnp.ones_like(stats.total), stats.total)
  per_row = jnp.where(dead, jnp.zeros_like(scale), scale / safe_total)
  a_in = mask(a, where, -jnp.inf)
  return jnp.exp(shifted(a_in, stats.shift)) * per_row.astype(a.dtype)
