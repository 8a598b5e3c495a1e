"""The one numerics kernel behind every reduction in lsejax.

Everything that reduces ``log Σ_i b_i exp(a_i)`` goes through these functions, so the shift,
the ±inf/NaN guards, the log1p refinement and the closed-form derivative live in one place.

A reduction is summarised per row (per reduced slice) by two numbers, :class:`RowStats`:

* ``max``: the largest live entry (an entry is live if ``where`` includes it and its weight is
  nonzero). The exponent is shifted by the *pivot*: the max, 0 where it is -inf or NaN, and the
  largest float where it is +inf (so ``exp(a − pivot)`` is +inf exactly at the +inf entries);
* ``total = Σ b_i exp(a_i − pivot)``, one fused pass over the input; in a row holding +inf,
  the weight of its +inf entries instead (counted in a pass taken only when such a row exists).

The value is ``shift + log|total|`` (the shift is the max kept at +inf). Where ``|total|`` is near
1 the dominant term (weight ``top``, ``exp(0) = 1`` each) could swamp a tiny ``rest``: then, and
only then, a second pass sums both apart and the value becomes ``log|top| + log1p(rest/top)``
(float64 ``logsumexp([0, -40])`` is 4.2e-18, not 0).

The derivative of the value with respect to ``b_i`` is ``exp(a_i − pivot) / total``
(:func:`mass_weights`); with respect to ``a_i`` it is ``b_i`` times that: the softmax. In a row
holding +inf it is the limit: shared by the +inf entries in proportion to their weights.
No select touches the N×V arrays on the common path (XLA:CPU does not fuse selects into its
reductions), so the forward is two passes and the backward writes over the forward's exp.
All functions work with the reduced axes kept (``keepdims=True``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

_LOW_PRECISION = (jnp.float16, jnp.bfloat16)


def compute_dtype(x: jax.Array) -> jax.Array:
  """``x`` in the precision sums are taken in: float16/bfloat16 go to float32."""
  return x.astype(jnp.float32) if x.dtype in _LOW_PRECISION else x


class RowStats(NamedTuple):
  """Per-row summary of a reduction (reduced axes kept as size 1)."""

  max: jax.Array  # the largest live entry (real part); ±inf or NaN possible
  total: jax.Array  # Σ b exp(a − shift), signed; +inf in a row holding +inf

  @property
  def shift(self) -> jax.Array:
    """The value is ``shift + log|total|``: the max, kept at +inf, 0 where it is -inf or NaN."""
    return jnp.where(jnp.isnan(self.max) | (self.max == -jnp.inf), 0, self.max)

  @property
  def pivot(self) -> jax.Array:
    """What the exponent is shifted by: the shift, but the largest finite number for +inf.

    Then ``exp(a − pivot)`` is +inf exactly at the +inf entries of such a row and 0 at its finite
    ones, and the same expression serves every row (forward and backward share it, so XLA
    computes it once).
    """
    big = jnp.finfo(self.max.dtype).max
    return jnp.where(self.max == jnp.inf, big, self.shift)

  @property
  def sign(self) -> jax.Array:
    """Sign of the sum; 0 for an empty or exactly cancelling sum."""
    if jnp.iscomplexobj(self.total):
      size = jnp.abs(self.total)
      return jnp.where(size == 0, 0, self.total / jnp.where(size == 0, 1, size))
    return jnp.sign(self.total)

  @property
  def dead(self) -> jax.Array:
    """Rows with no mass (value -inf): no gradient flows through them."""
    return (self.total == 0) & (self.max != jnp.inf)

  @property
  def inf_row(self) -> jax.Array:
    """Rows holding a live +inf and no NaN: their gradient is the limit of the softmax."""
    return (self.max == jnp.inf) & ~jnp.isnan(self.total)


def exponent(a: jax.Array, stats: RowStats) -> jax.Array:
  """``a − pivot`` (see :attr:`RowStats.pivot`): every ``exp`` of the kernel goes through here."""
  return a - stats.pivot.astype(a.dtype)


def live_mask(b: jax.Array | None, where: jax.Array | None) -> jax.Array | None:
  """Entries that carry mass: inside ``where`` and with a nonzero weight (None: all)."""
  if b is None:
    return where
  nonzero = b != 0
  return nonzero if where is None else where & nonzero


def mask(x: jax.Array, keep: jax.Array | None, fill) -> jax.Array:
  """``x`` where ``keep`` holds, else ``fill`` (a select, so NaN/inf in ``x`` never leak)."""
  return x if keep is None else jnp.where(keep, x, jnp.asarray(fill, x.dtype))


def _live(a, b, where):
  live = live_mask(b, where)
  a = compute_dtype(a)
  b = None if b is None else mask(compute_dtype(b), live, 0)
  return mask(a, live, -jnp.inf), b


def row_stats(a: jax.Array, b: jax.Array | None, where: jax.Array | None,
              axes: tuple[int, ...]) -> RowStats:
  """The forward pass: the row max, then one fused ``Σ b exp(a − shift)``.

  The max only picks the shift; it never decides the value: a NaN that ``jnp.max`` drops (as
  XLA:CPU does for long float32 rows) still reaches the sum. The shift is a constant for autodiff
  (the value does not depend on it), so autodiff of this pass, which reverse-over-reverse
  differentiation performs, is exact.
  """
  a_live, b_live = _live(a, b, where)
  row_max = jnp.max(jnp.real(a_live), axis=axes, keepdims=True, initial=-jnp.inf)
  stats = RowStats(lax.stop_gradient(row_max), None)
  terms = jnp.exp(exponent(a_live, stats))
  if b_live is not None:
    terms = b_live * terms
  total = jnp.sum(terms, axis=axes, keepdims=True)
  return stats._replace(total=_count_infinities(a_live, b_live, axes, stats._replace(total=total)))


def _count_infinities(a_live, b_live, axes, stats: RowStats) -> jax.Array:
  """``total``, with ``Σ b`` over the +inf entries in place of +inf in rows holding +inf.

  The value there is ``+inf + log|Σ_{+inf} b|`` all the same (NaN when the weights cancel),
  and the backward finds the limit of the softmax, ``1 / Σ_{+inf} b`` at each +inf entry, in
  ``exp(a − pivot) / total`` with ``exp`` clamped at 1. The count takes a pass of its own, run
  only when some row holds +inf.
  """
  def count():
    # a − pivot is +inf at +inf and ≤ 0 elsewhere in these rows; sign and max fuse into XLA:CPU's
    # reduction where a compare would write an N×V mask first.
    at_inf = jnp.maximum(jnp.sign(exponent(a_live, stats)), 0)
    weights = at_inf if b_live is None else b_live * at_inf
    return jnp.where(stats.inf_row, jnp.sum(weights, axis=axes, keepdims=True), stats.total)

  return lax.cond(jnp.any(stats.inf_row), count, lambda: stats.total)


def _safe_log_abs(x: jax.Array) -> jax.Array:
  """``log|x|``, -inf at 0, with a NaN-free derivative there (the double-where idiom)."""
  is_zero = x == 0
  return jnp.where(is_zero, -jnp.inf, jnp.log(jnp.abs(jnp.where(is_zero, 1, x))))


def _log1p_split(top: jax.Array, rest: jax.Array) -> jax.Array:
  """``log|top + rest|`` as ``log|top| + log1p(rest/top)`` where that is defined, else direct."""
  ok = top != 0
  ratio = rest / jnp.where(ok, top, 1)
  ok = ok & (ratio > -1)  # False for NaN too
  split = _safe_log_abs(jnp.where(ok, top, 1)) + jnp.log1p(jnp.where(ok, ratio, 0))
  return jnp.where(ok, split, _safe_log_abs(top + rest))


def log_abs_total(a: jax.Array, b: jax.Array | None, where: jax.Array | None,
                  axes: tuple[int, ...], stats: RowStats) -> jax.Array:
  """``log|total|``, refined where ``|total| ≈ 1``; the value is ``shift + log|total|``.

  ``total = top + rest`` with ``top`` the weight of the entries at the max (each contributes
  ``exp(0) = 1`` exactly). When ``|total|`` is within (1/2, 2) the rounding of ``top + rest`` can
  hide all of ``rest``; then (only when some row needs it) a second pass sums ``top`` and
  ``rest = Σ_{a_i < max} b_i exp(a_i − max)`` apart and the value uses log1p.
  """
  plain = _safe_log_abs(stats.total)
  if jnp.iscomplexobj(stats.total):
    return plain
  size = jnp.abs(stats.total)
  near_one = (size > 0.5) & (size < 2) & (stats.max != jnp.inf)

  def refine():
    # sign(z) is 0 at the max and -1 below it. The two sums share no N×V subexpression (not even
    # the broadcast pivot: one adds −pivot, the other subtracts pivot) and use no select or
    # compare, so XLA:CPU fuses each into its reduction and writes no N×V temporary.
    a_live, b_live = _live(a, b, where)
    u = a_live + (-stats.pivot).astype(a_live.dtype)
    at_top = (1 + jnp.sign(u)) * jnp.exp(u)  # exp(0) = 1 exactly; kept for its derivative
    z = exponent(a_live, stats)
    below = -jnp.sign(z) * jnp.exp(z)
    if b_live is not None:
      at_top, below = b_live * at_top, b_live * below
    top = jnp.sum(at_top, axis=axes, keepdims=True)  # Σ b at the max, exactly
    rest = jnp.sum(below, axis=axes, keepdims=True)
    return jnp.where(near_one, _log1p_split(top, rest), plain)

  return lax.cond(jnp.any(near_one), refine, lambda: plain)


@jax.custom_jvp
def _clamp_at_one(x: jax.Array) -> jax.Array:
  """``min(x, 1)`` whose derivative is 1 up to 1 inclusive (``jnp.minimum`` gives ½ at the tie,
  which is every row's max entry here, and would halve second derivatives)."""
  return jnp.minimum(x, 1)


@_clamp_at_one.defjvp
def _clamp_at_one_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  return _clamp_at_one(x), jnp.where(x <= 1, dx, 0)


def mass_weights(a: jax.Array, b: jax.Array | None, where: jax.Array | None,
                 axes: tuple[int, ...], stats: RowStats, scale: jax.Array) -> jax.Array:
  """``scale · ∂ log|Σ b exp(a)| / ∂b_i = scale · exp(a_i − shift) / total``, guarded.

  ``scale`` is a per-row factor (the incoming cotangent, or 1). Rows with no mass get 0 (never
  NaN), rows whose value is NaN get NaN, entries outside ``where`` get 0, and in a row holding
  +inf the weight is ``scale / Σ_{+inf} b`` on the +inf entries and 0 elsewhere. Multiplying by
  ``b_i`` gives the softmax, the derivative with respect to ``a_i``.
  """
  a_in = mask(compute_dtype(a), where, -jnp.inf)
  scale = scale.astype(stats.total.dtype)
  per_row = jnp.where(stats.dead, 0, scale / jnp.where(stats.dead, 1, stats.total))
  unnormalised = jnp.exp(exponent(a_in, stats))
  if jnp.iscomplexobj(a_in):
    return unnormalised * per_row
  if b is None:
    # Every entry is at most the max, so exp(a − pivot) ≤ 1 except at the +inf entries of a +inf
    # row, where clamping gives the limit 1 / Σ_{+inf} b (see ``_count_infinities``) without a
    # select, which lets XLA write the result over the exp buffer. A NaN that ``min`` drops is
    # harmless: it made its row's total, hence ``per_row``, NaN.
    return _clamp_at_one(unnormalised) * per_row
  # With weights, a zero-weight entry may sit above the max (d/db_i = exp(a_i − pivot)/total).
  return jnp.where(stats.inf_row & (unnormalised == jnp.inf), per_row, unnormalised * per_row)
