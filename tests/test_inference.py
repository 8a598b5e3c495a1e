"""Acceptance test: the conditional logit on TravelMode against an independent numpy/scipy fit
and against the published Stata ``clogit`` figures; plus the inference helpers on their own.

The independent reference below shares nothing with the library: it reads the raw CSV with the
csv module, builds the design itself, evaluates the negative log-likelihood and its analytic
gradient in float64 numpy, minimises with scipy (BFGS, then Newton polishing), and takes the
Hessian by central finite differences of its own gradient (not the library's closed form).
"""

from __future__ import annotations

import csv
import math
import pathlib

import jax

jax.config.update("jax_enable_x64", True)  # tests/conftest.py may do this too; harmless

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.optimize  # noqa: E402
import scipy.stats  # noqa: E402

import lsejax  # noqa: E402
from lsejax import _data  # noqa: E402

from _published import PUBLISHED, PUBLISHED_LL, assert_published  # noqa: E402

RAW_CSV = pathlib.Path(__file__).resolve().parents[1] / "lsejax" / "data" / "travel_mode.csv"
NAMES = ("ASC_air", "ASC_train", "ASC_bus", "gc", "ttme", "hinc:air")
MODES = ("air", "train", "bus", "car")

# --------------------------------------------------------------------------------------------
# the independent reference


def read_design_independently():
  """features [210, 4, 6], chosen [210] and names from the raw CSV, without lsejax._data."""
  rows: dict[str, dict[str, dict[str, str]]] = {}
  with open(RAW_CSV, newline="") as handle:
    for row in csv.DictReader(handle):
      rows.setdefault(row["individual"], {})[row["mode"]] = row
  features = np.zeros((len(rows), 4, 6))
  chosen = np.full(len(rows), -1)
  for n, case in enumerate(rows.values()):
    assert sorted(case) == sorted(MODES)
    for j, mode in enumerate(MODES):
      r = case[mode]
      features[n, j, :3] = [mode == "air", mode == "train", mode == "bus"]
      features[n, j, 3] = float(r["gc"])
      features[n, j, 4] = float(r["ttme"])
      features[n, j, 5] = float(r["hinc"]) if mode == "air" else 0.0
      if int(r["choice"]) == 1:
        assert chosen[n] == -1
        chosen[n] = j
  assert np.all(chosen >= 0)
  return features, chosen


def np_probabilities(theta, x):
  u = x @ theta
  u = u - u.max(axis=1, keepdims=True)
  p = np.exp(u)
  return p / p.sum(axis=1, keepdims=True)


def np_nll(theta, x, y):
  u = x @ theta
  m = u.max(axis=1)
  lse = m + np.log(np.exp(u - m[:, None]).sum(axis=1))
  return float(np.sum(lse - u[np.arange(len(y)), y]))


def np_grad(theta, x, y):
  p = np_probabilities(theta, x)
  return np.einsum("na,nak->k", p, x) - x[np.arange(len(y)), y].sum(axis=0)


def np_fd_hessian(theta, x, y):
  """Central differences of the analytic numpy gradient; steps move each utility by ~1e-4."""
  k = theta.size
  scale = np.abs(x).reshape(-1, k).max(axis=0)
  hess = np.empty((k, k))
  for j in range(k):
    h = 1e-4 / scale[j]
    e = np.zeros(k)
    e[j] = h
    hess[:, j] = (np_grad(theta + e, x, y) - np_grad(theta - e, x, y)) / (2 * h)
  return 0.5 * (hess + hess.T)


@pytest.fixture(scope="module")
def reference():
  x, y = read_design_independently()
  res = scipy.optimize.minimize(np_nll, np.zeros(6), args=(x, y), jac=np_grad, method="BFGS",
                                options={"gtol": 1e-7, "maxiter": 2000})
  theta = res.x
  for _ in range(5):  # Newton polishing with the finite-difference Hessian
    theta = theta - np.linalg.solve(np_fd_hessian(theta, x, y), np_grad(theta, x, y))
  assert np.max(np.abs(np_grad(theta, x, y))) < 1e-8
  hess = np_fd_hessian(theta, x, y)
  std_err = np.sqrt(np.diag(np.linalg.inv(hess)))
  return {"x": x, "y": y, "theta": theta, "hess": hess, "std_err": std_err,
          "ll": -np_nll(theta, x, y)}


def total_nll(theta, x, y, avail):
  return jnp.sum(lsejax.log_linear_nll(theta, x, y, avail))


