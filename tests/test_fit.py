"""Tests for lsejax.fit / lsejax.fit_function: the optax loop compiled as one lax.while_loop."""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # tests/conftest.py may do this too; harmless

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

import lsejax  # noqa: E402

# A fixed, moderately ill-conditioned SPD quadratic: 0.5 (p − c)ᵀ A (p − c) + 1.
_Q = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
A = _Q @ np.diag([0.5, 1.0, 3.0, 10.0]) @ _Q.T
C = np.array([1.0, -2.0, 3.0, 0.5])


def quadratic(p, a, c):
  d = p - c
  return 0.5 * d @ a @ d + 1.0


def check_history(result, initial_value, *, monotone: bool):
  history = np.asarray(result.history)
  n = int(result.iterations)
  assert history.dtype == np.float64
  assert history[0] == pytest.approx(float(initial_value), rel=1e-14)
  assert np.all(np.isfinite(history[: n + 1]))
  assert np.all(np.isnan(history[n + 1:]))
  assert history[n] == pytest.approx(float(result.value), rel=1e-14, abs=1e-14)
  if monotone:
    steps = np.diff(history[: n + 1])
    assert np.all(steps <= 1e-12 * np.maximum(1.0, np.abs(history[1: n + 1]))), steps
  return history


@pytest.fixture(scope="module")
def quad():
  """One compiled L-BFGS loop (with a recording callback) for the quadratic, used twice."""
  calls = []

  def callback(step, value, grad_norm):
    calls.append((int(step), float(value), float(grad_norm)))

  run = lsejax.fit_function(quadratic, max_steps=200, tol=1e-10, callback=callback)
  result = run(jnp.zeros(4), A, C)
  jax.effects_barrier()
  first_calls = list(calls)
  calls.clear()
  at_optimum = run(jnp.asarray(C), A, C)  # same shapes: the same compiled program
  jax.effects_barrier()
  return result, first_calls, at_optimum, list(calls)


def test_lbfgs_on_quadratic(quad):
  result = quad[0]
  assert isinstance(result, lsejax.FitResult)
  assert bool(result.converged)
  assert 0 < int(result.iterations) < 200
  np.testing.assert_allclose(np.asarray(result.params), C, rtol=1e-9, atol=1e-9)
  assert float(result.value) == pytest.approx(1.0, abs=1e-15)
  assert float(result.grad_norm) < 1e-10
  grad = jax.grad(quadratic)(result.params, A, C)
  assert float(result.grad_norm) == pytest.approx(float(jnp.max(jnp.abs(grad))), rel=1e-6,
                                                  abs=1e-15)
  assert result.history.shape == (201,)
  check_history(result, quadratic(jnp.zeros(4), A, C), monotone=True)


def test_callback_called_with_increasing_steps(quad):
  result, calls = quad[0], quad[1]
  n = int(result.iterations)
  assert n > 1
  assert [c[0] for c in calls] == list(range(1, n + 1))
  np.testing.assert_allclose([c[1] for c in calls], np.asarray(result.history[1: n + 1]),
                             rtol=1e-14)
  assert calls[-1][2] == pytest.approx(float(result.grad_norm), rel=1e-14)
  assert all(c[2] >= 0 for c in calls)


def test_already_converged_takes_no_step(quad):
  result, calls = quad[2], quad[3]
  assert int(result.iterations) == 0
  assert bool(result.converged)
  assert calls == []  # the callback runs after each step, and there was none
  np.testing.assert_array_equal(np.asarray(result.params), C)
  history = np.asarray(result.history)
  assert history[0] == 1.0
  assert np.all(np.isnan(history[1:]))


def test_lbfgs_pytree_params():
  def loss(params, c):
    return jnp.sum((params["w"] - c[:2]) ** 2) + (params["b"] - c[2]) ** 2 * 4.0

  init = {"w": jnp.zeros(2), "b": jnp.array(0.0)}
  result = lsejax.fit(loss, init, jnp.array([1.0, 2.0, 3.0]), tol=1e-9)
  assert bool(result.converged)
  np.testing.assert_allclose(np.asarray(result.params["w"]), [1.0, 2.0], atol=1e-9)
  assert float(result.params["b"]) == pytest.approx(3.0, abs=1e-9)


def log_linear_problem(seed=0, cases=300, alts=4, k=3):
  rng = np.random.default_rng(seed)
  features = rng.normal(size=(cases, alts, k))
  avail = rng.random((cases, alts)) < 0.8
  avail[:, :2] = True
  theta_true = np.array([1.0, -0.5, 0.25])[:k]
  u = np.where(avail, features @ theta_true, -np.inf)
  gumbel = rng.gumbel(size=u.shape)
  chosen = np.argmax(u + gumbel, axis=-1).astype(np.int32)
  return jnp.asarray(features), jnp.asarray(chosen), jnp.asarray(avail)


def total_nll(theta, x, y, avail):
  return jnp.sum(lsejax.log_linear_nll(theta, x, y, avail))


