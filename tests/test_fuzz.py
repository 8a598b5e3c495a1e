"""Differential fuzzing of lsejax.logsumexp with hypothesis.

* finite inputs: values against float64 ``scipy.special.logsumexp`` and gradients (with respect
  to ``a`` and ``b``) against float64 autodiff (``jax.vjp``) of the naive formula
  ``log|Σ b exp(a − c)| + c`` (``c`` a per-row constant, so the formula stays finite), on rows
  where the sum is well-conditioned;
* ±inf/NaN placements: values against scipy (``where`` and zero weights folded in as scipy
  understands them: masked entries get ``a = -inf, b = 0``) and gradients against the documented
  conventions, written out in numpy; a NaN must stay in its row.

Random shapes (ndim 0-3, sizes 0-6) come from a fixed list so that the jit caches of the
primitive (keyed by shape and normalised axes) are hit most of the time; the axes are spelled
with negative and permuted variants, which normalise to the same cache entry. float32 is compared
with the float64 reference at a tolerance scaled by the row's condition number.

``LSEJAX_FUZZ_EXAMPLES=N`` sets the number of examples per test and dtype (default 2000).
"""

from __future__ import annotations

import functools
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lsejax
import lsejax._logsumexp as lse_module

# Two profiles: the normal run (2000 examples per test and dtype, about a minute on 2 cores) and
# a larger one selected by LSEJAX_FUZZ_EXAMPLES=N. No example database: runs stay independent.
_COMMON = dict(deadline=None, database=None, derandomize=False, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("lsejax-fuzz", max_examples=2000, **_COMMON)
settings.register_profile("lsejax-fuzz-large",
                          max_examples=int(os.environ.get("LSEJAX_FUZZ_EXAMPLES") or 2000),
                          **_COMMON)
_PROFILE = "lsejax-fuzz-large" if os.environ.get("LSEJAX_FUZZ_EXAMPLES") else "lsejax-fuzz"

# Each compiled variant of the primitive costs about half a second on a small CPU, so the fuzz
# draws from a fixed list of cases (shape, normalised axes, keepdims, with b, with where), 22
# per dtype: ndim 0-3, sizes 0-6, every kind of reduction, and each flag crossed with several
# shapes. The values, the axis spellings, the weights and the masks are random.
_CASES = [
    ((), (), False, True, True),
    ((), (), True, False, False),
    ((0,), (0,), False, True, True),
    ((1,), (0,), True, True, False),
    ((6,), (0,), False, False, False),
    ((6,), (0,), True, True, True),
    ((2, 5), (1,), False, True, True),
    ((2, 5), (1,), True, False, True),
    ((2, 5), (0,), False, True, True),
    ((2, 5), (0,), True, True, False),
    ((2, 5), (0, 1), False, True, True),
    ((2, 5), (0, 1), True, False, False),
    ((4, 0), (1,), False, True, True),
    ((4, 0), (0,), True, True, True),
    ((2, 1, 3), (0, 2), False, True, True),
    ((2, 1, 3), (0, 2), True, False, True),
    ((2, 1, 3), (1,), False, True, True),
    ((2, 1, 3), (0, 1, 2), True, True, True),
    ((2, 1, 3), (2,), False, False, False),
    ((3, 4, 2), (0, 1), False, True, True),
    ((0, 2, 2), (1, 2), True, True, True),
    ((5, 2, 6), (2,), False, True, True),
]
_EPS = {np.dtype(np.float64): np.finfo(np.float64).eps, np.dtype(np.float32): 2.0**-23}
_KAPPA_MAX = {np.dtype(np.float64): 1e8, np.dtype(np.float32): 1e3}


@st.composite
def _spelled_axis(draw, shape, axes):
  """A spelling of the normalised reduction ``axes``: None, an int or a (permuted) tuple, with
  negative variants."""
  ndim = len(shape)
  if axes == tuple(range(ndim)) and draw(st.booleans()):
    return None
  spelled = [draw(st.sampled_from([k, k - ndim])) for k in axes]
  if len(spelled) == 1 and draw(st.booleans()):
    return spelled[0]
  return tuple(draw(st.permutations(spelled)))


_SPECIALS = np.array([0.0, 1.0, -2.0, 3.5, np.inf, -np.inf, np.nan])
_WEIGHTS = np.array([0.0, 1.0, -1.0, 2.0, 0.5])


@st.composite
def _problem(draw, dtype, special):
  """One problem: ``(a, b, where, axis as spelled, normalised axes, keepdims, seed)``.

  Hypothesis draws the case, the axis spelling and the knobs of the distributions (how many
  ties, zero weights, masked entries, infinities, NaNs; the offset); the elements themselves come
  from a numpy generator seeded by hypothesis (drawing them one by one through hypothesis costs
  more than the check itself). The arrays are printed with any falsifying example.
  """
  shape, axes, keepdims, with_b, with_where = draw(st.sampled_from(_CASES))
  axis = draw(_spelled_axis(shape, axes))
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  if special:
    # Probabilities of 0, 1, -2, 3.5, +inf, -inf, NaN.
    odds = np.array([1.0, 1.0, 1.0, 1.0] + [draw(st.sampled_from([0.0, 0.5, 2.0]))
                                            for _ in range(3)])
    a = rng.choice(_SPECIALS, size=shape, p=odds / odds.sum())
  else:
    spread = draw(st.sampled_from([1.0, 5.0, 30.0]))
    a = rng.uniform(-spread, spread, size=shape)
    ties = rng.random(shape) < draw(st.sampled_from([0.0, 0.3, 0.9]))
    a = np.where(ties, rng.choice([0.0, 1.0, -spread], size=shape), a)
    a = a + draw(st.sampled_from([0.0, 0.0, 250.0, -250.0]))
  a = np.asarray(a, dtype)
  b = None
  if with_b:
    # Signed and zero; no tiny magnitudes, whose gradients ~1/b overflow float32.
    magnitude = rng.uniform(0.01, 3, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    if not draw(st.booleans()):
      magnitude = np.abs(magnitude)
    listed = rng.random(shape) < draw(st.sampled_from([0.0, 0.5, 1.0]))
    b = np.where(listed, rng.choice(_WEIGHTS, size=shape), magnitude)
    b = np.where(rng.random(shape) < draw(st.sampled_from([0.0, 0.2, 0.8])), 0.0, b)
    b = np.asarray(b, dtype)
  where = None
  if with_where:
    where = rng.random(shape) < draw(st.sampled_from([0.3, 0.7, 1.0]))
  seed = int(rng.integers(0, 2**32 - 1))
  return a, b, where, axis, axes, keepdims, seed


@functools.partial(jax.jit, static_argnums=(4, 5))
def _jitted_vjp(a, b, where, ct, axes, keepdims):
  """Under jit: value, sign and the pullback of ``ct`` (with weights the sign is requested)."""
  return_sign = b is not None

  def f(a, b):
    out = lsejax.logsumexp(a, axis=axes, b=b, keepdims=keepdims, return_sign=return_sign,
                           where=where)
    return out if return_sign else (out, jnp.sign(jnp.exp(out)))

  if b is None:
    value, pullback, sign = jax.vjp(lambda a: f(a, None), a, has_aux=True)
    return value, sign, pullback(ct)[0], None
  value, pullback, sign = jax.vjp(f, a, b, has_aux=True)
  return (value, sign, *pullback(ct))


def _call(a, b, where, axis, axes, keepdims, ct):
  """lsejax on one problem: ``(value, sign, ∂/∂a, ∂/∂b)``, as float64 numpy arrays.

  The value and the pullback of ``ct`` come from one jitted program per case, which takes the
  normalised axes. The axis as drawn (negative, permuted, None) is checked to reach the very same
  primitive: tracing the public function with it (``jax.eval_shape``, no compilation) gives the
  same shapes and hits the primitive's trace cache (``trace_count`` does not move); once per
  spelling, as the answer cannot change.
  """
  dtype = np.dtype(a.dtype)
  value, sign, ga, gb = _jitted_vjp(a, b, where, np.asarray(ct, dtype), axes, keepdims)
  assert value.dtype == ga.dtype == dtype and (gb is None or gb.dtype == dtype)
  assert value.shape == np.shape(ct)
  key = (a.shape, dtype, axis, axes, keepdims, b is None, where is None)
  if key in _SPELLINGS_SEEN:
    return to64(value), to64(sign), to64(ga), to64(gb)
  _SPELLINGS_SEEN.add(key)
  count = lse_module.trace_count
  spelled = jax.eval_shape(
      lambda a, b: lsejax.logsumexp(a, axis=axis, b=b, keepdims=keepdims,
                                    return_sign=b is not None, where=where), a, b)
  spelled = spelled[0] if b is not None else spelled
  assert (spelled.shape, spelled.dtype) == (value.shape, value.dtype), (axis, axes)
  assert lse_module.trace_count == count, f"axis={axis!r} did not normalise to {axes}"
  return to64(value), to64(sign), to64(ga), to64(gb)


def to64(x):
  return None if x is None else np.asarray(x, np.float64)


_SPELLINGS_SEEN = set()  # (case, spelling) pairs already traced with the spelled axis


def _fold(a, b, where):
  """``(live, b_eff)``: the entries that carry mass, and the weights with the mask folded in."""
  b_eff = np.ones(a.shape) if b is None else b.astype(np.float64)
  if where is not None:
    b_eff = np.where(where, b_eff, 0.0)
  return b_eff != 0, b_eff


def _scipy(a, b_eff, live, axes, keepdims):
  """float64 scipy reference ``(value, sign)``, masked entries as ``a = -inf, b = 0``."""
  a_eff = np.where(live, a, -np.inf)
  if a.ndim == 0:  # scipy works on at least 1-d arrays
    value, sign = _scipy(a.reshape(1), b_eff.reshape(1), live.reshape(1), (0,), False)
    return value.reshape(()), sign.reshape(())
  if a.size == 0:  # scipy mishandles tuple axes of empty arrays: the result is -inf throughout
    shape = np.sum(np.zeros(a.shape), axis=axes, keepdims=keepdims).shape
    return np.full(shape, -np.inf), np.zeros(shape)
  with warnings.catch_warnings(), np.errstate(all="ignore"):
    warnings.simplefilter("ignore")
    value, sign = scipy.special.logsumexp(a_eff, axis=axes, b=b_eff, keepdims=keepdims,
                                          return_sign=True)
  return np.asarray(value, np.float64), np.asarray(sign, np.float64)


def _row_stats(a, b_eff, live, axes):
  """Per row (reduced axes kept): shift c, Σ b e^(a−c), Σ |b| e^(a−c), NaN in a live entry."""
  a_live = np.where(live, a, -np.inf)
  with np.errstate(all="ignore"):
    has_nan = np.any(live & np.isnan(a), axis=axes, keepdims=True)
    c = np.max(np.where(np.isnan(a_live), -np.inf, a_live), axis=axes, keepdims=True,
                initial=-np.inf)
    c_finite = np.where(np.isfinite(c), c, 0.0)
    e = np.where(live, np.exp(np.where(live, a, -np.inf) - c_finite), 0.0)
    total = np.sum(b_eff * e, axis=axes, keepdims=True)
    magnitude = np.sum(np.abs(b_eff) * e, axis=axes, keepdims=True)
  return c, total, magnitude, has_nan


def _check(got, expected, tol, what):
  """Elementwise: NaN where NaN is expected, equal infinities, finite within ``tol``."""
  got, expected = np.broadcast_arrays(np.asarray(got, np.float64), np.asarray(expected, np.float64))
  tol = np.broadcast_to(tol, got.shape)
  nan = np.isnan(expected)
  assert np.array_equal(np.isnan(got), nan), f"{what}: NaN at {np.isnan(got)}, expected {nan}\n" \
      f"got {got}\nexpected {expected}"
  inf = np.isinf(expected)
  assert np.array_equal(got[inf], expected[inf]), f"{what}: got {got}, expected {expected}"
  fin = ~nan & ~inf
  err = np.abs(got[fin] - expected[fin])
  assert np.all(err <= tol[fin]), f"{what}: got {got}\nexpected {expected}\nerr {err}\n" \
      f"tol {tol[fin]}"


@functools.partial(jax.jit, static_argnums=(4,))
def _naive_vjp(a, b, c, ct, axes):
  """float64 autodiff of ``log|Σ b exp(a − c)| + c`` (c: per-row constants, axes kept)."""
  def naive(a, b):
    return jnp.log(jnp.abs(jnp.sum(b * jnp.exp(a - c), axis=axes, keepdims=True))) + c

  _, pullback = jax.vjp(naive, a, b)
  return pullback(ct)


def _squeeze(x, axes, keepdims):
  return x if keepdims else np.squeeze(x, axis=axes)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@settings(settings.get_profile(_PROFILE))
@given(data=st.data())
def test_finite_inputs_match_scipy_and_naive_autodiff(dtype, data):
  dtype = np.dtype(dtype)
  a, b, where, axis, axes, keepdims, seed = data.draw(_problem(dtype, special=False))
  live, b_eff = _fold(a, b, where)
  a64 = a.astype(np.float64)
  c, total, magnitude, _ = _row_stats(a64, b_eff, live, axes)
  ct_kept = np.random.default_rng(seed).normal(size=c.shape)
  ct = _squeeze(ct_kept, axes, keepdims)

  value, sign, ga, gb = _call(a, b, where, axis, axes, keepdims, ct)

  eps, kappa_max = _EPS[dtype], _KAPPA_MAX[dtype]
  n = max(1, int(np.prod([a.shape[k] for k in axes])))
  dead = magnitude == 0  # no live entry: -inf, sign 0, zero gradients
  with np.errstate(all="ignore"):
    kappa = np.where(dead, 1.0, magnitude / np.abs(total))
  good = kappa <= kappa_max  # well-conditioned (exactly cancelling rows have kappa = inf)
  kappa = np.where(good, kappa, 1.0)  # the other rows are not compared
  spread = np.max(np.where(live, np.abs(a64 - np.where(np.isfinite(c), c, 0)), 0.0), axis=axes,
                  keepdims=True, initial=0.0)

  # Values against scipy, at the accuracy the condition number allows.
  ref_value, ref_sign = _scipy(a64, b_eff, live, axes, True)
  value_tol = 8 * eps * (kappa * (n + spread + 1) + np.abs(c) + 1)
  check_rows = _squeeze(good, axes, keepdims)
  _check(value[check_rows], _squeeze(ref_value, axes, keepdims)[check_rows],
         _squeeze(value_tol, axes, keepdims)[check_rows], "value")
  if b is not None:
    np.testing.assert_array_equal(sign[check_rows], _squeeze(ref_sign, axes, keepdims)[check_rows])
  np.testing.assert_array_equal(value[_squeeze(dead, axes, keepdims)], -np.inf)

  # Gradients against float64 autodiff of the naive formula, on well-conditioned live rows.
  c_ref = np.where(dead, 0.0, c)
  ra, rb = _naive_vjp(jnp.asarray(a64), jnp.asarray(b_eff),
                      jnp.asarray(c_ref), jnp.asarray(ct_kept), axes)
  ra, rb = np.asarray(ra), np.asarray(rb)
  in_where = np.ones(a.shape, bool) if where is None else where
  rb = np.where(in_where, rb, 0.0)  # lsejax: no gradient for entries outside `where`
  ra, rb = np.where(dead, 0.0, ra), np.where(dead, 0.0, rb)  # the -inf convention
  rows = np.broadcast_to(good, a.shape)
  grad_tol = 8 * eps * (kappa * (n + spread + 3) + np.abs(a64 - c_ref) + 1)
  with np.errstate(invalid="ignore"):  # inf·0 in rows that are not compared
    tol_a, tol_b = grad_tol * np.abs(ra) + 1e-300, grad_tol * np.abs(rb) + 1e-300
  _check(ga[rows], ra[rows], tol_a[rows], "d/da")
  if b is not None:
    _check(gb[rows], rb[rows], tol_b[rows], "d/db")
  np.testing.assert_array_equal(ga[np.broadcast_to(dead, a.shape)], 0.0)
  np.testing.assert_array_equal(ga[~live], 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@settings(settings.get_profile(_PROFILE))
@given(data=st.data())
def test_infinities_and_nan_follow_the_conventions(dtype, data):
  dtype = np.dtype(dtype)
  a, b, where, axis, axes, keepdims, seed = data.draw(_problem(dtype, special=True))
  live, b_eff = _fold(a, b, where)
  a64 = a.astype(np.float64)
  c, total, magnitude, has_nan = _row_stats(a64, b_eff, live, axes)
  ct_kept = np.random.default_rng(seed).normal(size=c.shape)
  ct = _squeeze(ct_kept, axes, keepdims)

  value, sign, ga, gb = _call(a, b, where, axis, axes, keepdims, ct)

  eps = _EPS[dtype]
  n = max(1, int(np.prod([a.shape[k] for k in axes])))
  # Rows holding +inf: the +inf entries are ties sharing the mass in proportion to their
  # weights, T = Σ b over them; weights of both signs make inf − inf: a NaN row.
  at_inf = live & (a64 == np.inf)
  inf_weight = np.sum(np.where(at_inf, b_eff, 0.0), axis=axes, keepdims=True)
  mixed = (np.any(at_inf & (b_eff > 0), axis=axes, keepdims=True)
           & np.any(at_inf & (b_eff < 0), axis=axes, keepdims=True))
  has_nan = has_nan | mixed
  plus_inf = (c == np.inf) & ~has_nan
  finite_rows = ~has_nan & ~plus_inf
  dead = finite_rows & (total == 0)
  with np.errstate(all="ignore"):
    kappa = np.where(magnitude == 0, 1.0, magnitude / np.abs(total))
  kappa = np.where(finite_rows & ~dead, kappa, 1.0)  # +inf, NaN, dead rows: exact by convention

  # ---- values: NaN exactly in the rows with a live NaN; +inf rows by the tie convention; the
  # rest against scipy.
  ref_value, ref_sign = _scipy(a64, b_eff, live, axes, True)
  exp_value = np.where(has_nan, np.nan, ref_value)
  exp_sign = np.where(has_nan, np.nan, ref_sign)
  exp_value = np.where(plus_inf, np.inf, exp_value)
  exp_sign = np.where(plus_inf, np.sign(inf_weight), exp_sign)
  # The conventions agree with scipy on every row (+inf rows included).
  np.testing.assert_array_equal(np.isnan(ref_value), has_nan)
  np.testing.assert_array_equal(ref_value[plus_inf], np.inf)
  np.testing.assert_array_equal(ref_sign[plus_inf], np.sign(inf_weight[plus_inf]))

  checked = ~(finite_rows & ~dead & (kappa > _KAPPA_MAX[dtype]))  # ill-conditioned finite rows
  value_tol = 8 * eps * (kappa * (n + 5) + np.abs(np.where(np.isfinite(c), c, 0.0)) + 1)
  sq = lambda x: _squeeze(x, axes, keepdims)  # noqa: E731
  rows = sq(checked)
  _check(value[rows], sq(exp_value)[rows], sq(value_tol)[rows], "value")
  # NaN never leaks out of its row, whatever the conditioning.
  np.testing.assert_array_equal(np.isnan(value), sq(has_nan))
  if b is not None:
    np.testing.assert_array_equal(np.isnan(sign), sq(has_nan))
    sign_rows = sq(checked & ~has_nan)
    np.testing.assert_array_equal(sign[sign_rows], sq(exp_sign)[sign_rows])

  # ---- gradients, from the conventions: with s = exp(a − shift) (in a +inf row: 1 at the +inf
  # entries, exp(a − inf) elsewhere: 0, or NaN at an ignored NaN) and S = Σ_live b s,
  # ∂/∂a = ct·b·s/S on live entries and ∂/∂b = ct·s/S inside `where` (a zero weight too:
  # "the gradient with respect to a zero weight is still exp(a_i − lse)"); NaN rows: NaN there;
  # rows with no mass: 0.
  in_where = np.ones(a.shape, bool) if where is None else where
  with np.errstate(all="ignore"):
    shift = np.where(np.isfinite(c), c, 0.0)
    shifted = np.where(plus_inf, np.where(a64 == np.inf, 0.0, a64 - np.inf), a64 - shift)
    s = np.exp(shifted)
    denominator = np.where(plus_inf, inf_weight, total)
    q = ct_kept * s / denominator
    exp_ga = np.where(live, b_eff * q, 0.0)
    exp_gb = np.where(in_where, q, 0.0)
  for expected in (exp_ga, exp_gb):
    expected[np.broadcast_to(dead, a.shape)] = 0.0
    expected[np.broadcast_to(has_nan, a.shape) & live] = np.nan
  exp_gb[np.broadcast_to(has_nan, a.shape) & in_where] = np.nan
  grad_rows = np.broadcast_to(checked, a.shape)
  with np.errstate(all="ignore"):
    grad_tol = 8 * eps * (kappa * (n + 8) + np.abs(np.where(np.isfinite(shifted), shifted, 0)) + 1)
    tol_a, tol_b = grad_tol * np.abs(exp_ga) + 1e-300, grad_tol * np.abs(exp_gb) + 1e-300
  _check(ga[grad_rows], exp_ga[grad_rows], tol_a[grad_rows], "d/da")
  if b is not None:
    _check(gb[grad_rows], exp_gb[grad_rows], tol_b[grad_rows], "d/db")
  # NaN gradients only in rows whose value is NaN.
  nan_rows = np.broadcast_to(has_nan, a.shape)
  assert not np.isnan(ga[~nan_rows]).any()
  np.testing.assert_array_equal(ga[~live], 0.0)