@pytest.fixture(scope="module")
def library():
  data = _data.travel_mode()
  x, y, avail = (jnp.asarray(a) for a in (data.features, data.chosen, data.available))
  result = lsejax.fit(total_nll, jnp.zeros(data.num_features), x, y, avail, max_steps=1000,
                      tol=1e-8)
  inference = lsejax.log_linear_inference(result.params, x, y, avail)
  return {"data": data, "x": x, "y": y, "avail": avail, "fit": result, "inference": inference}


# --------------------------------------------------------------------------------------------
# the acceptance test


def test_independent_design_matches_embedded_data(reference, library):
  data = library["data"]
  assert data.names == NAMES
  assert data.alternatives == MODES
  assert bool(np.all(data.available))
  np.testing.assert_array_equal(data.features, reference["x"])
  np.testing.assert_array_equal(data.chosen, reference["y"])


def test_reference_fit_matches_published(reference):
  assert_published(reference["ll"], PUBLISHED_LL, "reference log-likelihood")
  for i, name in enumerate(NAMES):
    coef, se = PUBLISHED[name]
    assert_published(float(reference["theta"][i]), coef, f"reference {name}")
    assert_published(float(reference["std_err"][i]), se, f"reference std. err. {name}")


def test_library_fit_matches_published(library):
  fit, inference = library["fit"], library["inference"]
  assert bool(fit.converged)
  assert int(fit.iterations) < 1000
  assert_published(float(inference.log_likelihood), PUBLISHED_LL, "log-likelihood")
  assert float(fit.value) == pytest.approx(-float(inference.log_likelihood), rel=1e-14)
  for i, name in enumerate(NAMES):
    coef, se = PUBLISHED[name]
    assert_published(float(inference.estimate[i]), coef, name)
    assert_published(float(inference.std_err[i]), se, f"std. err. {name}")


def test_library_matches_reference_closely(reference, library):
  # Both optima have max|grad| ≤ 1e-8 and the information's smallest eigenvalue is ~1, so the
  # estimates agree to ~1e-8 absolute; far tighter than the published rounding.
  inference = library["inference"]
  np.testing.assert_allclose(np.asarray(inference.estimate), reference["theta"], rtol=1e-6,
                             atol=1e-9)
  np.testing.assert_allclose(np.asarray(inference.std_err), reference["std_err"], rtol=1e-6)
  assert float(inference.log_likelihood) == pytest.approx(reference["ll"], rel=1e-12)


def test_information_matches_fd_hessian_and_autodiff(reference, library):
  theta = library["inference"].estimate
  x, y, avail = library["x"], library["y"], library["avail"]
  info = np.asarray(lsejax.log_linear_information(theta, x, avail))
  np.testing.assert_allclose(np.asarray(library["inference"].information), info, rtol=1e-14)
  np.testing.assert_allclose(info, info.T, rtol=1e-12)
  # Against the finite-difference Hessian of the independent numpy gradient (FD error ~1e-8).
  fd = np_fd_hessian(np.asarray(theta), reference["x"], reference["y"])
  np.testing.assert_allclose(info, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())
  # Against autodiff of the summed NLL: reverse over reverse (the custom_vjp backward
  # differentiated) and forward over reverse inside lsejax.forward_mode.
  rr = jax.jit(jax.jacrev(jax.jacrev(total_nll)))(theta, x, y, avail)
  fr = jax.jit(jax.hessian(lsejax.forward_mode(total_nll)))(theta, x, y, avail)  # fwd∘rev
  np.testing.assert_allclose(np.asarray(rr), info, rtol=1e-10, atol=1e-10 * np.abs(info).max())
  np.testing.assert_allclose(np.asarray(fr), info, rtol=1e-10, atol=1e-10 * np.abs(info).max())


