"""lsejax.softmax and lsejax.log_softmax: references, masks, conventions and Jacobians."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lsejax

inf, nan = np.inf, np.nan
SHAPE = (2, 3, 4)


def _x(seed, shape=SHAPE):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * 2)


def _mask(seed, shape=SHAPE):
  w = np.random.default_rng(seed).random(shape) < 0.7
  w.flat[0] = False  # at least one excluded entry
  return jnp.asarray(w)


def _naive_softmax(x, axis, where):
  e = jnp.exp(x)
  if where is not None:
    e = jnp.where(where, e, 0.0)
  return e / jnp.sum(e, axis=axis, keepdims=True)


def _naive_log_softmax(x, axis, where):
  e = jnp.exp(x)
  if where is not None:
    e = jnp.where(where, e, 0.0)
  y = x - jnp.log(jnp.sum(e, axis=axis, keepdims=True))
  return y if where is None else jnp.where(where, y, -jnp.inf)


FUNCS = {
    "softmax": (lsejax.softmax, jax.nn.softmax, _naive_softmax),
    "log_softmax": (lsejax.log_softmax, jax.nn.log_softmax, _naive_log_softmax),
}
AXES = [-1, 0, 1, (0, 2), (-1, -2), None]


def _vjp(fun, x, seed):
  out, pullback = jax.vjp(fun, x)
  ct = jnp.asarray(np.random.default_rng(seed).normal(size=out.shape))
  return out, pullback(ct)[0]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", FUNCS)
def test_matches_jax_nn_and_naive_gradient(name, axis, masked, close):
  ours, theirs, naive = FUNCS[name]
  x = _x(1)
  where = _mask(2) if masked else None
  got = ours(x, axis=axis, where=where)
  assert got.shape == x.shape and got.dtype == x.dtype
  close(got, theirs(x, axis=axis, where=where))
  naive_axis = tuple(range(x.ndim)) if axis is None else axis
  close(got, naive(x, naive_axis, where))

  _, g = _vjp(lambda x: ours(x, axis=axis, where=where), x, 3)
  _, g_naive = _vjp(lambda x: naive(x, naive_axis, where), x, 3)
  close(g, g_naive, rtol=1e-11, atol=1e-12)
  if masked:
    fill = 0.0 if name == "softmax" else -inf
    np.testing.assert_array_equal(np.asarray(got)[~np.asarray(where)], fill)
    np.testing.assert_array_equal(np.asarray(g)[~np.asarray(where)], 0.0)


@pytest.mark.parametrize("name", FUNCS)
def test_default_axis_is_last(name):
  ours, theirs, _ = FUNCS[name]
  x = _x(4)
  np.testing.assert_allclose(ours(x), theirs(x, axis=-1), rtol=1e-13, atol=1e-14)
  np.testing.assert_allclose(ours(x), ours(x, axis=2), rtol=0, atol=0)


def test_softmax_is_the_gradient_of_logsumexp():
  x = _x(5)
  for axis in (-1, (0, 1)):
    g = jax.grad(lambda x: jnp.sum(lsejax.logsumexp(x, axis=axis)))(x)
    np.testing.assert_allclose(lsejax.softmax(x, axis=axis), g, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(lsejax.log_softmax(x, axis=axis),
                               x - lsejax.logsumexp(x, axis=axis, keepdims=True), rtol=1e-13)


# ---- Jacobians ---------------------------------------------------------------------------------


def test_softmax_jacobian_closed_form_reverse_and_forward():
  x = jnp.array([0.3, -1.2, 2.5, 0.0])
  p = np.asarray(jax.nn.softmax(x))
  expected = np.diag(p) - np.outer(p, p)
  np.testing.assert_allclose(jax.jacrev(lsejax.softmax)(x), expected, rtol=1e-13, atol=1e-15)
  np.testing.assert_allclose(jax.jacfwd(lsejax.forward_mode(lsejax.softmax))(x), expected,
                             rtol=1e-13, atol=1e-15)
  np.testing.assert_allclose(jax.jacrev(lsejax.forward_mode(lsejax.softmax))(x), expected,
                             rtol=1e-13, atol=1e-15)


def test_log_softmax_jacobian_closed_form_reverse_and_forward():
  x = jnp.array([0.3, -1.2, 2.5, 0.0])
  p = np.asarray(jax.nn.softmax(x))
  expected = np.eye(4) - np.outer(np.ones(4), p)
  np.testing.assert_allclose(jax.jacrev(lsejax.log_softmax)(x), expected, rtol=1e-13,
                             atol=1e-15)
  np.testing.assert_allclose(jax.jacfwd(lsejax.forward_mode(lsejax.log_softmax))(x), expected,
                             rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", FUNCS)
def test_jacobians_with_mask_and_tuple_axis_agree(name, close):
  ours, _, naive = FUNCS[name]
  x = _x(6, (2, 3, 2))
  where = _mask(7, (2, 3, 2))
  f = lambda x: ours(x, axis=(0, 2), where=where)  # noqa: E731
  rev = jax.jacrev(f)(x)
  fwd = jax.jacfwd(lsejax.forward_mode(f))(x)
  close(fwd, rev, rtol=1e-12, atol=1e-14)
  # The naive formula's Jacobian, with the masked output rows (constants) zeroed.
  ref = np.asarray(jax.jacrev(lambda x: naive(x, (0, 2), where))(x))
  close(rev, ref, rtol=1e-11, atol=1e-13)
  dead = ~np.asarray(where)
  np.testing.assert_array_equal(np.asarray(rev)[dead], 0.0)  # masked outputs: constant
  np.testing.assert_array_equal(np.asarray(rev)[..., dead], 0.0)  # masked inputs: no influence


@pytest.mark.parametrize("name", FUNCS)
def test_second_derivatives_match_naive(name, close):
  ours, _, naive = FUNCS[name]
  x = jnp.array([[0.3, -1.2, 2.5], [1.0, 0.0, -0.5]])
  f = lambda x: jnp.sum(jnp.sin(ours(x, axis=1)))  # noqa: E731
  g = lambda x: jnp.sum(jnp.sin(naive(x, 1, None)))  # noqa: E731
  close(jax.hessian(f)(x), jax.hessian(g)(x), rtol=1e-11, atol=1e-13)
  close(jax.jacrev(jax.jacrev(f))(x), jax.hessian(g)(x), rtol=1e-11, atol=1e-13)
  close(jax.hessian(lsejax.forward_mode(f))(x), jax.hessian(g)(x), rtol=1e-11, atol=1e-13)


def test_forward_mode_required_for_jvp():
  x = jnp.array([0.0, 1.0])
  for fun in (lsejax.softmax, lsejax.log_softmax):
    with pytest.raises(TypeError):
      jax.jvp(fun, (x,), (x,))
    y, t = jax.jvp(lsejax.forward_mode(fun), (x,), (jnp.array([1.0, -1.0]),))
    _, pullback = jax.vjp(fun, x)
    np.testing.assert_allclose(y, fun(x), rtol=0, atol=0)
    # ⟨t, e_i⟩ = ⟨J v, e_i⟩ = ⟨v, Jᵀ e_i⟩
    for i in range(2):
      e = jnp.zeros(2).at[i].set(1.0)
      np.testing.assert_allclose(t[i], jnp.dot(pullback(e)[0], jnp.array([1.0, -1.0])),
                                 rtol=1e-14, atol=1e-15)


# ---- conventions -------------------------------------------------------------------------------


def test_plus_inf_rows_take_the_limit():
  x = jnp.array([[inf, 0.0, inf], [0.0, inf, 1.0]])
  np.testing.assert_array_equal(lsejax.softmax(x), [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
  y = lsejax.log_softmax(x)
  np.testing.assert_allclose(y, [[-math.log(2), -inf, -math.log(2)], [-inf, 0.0, -inf]],
                             rtol=1e-15)
  np.testing.assert_array_equal(lsejax.softmax(jnp.array([inf, 0.0])), [1.0, 0.0])
  assert np.isfinite(jax.jacrev(lsejax.softmax)(x[0])).all()


def test_dead_rows_are_zero_or_neg_inf_with_zero_gradient():
  x = jnp.array([[-inf, -inf, -inf], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
  where = jnp.array([[True, True, True], [True, True, True], [False, False, False]])
  p = lsejax.softmax(x, where=where)
  np.testing.assert_array_equal(p[0], 0.0)
  np.testing.assert_array_equal(p[2], 0.0)
  np.testing.assert_allclose(p[1], jax.nn.softmax(x[1]), rtol=1e-15)
  y = lsejax.log_softmax(x, where=where)
  np.testing.assert_array_equal(y[0], -inf)
  np.testing.assert_array_equal(y[2], -inf)
  ct = jnp.arange(9.0).reshape(3, 3)
  for fun in (lsejax.softmax, lsejax.log_softmax):
    g = jax.grad(lambda x: jnp.sum(ct * fun(x, where=where)))(x)
    np.testing.assert_array_equal(g[0], 0.0)
    np.testing.assert_array_equal(g[2], 0.0)
    assert np.isfinite(g).all()
    h = jax.jacrev(jax.jacrev(lambda x: jnp.sum(ct * fun(x, where=where))))(x)
    assert not np.isnan(h).any()


def test_nan_stays_in_its_row():
  x = jnp.array([[nan, 1.0, 2.0], [1.0, 2.0, 3.0]])
  for fun in (lsejax.softmax, lsejax.log_softmax):
    y = fun(x)
    assert np.isnan(y[0]).all()
    assert np.isfinite(y[1]).all()
    g = jax.grad(lambda x: jnp.sum(jnp.arange(6.0).reshape(2, 3) * fun(x)))(x)
    assert np.isnan(g[0]).all()
    assert np.isfinite(g[1]).all()
  # Masked out, the NaN is ignored.
  where = jnp.array([[False, True, True], [True, True, True]])
  np.testing.assert_allclose(lsejax.softmax(x, where=where)[0], [0.0, *jax.nn.softmax(x[0, 1:])],
                             rtol=1e-15)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("name", FUNCS)
def test_low_precision(name, dtype, close, tol):
  ours, _, naive = FUNCS[name]
  x64 = _x(8, (3, 40))
  x = x64.astype(dtype)
  got = ours(x)
  assert got.dtype == dtype
  close(got, naive(x.astype(jnp.float64), -1, None), dtype=dtype)
  g = jax.grad(lambda x: jnp.sum(jnp.sin(ours(x))))(x)
  assert g.dtype == dtype
  ref = jax.grad(lambda x: jnp.sum(jnp.sin(naive(x, -1, None))))(x.astype(jnp.float64))
  rtol, atol = tol(dtype)
  close(g, ref, rtol=10 * rtol, atol=10 * atol)  # the chain rule through sin adds roundings


def test_integer_input_gives_float():
  got = lsejax.softmax(jnp.array([1, 2, 3]))
  assert jnp.issubdtype(got.dtype, jnp.floating)
  np.testing.assert_allclose(got, jax.nn.softmax(jnp.array([1.0, 2.0, 3.0])), rtol=1e-15)


# ---- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("fun", [lsejax.softmax, lsejax.log_softmax])
def test_bad_arguments(fun):
  x = jnp.zeros((2, 3))
  with pytest.raises(TypeError):
    fun(jnp.zeros(3, jnp.complex64))
  with pytest.raises(ValueError, match="axis"):
    fun(x, axis=2)
  with pytest.raises(ValueError, match="axis"):
    fun(x, axis=(1, -1))
  with pytest.raises(TypeError, match="axis"):
    fun(x, axis="x")
  with pytest.raises(ValueError, match="where"):
    fun(x, where=jnp.ones(2, bool))
  with pytest.raises(TypeError, match="where"):
    fun(x, where=jnp.ones((2, 3)))
  with pytest.raises(TypeError):
    fun("abc")
