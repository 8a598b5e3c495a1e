"""lsejax.logsumexp: equivalence with references, the edge-case conventions, the Hessian and
argument validation.

float64 is on for the session (tests/conftest.py); lower-precision tests pass dtypes explicitly.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lsejax

inf, nan = np.inf, np.nan
SHAPE = (2, 3, 4)
AXES = [None, 0, 1, -1, (0, 2), (-1, -3), (1,), (0, 1, 2)]


def _inputs(seed, shape=SHAPE, mode="plain"):
  """Moderate float64 inputs: ``(a, b, where)`` for a mode in plain/b/where/b_where/signed."""
  rng = np.random.default_rng(seed)
  a = jnp.asarray(rng.normal(size=shape) * 2)
  b = where = None
  if mode in ("b", "b_where"):
    b = jnp.asarray(rng.uniform(0.5, 2.0, size=shape))
  if mode == "signed":
    b = jnp.asarray(rng.uniform(-2.0, 2.0, size=shape))
  if mode in ("where", "b_where", "signed"):
    w = rng.random(shape) < 0.7
    w.flat[0] = True
    where = jnp.asarray(w)
  return a, b, where


def _naive(a, b, where, axis, keepdims, return_sign):
  """``log|Σ b exp(a)|`` with no shift: the textbook formula, for moderate inputs only."""
  terms = jnp.exp(a) if b is None else b * jnp.exp(a)
  if where is not None:
    terms = jnp.where(where, terms, 0.0)
  total = jnp.sum(terms, axis=axis, keepdims=keepdims)
  if return_sign:
    return jnp.log(jnp.abs(total)), jnp.sign(total)
  return jnp.log(total)


def _jax_nn(a, b, where, axis, keepdims, return_sign):
  return jax.nn.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign,
                          where=where)


def _lse(a, b, where, axis, keepdims, return_sign):
  return lsejax.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign,
                          where=where)


def _vjp(fun, a, b, ct_seed):
  """Value and ``(∂/∂a, ∂/∂b)`` pulled back from a random cotangent of the first output."""
  def value(a, b):
    out = fun(a, b)
    return out[0] if isinstance(out, tuple) else out

  out, pullback = jax.vjp(value, a, b) if b is not None else jax.vjp(lambda a: value(a, None), a)
  ct = jnp.asarray(np.random.default_rng(ct_seed).normal(size=out.shape))
  grads = pullback(ct)
  return out, (grads if b is not None else (grads[0], None))


# ---- A. equivalence ------------------------------------------------------------------------


MODES = ["plain", "b", "where", "b_where", "signed"]
# Every axis with two modes and both keepdims, and every mode with axis=None and a tuple axis:
# covers the matrix without compiling all 80 combinations.
EQUIVALENCE_CASES = sorted(
    {(str(axis), axis, i % 2 == 0, MODES[i % 5]) for i, axis in enumerate(AXES)}
    | {(str(axis), axis, i % 2 == 1, MODES[(i + 2) % 5]) for i, axis in enumerate(AXES)}
    | {(str(axis), axis, k, mode) for axis in (None, (0, 2)) for k, mode in
       zip([False, True, False, True, False], MODES)}, key=str)


@pytest.mark.parametrize("axis, keepdims, mode", [c[1:] for c in EQUIVALENCE_CASES],
                         ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in EQUIVALENCE_CASES])
def test_value_and_gradients_equal_naive_and_jax_nn(axis, keepdims, mode, close):
  a, b, where = _inputs(hash((str(axis), keepdims, mode)) % 2**32, mode=mode)
  return_sign = mode == "signed"
  args = dict(axis=axis, keepdims=keepdims, return_sign=return_sign)

  got = _lse(a, b, where, **args)
  naive = _naive(a, b, where, **args)
  nn = _jax_nn(a, b, where, **args)
  if return_sign:
    close(got[0], naive[0])
    close(got[0], nn[0])
    np.testing.assert_array_equal(got[1], naive[1])
    np.testing.assert_array_equal(got[1], nn[1])
    assert got[0].shape == got[1].shape == naive[0].shape
  else:
    close(got, naive)
    close(got, nn)
    assert got.shape == naive.shape
    assert got.dtype == jnp.float64

  out, (ga, gb) = _vjp(lambda a, b: _lse(a, b, where, **args), a, b, 7)
  _, (na, nb) = _vjp(lambda a, b: _naive(a, b, where, **args), a, b, 7)
  _, (ja, jb) = _vjp(lambda a, b: _jax_nn(a, b, where, **args), a, b, 7)
  close(ga, na, rtol=1e-11, atol=1e-12)
  close(ga, ja, rtol=1e-11, atol=1e-12)
  if b is not None:
    close(gb, nb, rtol=1e-11, atol=1e-12)
    close(gb, jb, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("mode", ["plain", "b_where", "signed"])
@pytest.mark.parametrize("axis", [None, 1, (0, -1)], ids=str)
def test_jit_matches_eager(axis, mode, close):
  a, b, where = _inputs(3, mode=mode)
  return_sign = mode == "signed"

  def f(a, b, where):
    out = lsejax.logsumexp(a, axis=axis, b=b, where=where, return_sign=return_sign)
    return out[0] if return_sign else out

  close(jax.jit(f)(a, b, where), f(a, b, where), rtol=1e-14, atol=1e-14)
  argnums = (0,) if b is None else (0, 1)
  loss = lambda a, b, where: jnp.sum(jnp.sin(f(a, b, where)))  # noqa: E731
  eager = jax.grad(loss, argnums=argnums)(a, b, where)
  jitted = jax.jit(jax.grad(loss, argnums=argnums))(a, b, where)
  for e, j in zip(eager, jitted):
    close(j, e, rtol=1e-13, atol=1e-14)


def test_return_sign_outputs_and_shapes():
  a = jnp.zeros((2, 3))
  b = jnp.array([[1.0, 1.0, 1.0], [-1.0, -1.0, 1.0]])
  value, sign = lsejax.logsumexp(a, axis=1, b=b, return_sign=True, keepdims=True)
  assert value.shape == sign.shape == (2, 1)
  np.testing.assert_allclose(value, [[math.log(3)], [0.0]], rtol=1e-14, atol=1e-15)
  np.testing.assert_array_equal(sign, [[1.0], [-1.0]])
  assert sign.dtype == value.dtype == jnp.float64
  # The sign output is piecewise constant: it contributes nothing to a gradient.
  g = jax.grad(lambda a: jnp.sum(lsejax.logsumexp(a, axis=1, b=b, return_sign=True)[1]))(a)
  np.testing.assert_array_equal(g, np.zeros((2, 3)))


def test_mixed_dtypes_promote():
  a = jnp.zeros(3, jnp.float32)
  b = jnp.ones(3, jnp.float64)
  assert lsejax.logsumexp(a, b=b).dtype == jnp.float64
  assert lsejax.logsumexp(a).dtype == jnp.float32
  half = jnp.zeros(3, jnp.float16)
  assert lsejax.logsumexp(half, b=jnp.ones(3, jnp.float16)).dtype == jnp.float16
  assert lsejax.logsumexp(np.zeros(3, np.float32)).dtype == jnp.float32
  np.testing.assert_allclose(lsejax.logsumexp([1.0, 2.0, 3.0]), 3.40760596444438, rtol=1e-14)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_low_precision_against_float64(dtype, close):
  a64, b64, where = _inputs(11, shape=(3, 50), mode="b_where")
  a, b = a64.astype(dtype), b64.astype(dtype)
  got = lsejax.logsumexp(a, axis=1, b=b, where=where)
  assert got.dtype == dtype
  ref = _naive(a.astype(jnp.float64), b.astype(jnp.float64), where, 1, False, False)
  close(got, ref, dtype=dtype)
  ga, gb = jax.grad(lambda a, b: jnp.sum(lsejax.logsumexp(a, axis=1, b=b, where=where)),
                    argnums=(0, 1))(a, b)
  assert ga.dtype == gb.dtype == dtype
  ra, rb = jax.grad(lambda a, b: jnp.sum(_naive(a, b, where, 1, False, False)),
                    argnums=(0, 1))(a.astype(jnp.float64), b.astype(jnp.float64))
  close(ga, ra, dtype=dtype)
  close(gb, rb, dtype=dtype)


# ---- C.1 no mass: -inf, zero gradient ----------------------------------------------------------


def test_all_neg_inf_row_is_neg_inf_with_zero_gradient():
  x = jnp.array([-inf, -inf])
  assert lsejax.logsumexp(x) == -inf
  np.testing.assert_array_equal(jax.grad(lsejax.logsumexp)(x), [0.0, 0.0])


def test_dead_row_does_not_disturb_live_row():
  x = jnp.array([[1.0, 2.0], [-inf, -inf]])
  np.testing.assert_allclose(lsejax.logsumexp(x, axis=1), [2.313261687518223, -inf], rtol=1e-15)
  g = jax.grad(lambda x: jnp.sum(lsejax.logsumexp(x, axis=1)))(x)
  np.testing.assert_allclose(g, [[0.2689414213699951, 0.7310585786300049], [0.0, 0.0]],
                             rtol=1e-14)
  assert np.isfinite(g).all()


def test_fully_masked_row_is_neg_inf_with_zero_gradient():
  x = jnp.array([1.0, 2.0])
  where = jnp.array([False, False])
  assert lsejax.logsumexp(x, where=where) == -inf
  np.testing.assert_array_equal(jax.grad(lambda x: lsejax.logsumexp(x, where=where))(x), [0, 0])
  b = jnp.array([2.0, 3.0])
  ga, gb = jax.grad(lambda x, b: lsejax.logsumexp(x, b=b, where=where), argnums=(0, 1))(x, b)
  np.testing.assert_array_equal(ga, [0, 0])
  np.testing.assert_array_equal(gb, [0, 0])


def test_all_zero_weights_is_neg_inf_with_zero_gradient():
  x = jnp.array([1.0, 2.0])
  b = jnp.zeros(2)
  value, sign = lsejax.logsumexp(x, b=b, return_sign=True)
  assert value == -inf and sign == 0
  ga, gb = jax.grad(lambda x, b: lsejax.logsumexp(x, b=b), argnums=(0, 1))(x, b)
  np.testing.assert_array_equal(ga, [0, 0])
  np.testing.assert_array_equal(gb, [0, 0])


def test_second_derivative_of_dead_row_is_zero_not_nan():
  x = jnp.array([-inf, -inf])
  np.testing.assert_array_equal(jax.jacrev(jax.jacrev(lsejax.logsumexp))(x), np.zeros((2, 2)))


def test_second_derivative_of_dead_row_next_to_finite_rows():
  x = jnp.array([[1.0, 2.0], [-inf, -inf], [0.0, 0.0]])
  h = jax.jacrev(jax.jacrev(lambda x: lsejax.logsumexp(x, axis=1)))(x)  # [3, 3, 2, 3, 2]
  assert not np.isnan(h).any()
  np.testing.assert_array_equal(h[1], np.zeros((3, 2, 3, 2)))
  np.testing.assert_array_equal(h[:, :, :, 1], np.zeros((3, 3, 2, 2)))
  for row in (0, 2):
    p = np.asarray(jax.nn.softmax(x[row]))
    np.testing.assert_allclose(h[row, row, :, row, :], np.diag(p) - np.outer(p, p), rtol=1e-13,
                               atol=1e-15)


def test_nested_logsumexp_of_logsumexp_results():
  def f(x):
    inner = lsejax.logsumexp(x, axis=1)  # one dead row
    return lsejax.logsumexp(inner)

  x = jnp.array([[1.0, 2.0], [-inf, -inf], [0.5, -inf]])
  np.testing.assert_allclose(f(x), np.log(np.exp(1) + np.exp(2) + np.exp(0.5)), rtol=1e-14)
  g = jax.grad(f)(x)
  expected = np.exp(np.array([[1.0, 2.0], [-inf, -inf], [0.5, -inf]]))
  np.testing.assert_allclose(g, expected / expected.sum(), rtol=1e-14)
  # Everything dead: -inf and an all-zero gradient, also in second order.
  dead = jnp.full((2, 2), -inf)
  assert f(dead) == -inf
  np.testing.assert_array_equal(jax.grad(f)(dead), np.zeros((2, 2)))
  np.testing.assert_array_equal(jax.jacrev(jax.jacrev(f))(dead), np.zeros((2, 2, 2, 2)))


# ---- C.2 +inf: the limit of the softmax --------------------------------------------------------


def test_plus_inf_entry_takes_all_the_mass():
  x = jnp.array([0.0, inf])
  assert lsejax.logsumexp(x) == inf
  np.testing.assert_array_equal(jax.grad(lsejax.logsumexp)(x), [0.0, 1.0])


def test_single_infinities():
  assert lsejax.logsumexp(jnp.array([inf])) == inf
  assert lsejax.logsumexp(jnp.array([-inf])) == -inf
  np.testing.assert_array_equal(jax.grad(lsejax.logsumexp)(jnp.array([inf])), [1.0])
  np.testing.assert_array_equal(jax.grad(lsejax.logsumexp)(jnp.array([-inf])), [0.0])


def test_tied_plus_inf_entries_share_the_gradient():
  x = jnp.array([inf, 0.0, inf])
  assert lsejax.logsumexp(x) == inf
  np.testing.assert_array_equal(jax.grad(lsejax.logsumexp)(x), [0.5, 0.0, 0.5])
  np.testing.assert_array_equal(lsejax.softmax(jnp.array([inf, 0.0])), [1.0, 0.0])
  np.testing.assert_array_equal(lsejax.softmax(x), [0.5, 0.0, 0.5])


def test_plus_inf_with_weights():
  a = jnp.array([inf, inf, 1.0])
  b = jnp.array([1.0, 3.0, 5.0])
  ga, gb = jax.grad(lambda a, b: lsejax.logsumexp(a, b=b), argnums=(0, 1))(a, b)
  np.testing.assert_array_equal(ga, [0.25, 0.75, 0.0])
  np.testing.assert_array_equal(gb, [0.25, 0.25, 0.0])
  # A negative total at +inf: (inf, -1) with return_sign, NaN without.
  b = jnp.array([-1.0, -1.0, 1.0])
  value, sign = lsejax.logsumexp(a, b=b, return_sign=True)
  assert value == inf and sign == -1
  assert np.isnan(lsejax.logsumexp(a, b=b))


@pytest.mark.parametrize("b", [[1.0, -1.0], [1.0, -2.0], [-3.0, 0.5]], ids=str)
def test_plus_inf_entries_with_weights_of_both_signs_are_nan(b):
  # inf − inf is indeterminate: the row is NaN throughout (value, sign and gradients), as in
  # scipy, and not "exactly cancelling" (-inf, sign 0).
  a = jnp.array([inf, inf, 0.0])
  b = jnp.array([*b, 1.0])
  value, sign = lsejax.logsumexp(a, b=b, return_sign=True)
  assert np.isnan(value) and np.isnan(sign), (value, sign)
  assert np.isnan(lsejax.logsumexp(a, b=b))
  ga, gb = jax.grad(lambda a, b: lsejax.logsumexp(a, b=b, return_sign=True)[0],
                    argnums=(0, 1))(a, b)
  assert np.isnan(ga).all() and np.isnan(gb).all(), (ga, gb)
  # Other rows are untouched.
  rows = jnp.stack([a, jnp.array([0.0, 1.0, 2.0])])
  values = lsejax.logsumexp(rows, axis=1, b=jnp.stack([b, jnp.ones(3)]), return_sign=True)[0]
  assert np.isnan(values[0])
  np.testing.assert_allclose(values[1], np.log(np.exp([0.0, 1.0, 2.0]).sum()), rtol=1e-15)


def test_plus_inf_entries_with_negative_weights():
  a = jnp.array([inf, inf, 0.0])
  b = jnp.array([-1.0, -2.0, 5.0])
  value, sign = lsejax.logsumexp(a, b=b, return_sign=True)
  assert value == inf and sign == -1
  ga, gb = jax.grad(lambda a, b: lsejax.logsumexp(a, b=b, return_sign=True)[0],
                    argnums=(0, 1))(a, b)
  np.testing.assert_allclose(ga, [1 / 3, 2 / 3, 0.0], rtol=1e-15)
  np.testing.assert_allclose(gb, [-1 / 3, -1 / 3, 0.0], rtol=1e-15)


# ---- C.3 NaN stays in its row ----------------------------------------------------------------


def test_nan_poisons_only_its_row():
  x = jnp.array([[nan, 1.0], [1.0, 2.0], [-inf, -inf]])
  value = lsejax.logsumexp(x, axis=1)
  assert np.isnan(value[0])
  np.testing.assert_allclose(value[1:], [2.313261687518223, -inf], rtol=1e-15)
  g = jax.grad(lambda x: jnp.sum(lsejax.logsumexp(x, axis=1)))(x)
  assert np.isnan(g[0]).all()
  np.testing.assert_allclose(g[1:], [[0.2689414213699951, 0.7310585786300049], [0, 0]],
                             rtol=1e-14)


def test_nan_at_zero_weight_is_ignored():
  a = jnp.array([nan, 1.0])
  b = jnp.array([0.0, 1.0])
  assert lsejax.logsumexp(a, b=b) == 1.0
  np.testing.assert_array_equal(jax.grad(lambda a: lsejax.logsumexp(a, b=b))(a), [0.0, 1.0])
  # ∂/∂b_i is exp(a_i − lse) even at a zero weight: NaN for a NaN a_i, 1 for the live one.
  gb = jax.grad(lambda b: lsejax.logsumexp(a, b=b))(b)
  assert np.isnan(gb[0]) and gb[1] == 1.0


def test_nan_outside_where_is_ignored():
  a = jnp.array([nan, 1.0, inf])
  where = jnp.array([False, True, False])
  assert lsejax.logsumexp(a, where=where) == 1.0
  np.testing.assert_array_equal(jax.grad(lambda a: lsejax.logsumexp(a, where=where))(a),
                                [0.0, 1.0, 0.0])
  b = jnp.array([2.0, 1.0, 3.0])
  ga, gb = jax.grad(lambda a, b: lsejax.logsumexp(a, b=b, where=where), argnums=(0, 1))(a, b)
  np.testing.assert_array_equal(ga, [0.0, 1.0, 0.0])
  np.testing.assert_array_equal(gb, [0.0, 1.0, 0.0])


def test_nan_in_long_float32_row_is_not_dropped():
  # XLA:CPU's reduce_max drops NaN in float32 rows of 4096+ elements; the value must not.
  x = jnp.zeros(5000, jnp.float32).at[4321].set(nan)
  value = lsejax.logsumexp(x)
  assert value.dtype == jnp.float32
  assert np.isnan(value)
  assert np.isnan(jax.grad(lsejax.logsumexp)(x)).all()
  rows = jnp.zeros((2, 5000), jnp.float32).at[0, 4999].set(nan)
  value = lsejax.logsumexp(rows, axis=1)
  assert np.isnan(value[0])
  np.testing.assert_allclose(value[1], np.log(5000), rtol=1e-6)


# ---- C.4 weights: zero, negative, return_sign --------------------------------------------------


def test_zero_weight_gradient_reverse_mode():
  a = jnp.zeros(3)
  b = jnp.array([2.0, 0.0, 5.0])
  np.testing.assert_allclose(lsejax.logsumexp(a, b=b), math.log(7), rtol=1e-15)
  gb = jax.grad(lambda b: lsejax.logsumexp(a, b=b))(b)
  np.testing.assert_allclose(gb, [1 / 7] * 3, rtol=1e-15)
  ga = jax.grad(lambda a: lsejax.logsumexp(a, b=b))(a)
  np.testing.assert_allclose(ga, [2 / 7, 0.0, 5 / 7], rtol=1e-15)


def test_zero_weight_gradient_forward_mode():
  a = jnp.zeros(3)
  b = jnp.array([2.0, 0.0, 5.0])
  f = lsejax.forward_mode(lambda b: lsejax.logsumexp(a, b=b))
  np.testing.assert_allclose(jax.jacfwd(f)(b), [1 / 7] * 3, rtol=1e-15)
  value, tangent = jax.jvp(f, (b,), (jnp.array([1.0, 2.0, 4.0]),))
  np.testing.assert_allclose(value, math.log(7), rtol=1e-15)
  np.testing.assert_allclose(tangent, 7 / 7, rtol=1e-15)
  fa = lsejax.forward_mode(lambda a: lsejax.logsumexp(a, b=b))
  np.testing.assert_allclose(jax.jacfwd(fa)(a), [2 / 7, 0.0, 5 / 7], rtol=1e-15)


def test_negative_total_with_return_sign():
  a = jnp.array([0.0, 1.0])
  b = jnp.array([1.0, -1.0])
  value, sign = lsejax.logsumexp(a, b=b, return_sign=True)
  np.testing.assert_allclose(value, math.log(math.e - 1), rtol=1e-14)
  np.testing.assert_allclose(value, 0.5413248546129181, rtol=1e-14)
  assert sign == -1
  g = jax.grad(lambda a: lsejax.logsumexp(a, b=b, return_sign=True)[0])(a)
  np.testing.assert_allclose(g, [-1 / (math.e - 1), math.e / (math.e - 1)], rtol=1e-14)
  np.testing.assert_allclose(g, [-0.5819767068693265, 1.5819767068693265], rtol=1e-14)


def test_negative_total_without_return_sign_is_nan():
  a = jnp.array([0.0, 1.0])
  b = jnp.array([1.0, -1.0])
  assert np.isnan(lsejax.logsumexp(a, b=b))
  assert np.isnan(jax.grad(lambda a: lsejax.logsumexp(a, b=b))(a)).all()


def test_exact_cancellation_and_empty_have_sign_zero():
  value, sign = lsejax.logsumexp(jnp.zeros(2), b=jnp.array([1.0, -1.0]), return_sign=True)
  assert value == -inf and sign == 0
  value, sign = lsejax.logsumexp(jnp.zeros(0), return_sign=True)
  assert value == -inf and sign == 0
  value, sign = lsejax.logsumexp(jnp.zeros((0, 2)), axis=0, return_sign=True)
  np.testing.assert_array_equal(value, [-inf, -inf])
  np.testing.assert_array_equal(sign, [0, 0])
  g = jax.grad(lambda a: lsejax.logsumexp(a, b=jnp.array([1.0, -1.0]), return_sign=True)[0])(
      jnp.zeros(2))
  np.testing.assert_array_equal(g, [0.0, 0.0])


# ---- C.5 a dominant term keeps the tiny rest (log1p) ------------------------------------------


@pytest.mark.parametrize("a, b, expected", [
    ([0.0, -40.0], None, np.log1p(np.exp(-40.0))),
    ([-40.0, 0.0], None, np.log1p(np.exp(-40.0))),
    ([0.0, -30.0, -35.0], None, np.log1p(np.exp(-30.0) + np.exp(-35.0))),
    ([0.0, 0.0, -40.0], None, np.log(2.0) + np.log1p(np.exp(-40.0) / 2)),
    ([5.0, 5.0 - 40.0], None, 5.0 + np.log1p(np.exp(-40.0))),
    ([0.0, -40.0], [1.0, 3.0], np.log1p(3 * np.exp(-40.0))),
    ([0.0, -40.0], [1.0, -1.0], np.log1p(-np.exp(-40.0))),
    ([0.0, -20.0, -20.0], [1.0, 1.0, -0.5], np.log1p(0.5 * np.exp(-20.0))),
    ([0.0] + [-50.0] * 7, None, np.log1p(7 * np.exp(-50.0))),
], ids=str)
def test_float64_tiny_rest_is_kept(a, b, expected):
  got = lsejax.logsumexp(jnp.asarray(a), b=None if b is None else jnp.asarray(b))
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_float64_log1p_headline_value():
  got = float(lsejax.logsumexp(jnp.array([0.0, -40.0])))
  assert got != 0.0
  assert abs(got - 4.248354255291589e-18) <= 1e-12 * 4.248354255291589e-18


# ---- C.6 float16 / bfloat16 --------------------------------------------------------------------


def test_float16_sum_that_overflows_float16():
  x = jnp.zeros(65536, jnp.float16)  # Σ exp(0) = 65536 > float16 max 65504
  value = lsejax.logsumexp(x)
  assert value.dtype == jnp.float16
  np.testing.assert_allclose(float(value), math.log(65536), rtol=1e-3)
  assert float(value) == pytest.approx(11.09, abs=5e-3)
  g = jax.grad(lsejax.logsumexp)(x)
  assert g.dtype == jnp.float16
  np.testing.assert_array_equal(np.asarray(g, np.float64), np.full(65536, 1 / 65536))


def test_float16_log_softmax_long_row():
  x = jnp.zeros(70000, jnp.float16)
  y = lsejax.log_softmax(x)
  assert y.dtype == jnp.float16
  np.testing.assert_allclose(np.asarray(y, np.float64), -math.log(70000), atol=1e-2)
  assert float(y[0]) == pytest.approx(-11.156, abs=1e-2)
  g = jax.grad(lambda x: jnp.sum(lsejax.log_softmax(x)[:3]))(x)
  assert g.dtype == jnp.float16
  assert np.isfinite(np.asarray(g, np.float64)).all()
  np.testing.assert_allclose(np.asarray(g[:3], np.float64), 1 - 3 / 70000, rtol=1e-3)
  np.testing.assert_allclose(np.asarray(g[3:], np.float64), -3 / 70000, rtol=1e-2)


def test_bfloat16_returns_bfloat16():
  x = jnp.zeros(65536, jnp.bfloat16)
  value = lsejax.logsumexp(x)
  assert value.dtype == jnp.bfloat16
  np.testing.assert_allclose(float(value), math.log(65536), rtol=1e-2)
  g = jax.grad(lsejax.logsumexp)(x)
  assert g.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(g, np.float64), 1 / 65536, rtol=1e-2)
  y = lsejax.log_softmax(jnp.zeros(70000, jnp.bfloat16))
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y, np.float64), -math.log(70000), rtol=1e-2)
  assert lsejax.softmax(jnp.zeros(4, jnp.bfloat16)).dtype == jnp.bfloat16


# ---- C.7 empty, integer and bool input ---------------------------------------------------------


def test_empty_inputs():
  assert lsejax.logsumexp(jnp.zeros(0)) == -inf
  assert lsejax.logsumexp([]) == -inf
  np.testing.assert_array_equal(lsejax.logsumexp(jnp.zeros((0, 2)), axis=0), [-inf, -inf])
  assert lsejax.logsumexp(jnp.zeros((0, 2)), axis=1).shape == (0,)
  assert lsejax.logsumexp(jnp.zeros((0, 2)), axis=0, keepdims=True).shape == (1, 2)
  assert jax.grad(lsejax.logsumexp)(jnp.zeros(0)).shape == (0,)
  g = jax.grad(lambda x: jnp.sum(lsejax.logsumexp(x, axis=0)))(jnp.zeros((0, 2)))
  assert g.shape == (0, 2)


def test_integer_input_is_promoted_to_float():
  got = lsejax.logsumexp(jnp.array([20, 30, 100], jnp.int32))
  assert jnp.issubdtype(got.dtype, jnp.floating)
  assert float(got) == 100.0
  got = lsejax.logsumexp([1, 2, 3])
  np.testing.assert_allclose(got, 3.40760596444438, rtol=1e-14)


def test_bool_input_is_promoted_to_float():
  got = lsejax.logsumexp(jnp.array([True, False]))
  assert jnp.issubdtype(got.dtype, jnp.floating)
  np.testing.assert_allclose(got, np.log(np.e + 1), rtol=1e-14)


# ---- C.8 complex input -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
@pytest.mark.parametrize("axis", [None, 0, -1], ids=str)
def test_complex_matches_jax_nn(axis, dtype, close):
  rng = np.random.default_rng(5)
  z = jnp.asarray(rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4)), dtype)
  got = lsejax.logsumexp(z, axis=axis)
  assert got.dtype == dtype
  close(got, jax.nn.logsumexp(z, axis=axis))
  f = lambda z: jnp.sum(lsejax.logsumexp(z, axis=axis))  # noqa: E731
  g = lambda z: jnp.sum(jax.nn.logsumexp(z, axis=axis))  # noqa: E731
  close(jax.grad(f, holomorphic=True)(z), jax.grad(g, holomorphic=True)(z))


def test_complex_with_weights_and_sign():
  z = jnp.array([1 + 1j, 2 - 0.5j, -0.3 + 2j])
  b = jnp.array([1.0 + 0j, 2.0 + 0j, 0.5 + 0j])
  np.testing.assert_allclose(lsejax.logsumexp(z, b=b), jax.nn.logsumexp(z, b=b), rtol=1e-13)
  value, sign = lsejax.logsumexp(z, b=b, return_sign=True)
  ref_value, ref_sign = jax.nn.logsumexp(z, b=b, return_sign=True)
  np.testing.assert_allclose(value, ref_value, rtol=1e-13)
  np.testing.assert_allclose(sign, ref_sign, rtol=1e-13)
  np.testing.assert_allclose(
      jax.grad(lambda z: lsejax.logsumexp(z, b=b), holomorphic=True)(z),
      jax.grad(lambda z: jax.nn.logsumexp(z, b=b), holomorphic=True)(z), rtol=1e-13)


# ---- D. Hessian --------------------------------------------------------------------------------


def test_hessian_reverse_over_reverse_is_diag_p_minus_ppt():
  x = jnp.array([0.3, -1.2, 2.5, 0.0, 1.1])
  p = np.asarray(jax.nn.softmax(x))
  expected = np.diag(p) - np.outer(p, p)
  np.testing.assert_allclose(jax.jacrev(jax.jacrev(lsejax.logsumexp))(x), expected, rtol=1e-12,
                             atol=1e-12)
  np.testing.assert_allclose(jax.hessian(lsejax.forward_mode(lsejax.logsumexp))(x), expected,
                             rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(jax.jacfwd(jax.jacrev(lsejax.forward_mode(lsejax.logsumexp)))(x),
                             expected, rtol=1e-12, atol=1e-12)


def test_hessian_with_weights_and_mask():
  x = jnp.array([0.3, -1.2, 2.5, 0.0, 1.1])
  b = jnp.array([1.0, 2.0, 0.5, 0.0, 3.0])
  where = jnp.array([True, True, True, True, False])
  q = np.asarray(b * jnp.exp(x)) * np.asarray(where)
  q = q / q.sum()
  expected = np.diag(q) - np.outer(q, q)
  f = lambda x: lsejax.logsumexp(x, b=b, where=where)  # noqa: E731
  np.testing.assert_allclose(jax.jacrev(jax.jacrev(f))(x), expected, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(jax.hessian(lsejax.forward_mode(f))(x), expected, rtol=1e-12,
                             atol=1e-12)


def test_forward_mode_without_wrapper_is_refused():
  x = jnp.array([0.0, 1.0])
  with pytest.raises(TypeError):
    jax.jvp(lsejax.logsumexp, (x,), (x,))
  with pytest.raises(TypeError):
    jax.jacfwd(lsejax.logsumexp)(x)
  with pytest.raises(TypeError):
    jax.jacrev(jax.jacfwd(lsejax.logsumexp))(x)


def test_forward_over_reverse_differentiates_the_custom_backward():
  # jax.hessian is jacfwd(jacrev(f)): the inner jacrev turns the custom_vjp into its fwd/bwd
  # pair, so the outer forward pass differentiates the hand-written backward and needs no
  # forward_mode.
  x = jnp.array([0.3, -1.2, 2.5])
  p = np.asarray(jax.nn.softmax(x))
  np.testing.assert_allclose(jax.hessian(lsejax.logsumexp)(x), np.diag(p) - np.outer(p, p),
                             rtol=1e-12, atol=1e-12)


# ---- F. bad arguments --------------------------------------------------------------------------


def test_b_not_broadcastable():
  with pytest.raises(ValueError, match="b"):
    lsejax.logsumexp(jnp.zeros((2, 3)), b=jnp.ones(4))
  with pytest.raises(ValueError, match="b"):  # would broadcast a up: not allowed
    lsejax.logsumexp(jnp.zeros(3), b=jnp.ones((2, 3)))


def test_b_broadcasts():
  got = lsejax.logsumexp(jnp.zeros((2, 3)), axis=1, b=jnp.array([1.0, 2.0, 3.0]))
  np.testing.assert_allclose(got, [math.log(6)] * 2, rtol=1e-15)
  got = lsejax.logsumexp(jnp.zeros((2, 3)), axis=1, b=2.0)
  np.testing.assert_allclose(got, [math.log(6)] * 2, rtol=1e-15)


def test_where_not_broadcastable():
  with pytest.raises(ValueError, match="where"):
    lsejax.logsumexp(jnp.zeros((2, 3)), where=jnp.ones(2, bool))


def test_where_broadcasts():
  got = lsejax.logsumexp(jnp.zeros((2, 3)), axis=1, where=jnp.array([True, False, True]))
  np.testing.assert_allclose(got, [math.log(2)] * 2, rtol=1e-15)


@pytest.mark.parametrize("axis", [2, -3, (0, 2), (0, 0), (1, -1), [5]], ids=str)
def test_bad_axis_value(axis):
  with pytest.raises(ValueError, match="axis"):
    lsejax.logsumexp(jnp.zeros((2, 3)), axis=axis)


@pytest.mark.parametrize("axis", ["x", 1.0, (0, "1"), (0.5,)], ids=str)
def test_bad_axis_type(axis):
  with pytest.raises(TypeError, match="axis"):
    lsejax.logsumexp(jnp.zeros((2, 3)), axis=axis)


@pytest.mark.parametrize("a", ["abc", ["a", "b"], None, {"x": 1}], ids=str)
def test_bad_input_type(a):
  with pytest.raises(TypeError):
    lsejax.logsumexp(a)


def test_float_where_mask_is_refused():
  with pytest.raises(TypeError, match="where"):
    lsejax.logsumexp(jnp.zeros(3), where=jnp.ones(3))


def test_bad_flag_types():
  with pytest.raises(TypeError, match="keepdims"):
    lsejax.logsumexp(jnp.zeros(3), keepdims="yes")
  with pytest.raises(TypeError, match="return_sign"):
    lsejax.logsumexp(jnp.zeros(3), return_sign=None)


@pytest.mark.parametrize("b", [2, True, np.array([1, 2], np.int32)])
def test_integer_or_bool_weights_keep_a_low_precision_dtype(b):
  a = jnp.array([1.0, 2.0], jnp.float16)
  assert lsejax.logsumexp(a, b=b).dtype == jnp.float16
  assert lsejax.logsumexp(a.astype(jnp.float32), b=b).dtype == jnp.float32