def test_statistics(library):
  inference = library["inference"]
  estimate = np.asarray(inference.estimate)
  std_err = np.asarray(inference.std_err)
  t = np.asarray(inference.t)
  np.testing.assert_allclose(t, estimate / std_err, rtol=1e-15)
  np.testing.assert_allclose(std_err, np.sqrt(np.diag(np.linalg.inv(
      np.asarray(inference.information)))), rtol=1e-10)
  p = np.asarray(inference.p)
  # 2(1 − Φ(|t|)), evaluated as 2·sf(|t|) so that tiny p-values (|t| ≈ 9: p ≈ 1e-20) keep their
  # digits; the literal 1 − Φ form is checked where it has digits left (p > 1e-6).
  np.testing.assert_allclose(p, 2 * scipy.stats.norm.sf(np.abs(t)), rtol=1e-10, atol=0)
  literal = 2 * (1 - scipy.stats.norm.cdf(np.abs(t)))
  mask = literal > 1e-6
  assert mask.sum() >= 2  # gc and hinc:air
  np.testing.assert_allclose(p[mask], literal[mask], rtol=1e-8)
  # Null log-likelihood −Σ log(#available) = −210 log 4 here, and McFadden's ρ².
  assert float(inference.null_log_likelihood) == pytest.approx(-210 * math.log(4), rel=1e-14)
  assert float(inference.rho2) == pytest.approx(
      1 - float(inference.log_likelihood) / float(inference.null_log_likelihood), rel=1e-14)
  assert float(inference.rho2) == pytest.approx(1 - 199.12837 / (210 * math.log(4)), abs=1e-7)


def test_null_log_likelihood_with_unavailable_alternatives(library):
  x = np.asarray(library["x"])
  y = np.asarray(library["y"])
  rng = np.random.default_rng(0)
  avail = rng.random(y.shape + (4,)) < 0.6
  avail[np.arange(len(y)), y] = True
  avail[np.arange(len(y)), (y + 1) % 4] = True  # at least two available
  theta = np.asarray(library["inference"].estimate)
  inference = lsejax.log_linear_inference(theta, x, y, avail)
  assert float(inference.null_log_likelihood) == pytest.approx(
      -np.sum(np.log(avail.sum(axis=1))), rel=1e-14)
  # the log-likelihood over the available alternatives only, independently in numpy
  u = np.where(avail, x @ theta, -np.inf)
  m = u.max(axis=1)
  ll = -np.sum(m + np.log(np.exp(u - m[:, None]).sum(axis=1)) - u[np.arange(len(y)), y])
  assert float(inference.log_likelihood) == pytest.approx(ll, rel=1e-12)
  # the information over available alternatives only: Σ_n Cov_p[x_n]
  p = np.exp(u - m[:, None])
  p /= p.sum(axis=1, keepdims=True)
  centred = x - np.einsum("na,nak->nk", p, x)[:, None, :]
  want = np.einsum("na,nak,nal->kl", p, centred, centred)
  np.testing.assert_allclose(np.asarray(inference.information), want, rtol=1e-11,
                             atol=1e-11 * np.abs(want).max())


@pytest.mark.parametrize("kind", ["constant", "collinear"])
def test_singular_information_gives_nan_std_err_t_p(kind, library):
  # TravelMode with its last column replaced (same shapes as above, so nothing recompiles):
  # a column equal on every alternative has zero variance; twice another column is collinear
  # with it (singular up to rounding). Either way some coefficient is not identified.
  x = np.array(library["x"])
  x[..., 5] = 1.0 if kind == "constant" else 2.0 * x[..., 3]
  theta = np.asarray(library["inference"].estimate)
  res = lsejax.log_linear_inference(theta, x, library["y"], library["avail"])
  for field in ("std_err", "t", "p"):
    assert np.all(np.isnan(np.asarray(getattr(res, field)))), (field, getattr(res, field))
  assert np.all(np.isfinite(np.asarray(res.information)))
  assert math.isfinite(float(res.log_likelihood))


def test_strongly_correlated_but_regular_information_keeps_std_err(library):
  # A column close to another (correlation ~0.9999) is still identified: finite std. errors.
  x = np.array(library["x"])
  x[..., 5] = x[..., 3] + 1e-2 * np.random.default_rng(0).normal(size=x.shape[:2])
  theta = np.asarray(library["inference"].estimate)
  res = lsejax.log_linear_inference(theta, x, library["y"], library["avail"])
  info = np.asarray(res.information)
  # far worse conditioned than the original design, yet regular
  assert np.linalg.cond(info) > 100 * np.linalg.cond(np.asarray(library["inference"].information))
  np.testing.assert_allclose(np.asarray(res.std_err), np.sqrt(np.diag(np.linalg.inv(info))),
                             rtol=1e-6)
  assert np.all(np.isfinite(np.asarray(res.p)))


def test_information_rejects_theta_of_the_wrong_length():
  with pytest.raises(ValueError, match="theta"):
    lsejax.log_linear_information(jnp.array([1.0, 2.0]), jnp.ones((4, 3, 1)))
