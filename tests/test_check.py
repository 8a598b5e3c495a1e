"""Tests for lsejax.check_gradients: it must pass the real gradient and catch a wrong one."""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # tests/conftest.py may do this too; harmless

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lsejax  # noqa: E402


def naive_lse(x):
  return jnp.log(jnp.sum(jnp.exp(x)))


def sum_lse_rows(x):
  return jnp.sum(lsejax.logsumexp(x, axis=-1))


def naive_sum_lse_rows(x):
  return jnp.sum(jnp.log(jnp.sum(jnp.exp(x), axis=-1)))


@jax.custom_vjp
def wrong_lse(x):
  """logsumexp whose backward returns the one-hot τ of the argmax (the hard-max "gradient")
  instead of the softmax expectation: the classic mistake."""
  return jnp.log(jnp.sum(jnp.exp(x)))


def _wrong_fwd(x):
  return wrong_lse(x), x


def _wrong_bwd(x, g):
  tau = jax.nn.one_hot(jnp.argmax(x), x.size, dtype=x.dtype).reshape(x.shape)
  return (g * tau,)


wrong_lse.defvjp(_wrong_fwd, _wrong_bwd)


def test_result_type():
  check = lsejax.check_gradients(lsejax.logsumexp, naive_lse, jnp.array([0.5, -1.0, 2.0]))
  assert isinstance(check, lsejax.GradientCheck)
  assert all(isinstance(v, float) for v in check)


@pytest.mark.parametrize("seed", [0, 1])
def test_logsumexp_passes(seed):
  x = jnp.asarray(np.random.default_rng(seed).normal(size=7) * 3)
  check = lsejax.check_gradients(lsejax.logsumexp, naive_lse, x)
  assert check.max_abs_vs_reference < 1e-14
  assert check.max_rel_vs_reference < 1e-12
  # central differences in float64 with h = eps^(1/3)·max(1,|x|): error ~ eps^(2/3) ~ 1e-10
  assert check.max_abs_vs_finite_diff < 1e-8
  assert check.max_rel_vs_finite_diff < 1e-6


def test_wrong_gradient_is_caught():
  x = jnp.array([0.3, 0.1, -0.2, 0.25])  # no dominant entry: softmax is far from one-hot
  check = lsejax.check_gradients(wrong_lse, naive_lse, x)
  p = np.asarray(jax.nn.softmax(x))
  tau = np.eye(4)[0]
  assert check.max_abs_vs_reference == pytest.approx(np.abs(tau - p).max(), rel=1e-12)
  assert check.max_rel_vs_reference > 0.5
  assert check.max_abs_vs_finite_diff > 0.1
  assert check.max_rel_vs_finite_diff > 0.5


def test_wrong_gradient_is_caught_against_autodiff_only():
  # Even a wrong reference leaves the finite differences to catch the wrong gradient.
  x = jnp.array([0.3, 0.1, -0.2, 0.25])
  check = lsejax.check_gradients(wrong_lse, wrong_lse, x)
  assert check.max_abs_vs_reference == 0.0
  assert check.max_rel_vs_finite_diff > 0.5


def test_extra_args_are_passed_and_not_differentiated():
  scale = jnp.array(2.5)

  def f(x, s):
    return lsejax.logsumexp(x * s)

  def ref(x, s):
    return naive_lse(x * s)

  check = lsejax.check_gradients(f, ref, jnp.array([0.1, 0.2, -0.3]), scale)
  assert check.max_rel_vs_reference < 1e-12
  assert check.max_rel_vs_finite_diff < 1e-6


@pytest.mark.parametrize("shape", [(100,), (6, 9)])
def test_more_than_32_elements_uses_random_directions(shape):
  x = jnp.asarray(np.random.default_rng(3).normal(size=shape))
  assert x.size > 32
  good = lsejax.check_gradients(sum_lse_rows, naive_sum_lse_rows, x)
  assert good.max_rel_vs_reference < 1e-12
  assert good.max_abs_vs_finite_diff < 1e-8

  wrong = jax.vmap(wrong_lse) if len(shape) == 2 else wrong_lse
  bad = lsejax.check_gradients(lambda v: jnp.sum(wrong(v)), naive_sum_lse_rows, x)
  assert bad.max_abs_vs_reference > 0.1
  assert bad.max_abs_vs_finite_diff > 0.05
  assert bad.max_rel_vs_finite_diff > 0.1


def test_random_directions_depend_on_seed_only():
  x = jnp.asarray(np.random.default_rng(4).normal(size=50))
  def f(v):
    return jnp.sum(wrong_lse(v))

  a = lsejax.check_gradients(f, naive_lse, x, max_directions=5, seed=1)
  b = lsejax.check_gradients(f, naive_lse, x, max_directions=5, seed=1)
  c = lsejax.check_gradients(f, naive_lse, x, max_directions=5, seed=2)
  assert a == b
  assert a.max_abs_vs_finite_diff != c.max_abs_vs_finite_diff


def test_float32_input():
  x = jnp.asarray(np.random.default_rng(5).normal(size=6), jnp.float32)
  check = lsejax.check_gradients(lsejax.logsumexp, naive_lse, x)
  assert check.max_rel_vs_reference < 1e-5
  # float32 central differences with h = eps^(1/3) ≈ 5e-3: error ~ eps^(2/3) ≈ 2e-5 relative
  assert check.max_rel_vs_finite_diff < 1e-2


def test_integer_input_is_type_error():
  with pytest.raises(TypeError, match="float"):
    lsejax.check_gradients(lsejax.logsumexp, naive_lse, jnp.array([1, 2, 3]))


def test_correct_gradient_with_a_tiny_component_passes():
  # p = softmax([0, 0, -50]) has p_3 ≈ 1e-22: far below what central differences resolve.
  x = jnp.array([0.0, 0.0, -50.0])
  check = lsejax.check_gradients(lsejax.logsumexp, naive_lse, x)
  assert check.max_rel_vs_reference < 1e-12
  assert check.max_abs_vs_finite_diff < 1e-8
  # the criterion of the docstring's example, met by this correct gradient
  assert check.max_rel_vs_finite_diff < 1e-2