def naive_total_nll(theta, x, y, avail):
  u = x @ theta
  log_z = jnp.log(jnp.sum(jnp.where(avail, jnp.exp(u), 0.0), axis=-1))
  return jnp.sum(log_z - jnp.take_along_axis(u, y[:, None], axis=1)[:, 0])


@pytest.fixture(scope="module")
def loglin():
  """One L-BFGS fit of a synthetic log-linear problem, shared (each compile costs seconds)."""
  x, y, avail = log_linear_problem()
  result = lsejax.fit(total_nll, jnp.zeros(3), x, y, avail, max_steps=100, tol=1e-9)
  return (x, y, avail), result


def test_lbfgs_on_log_linear_nll(loglin):
  (x, y, avail), result = loglin
  assert bool(result.converged)
  assert 0 < int(result.iterations) < 100
  # The optimum is a stationary point of the independent, plainly autodiffed formula.
  grad = jax.jit(jax.grad(naive_total_nll))(result.params, x, y, avail)
  assert float(jnp.max(jnp.abs(grad))) < 1e-8
  # θ = 0 gives −Σ log(#available): the recorded initial value.
  null = float(np.sum(np.log(np.asarray(avail).sum(axis=1))))
  check_history(result, null, monotone=True)
  assert float(result.value) < null


def test_adam_converges_with_looser_tolerance():
  init = jnp.zeros(4)
  result = lsejax.fit(quadratic, init, A, C, optimizer=optax.adam(0.05), max_steps=5000,
                      tol=1e-5)
  assert bool(result.converged)
  assert int(result.iterations) < 5000
  # |p − c| ≤ |A⁻¹| · max|grad| · √4, with the smallest eigenvalue 0.5: well under 1e-3.
  np.testing.assert_allclose(np.asarray(result.params), C, atol=1e-3)
  check_history(result, quadratic(init, A, C), monotone=False)


def test_max_steps_respected_when_not_converging():
  steps = []
  init = jnp.zeros(4)
  result = lsejax.fit(quadratic, init, A, C, optimizer=optax.sgd(1e-4), max_steps=7, tol=1e-12,
                      callback=lambda step, value, norm: steps.append(int(step)))
  jax.effects_barrier()
  assert int(result.iterations) == 7
  assert not bool(result.converged)
  assert steps == [1, 2, 3, 4, 5, 6, 7]
  assert result.history.shape == (8,)
  history = check_history(result, quadratic(init, A, C), monotone=True)
  assert np.all(np.isfinite(history))  # every slot used


@pytest.mark.parametrize("max_steps", [0, -1, 2.5, True, "10", None])
def test_bad_max_steps(max_steps):
  with pytest.raises(ValueError, match="max_steps"):
    lsejax.fit_function(quadratic, max_steps=max_steps)
  with pytest.raises(ValueError, match="max_steps"):
    lsejax.fit(quadratic, jnp.zeros(4), A, C, max_steps=max_steps)


@pytest.mark.parametrize("tol", [0.0, -1e-3, float("nan"), float("-inf")])
def test_bad_tol(tol):
  with pytest.raises(ValueError, match="tol"):
    lsejax.fit_function(quadratic, tol=tol)
  with pytest.raises(ValueError, match="tol"):
    lsejax.fit(quadratic, jnp.zeros(4), A, C, tol=tol)


def test_whole_loop_is_one_jit(loglin):
  (x, y, avail), reference = loglin
  traces = []

  def loss(theta, x, y, avail):
    traces.append(1)  # Python side effect: runs only while tracing
    return total_nll(theta, x, y, avail)

  run = lsejax.fit_function(loss, max_steps=100, tol=1e-9)
  init = jnp.zeros(3)
  lowered = run.lower(init, x, y, avail)
  assert "while" in lowered.as_text()  # the optimizer loop is inside the compiled program
  compiled = lowered.compile()
  # The Python loss is traced a fixed few times, not once per optimizer step: the steps run
  # inside the compiled program.
  assert 0 < len(traces) < int(reference.iterations), (len(traces), int(reference.iterations))

  result = compiled(init, x, y, avail)
  assert bool(result.converged)
  np.testing.assert_allclose(np.asarray(result.params), np.asarray(reference.params),
                             rtol=1e-12)
  assert int(result.iterations) == int(reference.iterations)

  # New data of the same shapes runs on the same compiled program.
  x2, y2, avail2 = log_linear_problem(seed=2)
  result2 = compiled(init, x2, y2, avail2)
  assert bool(result2.converged)
  grad = jax.jit(jax.grad(naive_total_nll))(result2.params, x2, y2, avail2)
  assert float(jnp.max(jnp.abs(grad))) < 1e-8
  # Traced as a whole, the fit is one jit call, whose body holds the while loop.
  jaxpr = jax.make_jaxpr(run)(init, x, y, avail)
  assert [e.primitive.name for e in jaxpr.eqns] in (["pjit"], ["jit"])
  assert "while" in str(jaxpr)
