"""Tests for lsejax._losses: log_linear_nll and the two softmax cross-entropies.

References are written independently here: a float64 numpy formula, the textbook
``log(sum(exp(.)))`` in jnp differentiated by plain autodiff, and optax.losses.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # tests/conftest.py may do this too; harmless

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

import lsejax  # noqa: E402

sce = lsejax.softmax_cross_entropy
sce_int = lsejax.softmax_cross_entropy_with_integer_labels
# Jitted twins for the value checks: eager mode compiles every primitive of every new shape
# separately (seconds per test); test_losses_are_jittable checks that eager gives the same.
sce_j = jax.jit(sce, static_argnames=("axis",))
sce_int_j = jax.jit(sce_int, static_argnames=("axis", "label_smoothing"))
nll_j = jax.jit(lsejax.log_linear_nll)
opt_sce = jax.jit(optax.losses.softmax_cross_entropy, static_argnames=("axis",))
opt_sce_int = jax.jit(optax.losses.softmax_cross_entropy_with_integer_labels,
                      static_argnames=("axis",))
LOG2 = float(np.log(2.0))


def jgrad(f, **kw):
  """jax.grad under one jit: compiling op by op in eager mode costs seconds per test."""
  return jax.jit(jax.grad(f, **kw))


# --------------------------------------------------------------------------------------------
# log_linear_nll


def make_problem(seed: int, batch=(7,), alts: int = 4, k: int = 3):
  """Random features, availability (>= 2 available per case), a chosen available alternative."""
  rng = np.random.default_rng(seed)
  features = rng.normal(size=(*batch, alts, k)) * 2.0
  avail = rng.random((*batch, alts)) < 0.6
  for idx in np.ndindex(*batch):  # at least two available alternatives in every case
    avail[idx][rng.choice(alts, size=2, replace=False)] = True
  chosen = np.empty(batch, dtype=np.int32)
  for idx in np.ndindex(*batch):
    chosen[idx] = rng.choice(np.flatnonzero(avail[idx]))
  theta = rng.normal(size=k)
  return theta, features, chosen, avail


def numpy_nll(theta, features, chosen, avail=None):
  """Per-case −log p(chosen), float64 numpy, max-shifted log-sum-exp over available rows."""
  theta, features = np.asarray(theta, np.float64), np.asarray(features, np.float64)
  if avail is None:
    avail = np.ones(features.shape[:-1], bool)
  x = np.where(avail[..., None], features, 0.0)
  u = x @ theta
  u_avail = np.where(avail, u, -np.inf)
  m = u_avail.max(axis=-1, keepdims=True)
  lse = (m + np.log(np.sum(np.exp(u_avail - m), axis=-1, keepdims=True)))[..., 0]
  u_chosen = np.take_along_axis(u, chosen[..., None].astype(np.intp), axis=-1)[..., 0]
  return lse - u_chosen


def numpy_grad(theta, features, chosen, avail=None):
  """Σ_n (E_p[x_n] − x_{n, chosen_n}), float64 numpy."""
  theta, features = np.asarray(theta, np.float64), np.asarray(features, np.float64)
  if avail is None:
    avail = np.ones(features.shape[:-1], bool)
  x = np.where(avail[..., None], features, 0.0)
  u = np.where(avail, x @ theta, -np.inf)
  p = np.exp(u - u.max(axis=-1, keepdims=True))
  p /= p.sum(axis=-1, keepdims=True)
  expected = np.einsum("...a,...ak->...k", p, x)
  x_chosen = np.take_along_axis(x, chosen[..., None, None].astype(np.intp), axis=-2)[..., 0, :]
  k = theta.shape[0]
  return (expected - x_chosen).reshape(-1, k).sum(axis=0)


def naive_jnp_total(theta, features, chosen, avail):
  """Textbook formula in jnp, autodiffed by JAX (no custom_vjp anywhere)."""
  x = jnp.where(avail[..., None], features, 0.0)
  u = x @ theta
  log_z = jnp.log(jnp.sum(jnp.where(avail, jnp.exp(u), 0.0), axis=-1))
  return jnp.sum(log_z - jnp.take_along_axis(u, chosen[..., None], axis=-1)[..., 0])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("masked", [False, True])
def test_log_linear_nll_values_match_numpy(seed, masked):
  theta, features, chosen, avail = make_problem(seed)
  where = avail if masked else None
  if not masked:
    avail = np.ones_like(avail)
  got = np.asarray(nll_j(theta, features, chosen, where))
  assert got.dtype == np.float64
  assert got.shape == chosen.shape
  np.testing.assert_allclose(got, numpy_nll(theta, features, chosen, avail), rtol=1e-13,
                             atol=1e-13)


def test_log_linear_nll_batch_dims():
  theta, features, chosen, avail = make_problem(3, batch=(2, 5))
  got = nll_j(theta, features, chosen, avail)
  assert got.shape == (2, 5)
  np.testing.assert_allclose(np.asarray(got), numpy_nll(theta, features, chosen, avail),
                             rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_linear_nll_gradient_is_expected_minus_chosen(seed):
  theta, features, chosen, avail = make_problem(seed)

  def total(t):
    return jnp.sum(lsejax.log_linear_nll(t, features, chosen, avail))

  got = np.asarray(jgrad(total)(jnp.asarray(theta)))
  np.testing.assert_allclose(got, numpy_grad(theta, features, chosen, avail), rtol=1e-12,
                             atol=1e-12)
  naive = jgrad(naive_jnp_total)(jnp.asarray(theta), jnp.asarray(features),
                                    jnp.asarray(chosen), jnp.asarray(avail))
  np.testing.assert_allclose(got, np.asarray(naive), rtol=1e-12, atol=1e-12)


def test_log_linear_nll_large_utilities_stay_finite():
  # Utilities ~ ±1000: the naive exp overflows, the library must not.
  theta, features, chosen, avail = make_problem(4)
  theta = theta * 300.0
  got = np.asarray(nll_j(theta, features, chosen, avail))
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got, numpy_nll(theta, features, chosen, avail), rtol=1e-12)
  grad = jgrad(lambda t: jnp.sum(lsejax.log_linear_nll(t, features, chosen, avail)))(theta)
  np.testing.assert_allclose(np.asarray(grad), numpy_grad(theta, features, chosen, avail),
                             rtol=1e-10, atol=1e-10)


def test_nan_features_at_unavailable_alternatives_do_not_leak():
  theta, features, chosen, avail = make_problem(5)
  assert not avail.all()
  poisoned = np.where(avail[..., None], features, np.nan)
  clean = np.where(avail[..., None], features, 0.0)

  def total(t, x):
    return jnp.sum(lsejax.log_linear_nll(t, x, chosen, avail))

  value = np.asarray(nll_j(theta, poisoned, chosen, avail))
  assert np.all(np.isfinite(value))
  np.testing.assert_array_equal(value, np.asarray(nll_j(theta, clean, chosen,
                                                                          avail)))
  grad = np.asarray(jgrad(total)(jnp.asarray(theta), poisoned))
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad, numpy_grad(theta, clean, chosen, avail), rtol=1e-12,
                             atol=1e-12)
  # Second derivatives (reverse over reverse) are clean too.
  hess = np.asarray(jax.jit(jax.jacrev(jax.jacrev(total)))(jnp.asarray(theta), poisoned))
  assert np.all(np.isfinite(hess))
  # And the gradient with respect to the features is zero (not NaN) at unavailable rows.
  g_x = np.asarray(jgrad(total, argnums=1)(jnp.asarray(theta), poisoned))
  assert np.all(np.isfinite(g_x))
  assert np.all(g_x[~avail] == 0)


def test_chosen_unavailable_alternative_is_infinite():
  theta = np.array([0.5])
  features = np.array([[[1.0], [2.0], [3.0]]])
  avail = np.array([[True, True, False]])
  got = nll_j(theta, features, np.array([2]), avail)
  assert float(got[0]) == np.inf


@pytest.mark.parametrize(
    "theta, features, chosen, word",
    [
        (np.zeros((1, 3)), np.zeros((4, 3, 3)), np.zeros(4, np.int32), "theta"),
        (np.zeros(()), np.zeros((4, 3, 3)), np.zeros(4, np.int32), "theta"),
        (np.zeros(3), np.zeros((4, 3, 2)), np.zeros(4, np.int32), "features"),
        (np.zeros(3), np.zeros(3), np.zeros((), np.int32), "features"),
        (np.zeros(3), np.zeros((4, 3, 3)), np.zeros(5, np.int32), "labels"),
        (np.zeros(3), np.zeros((4, 3, 3)), np.zeros((4, 1), np.int32), "labels"),
    ],
)
def test_log_linear_nll_bad_shapes(theta, features, chosen, word):
  with pytest.raises(ValueError, match=word):
    lsejax.log_linear_nll(theta, features, chosen)


def test_log_linear_nll_bad_where_shape():
  with pytest.raises(ValueError, match="where"):
    lsejax.log_linear_nll(np.zeros(3), np.zeros((4, 3, 3)), np.zeros(4, np.int32),
                          np.ones((4, 2), bool))


def test_log_linear_nll_float_chosen_is_type_error():
  with pytest.raises(TypeError, match="labels"):
    lsejax.log_linear_nll(np.zeros(3), np.zeros((4, 3, 3)), np.zeros(4))


# --------------------------------------------------------------------------------------------
# softmax cross-entropies against optax on finite inputs


def random_logits(seed, shape=(6, 5)):
  return np.random.default_rng(seed).normal(size=shape) * 3.0


def random_distribution(seed, shape=(6, 5)):
  w = np.random.default_rng(seed + 100).random(shape)
  return w / w.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_cross_entropy_matches_optax(seed):
  logits, labels = random_logits(seed), random_distribution(seed)
  got = sce_j(logits, labels)
  want = opt_sce(logits, labels)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)
  g = jgrad(lambda x: jnp.sum(sce(x, labels)))(logits)
  g_ref = jgrad(lambda x: jnp.sum(opt_sce(x, labels)))(logits)
  np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-12, atol=1e-13)


def test_softmax_cross_entropy_axis_matches_optax():
  logits, labels = random_logits(2, (5, 6)), random_distribution(2, (6, 5)).T
  got = sce_j(logits, labels, axis=0)
  want = opt_sce(logits, labels, axis=0)
  assert got.shape == (6,)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_cross_entropy_where_matches_optax(seed):
  logits, labels = random_logits(seed), random_distribution(seed)
  where = np.random.default_rng(seed + 7).random(logits.shape) < 0.7
  where[:, 0] = True
  got = sce_j(logits, labels, where=where)
  want = opt_sce(logits, labels, where=where)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)
  g = jgrad(lambda x: jnp.sum(sce(x, labels, where=where)))(logits)
  g_ref = jgrad(
      lambda x: jnp.sum(opt_sce(x, labels, where=where)))(logits)
  np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
def test_integer_labels_match_optax(seed):
  logits = random_logits(seed)
  labels = np.random.default_rng(seed).integers(0, 5, size=6)
  got = sce_int_j(logits, labels)
  want = opt_sce_int(logits, labels)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)
  g = jgrad(lambda x: jnp.sum(sce_int(x, labels)))(logits)
  g_ref = jgrad(lambda x: jnp.sum(
      opt_sce_int(x, labels)))(logits)
  np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-12, atol=1e-13)


def test_integer_labels_where_matches_optax():
  logits = random_logits(3)
  labels = np.array([0, 1, 2, 3, 4, 0])
  where = np.random.default_rng(3).random(logits.shape) < 0.6
  where[np.arange(6), labels] = True  # every label on an included class
  got = sce_int_j(logits, labels, where=where)
  want = opt_sce_int(logits, labels, where=where)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)
  g = jgrad(lambda x: jnp.sum(sce_int(x, labels, where=where)))(logits)
  g_ref = jgrad(lambda x: jnp.sum(opt_sce_int(
      x, labels, where=where)))(logits)
  np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-12, atol=1e-13)


def test_integer_labels_axis0_matches_optax():
  logits = random_logits(4, (5, 6))
  labels = np.array([0, 1, 2, 3, 4, 0])
  got = sce_int_j(logits, labels, axis=0)
  want = opt_sce_int(logits, labels, axis=0)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("eps", [0.1, 0.5])
def test_label_smoothing_matches_optax_smoothed_labels(eps):
  logits = random_logits(5)
  labels = np.array([0, 1, 2, 3, 4, 2])
  got = sce_int_j(logits, labels, label_smoothing=eps)
  smoothed = optax.smooth_labels(jax.nn.one_hot(labels, 5, dtype=jnp.float64), eps)
  want = opt_sce(logits, smoothed)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)
  g = jgrad(lambda x: jnp.sum(sce_int(x, labels, label_smoothing=eps)))(logits)
  g_ref = jgrad(lambda x: jnp.sum(opt_sce(x, smoothed)))(logits)
  np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-12, atol=1e-13)


def test_label_smoothing_with_where_spreads_over_included_classes():
  # The documented K is the number of classes `where` includes (optax.smooth_labels would
  # spread over all classes), so build those smoothed labels by hand.
  eps = 0.2
  logits = random_logits(6)
  labels = np.array([0, 1, 2, 3, 4, 0])
  where = np.random.default_rng(6).random(logits.shape) < 0.6
  where[np.arange(6), labels] = True
  one_hot = np.eye(5)[labels]
  smoothed = (1 - eps) * one_hot + eps * where / where.sum(axis=-1, keepdims=True)
  got = sce_int_j(logits, labels, where=where, label_smoothing=eps)
  want = opt_sce(logits, smoothed, where=where)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-13)
  np.testing.assert_allclose(np.asarray(sce_j(logits, smoothed, where=where)), np.asarray(want),
                             rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5])
def test_label_smoothing_out_of_range(eps):
  with pytest.raises(ValueError, match="label_smoothing"):
    sce_int(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=eps)


# --------------------------------------------------------------------------------------------
# edge cases where optax returns NaN or where conventions matter


def test_minus_inf_logit_with_zero_label_is_log2_not_nan():
  logits = jnp.array([-jnp.inf, 0.0, 0.0])
  labels = jnp.array([0.0, 1.0, 0.0])
  value = sce_j(logits, labels)
  assert float(value) == pytest.approx(LOG2, rel=1e-15)
  grad = jgrad(sce)(logits, labels)
  np.testing.assert_allclose(np.asarray(grad), [0.0, -0.5, 0.5], rtol=1e-15, atol=0)
  assert not np.any(np.isnan(np.asarray(grad)))
  # the integer version agrees
  assert float(sce_int_j(logits, jnp.array(1))) == pytest.approx(LOG2, rel=1e-15)
  g_int = jgrad(lambda x: sce_int(x, jnp.array(1)))(logits)
  np.testing.assert_allclose(np.asarray(g_int), [0.0, -0.5, 0.5], rtol=1e-15, atol=0)


def test_label_on_minus_inf_class_is_plus_inf():
  logits = jnp.array([-jnp.inf, 0.0, 0.0])
  assert float(sce_j(logits, jnp.array([1.0, 0.0, 0.0]))) == np.inf
  assert float(sce_j(logits, jnp.array([0.5, 0.5, 0.0]))) == np.inf
  assert float(sce_int_j(logits, jnp.array(0))) == np.inf


def test_row_excluded_entirely_is_zero_with_zero_gradient():
  logits = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
  where = jnp.array([[True, True, True], [False, False, False]])
  soft = jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  ints = jnp.array([1, 2])
  for loss in (lambda x: sce(x, soft, where=where), lambda x: sce_int(x, ints, where=where),
               lambda x: sce_int(x, ints, where=where, label_smoothing=0.1)):
    value = np.asarray(loss(logits))
    assert value[1] == 0.0
    assert np.isfinite(value[0]) and value[0] > 0
    grad = np.asarray(jgrad(lambda x, loss=loss: jnp.sum(loss(x)))(logits))
    np.testing.assert_array_equal(grad[1], 0.0)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("bad", [3, 7, -1, -4])
def test_integer_label_out_of_range_is_nan(bad):
  logits = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
  value = np.asarray(sce_int_j(logits, jnp.array([bad, 1])))
  assert np.isnan(value[0])
  assert value[1] == pytest.approx(float(np.log(np.exp([4.0, 5, 6]).sum()) - 5.0), rel=1e-14)


def test_integer_label_on_masked_class_is_plus_inf():
  logits = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
  where = jnp.array([True, False, True])
  value = np.asarray(sce_int_j(logits, jnp.array([1, 0]), where=where))
  assert value[0] == np.inf
  assert np.isfinite(value[1])
  assert float(sce_int_j(logits, jnp.array([1, 0]), where=where, label_smoothing=0.1)[0]) == np.inf


def test_float_labels_to_integer_version_is_type_error():
  with pytest.raises(TypeError, match="labels"):
    sce_int(jnp.zeros((2, 3)), jnp.array([0.0, 1.0]))
  with pytest.raises(TypeError, match="labels"):
    sce_int(jnp.zeros((2, 3)), [0.0, 1.0])


@pytest.mark.parametrize("bad", ["a", None, ["a", "b"], object()])
@pytest.mark.parametrize("fn", ["soft", "int"])
def test_non_numeric_labels_are_type_error(bad, fn):
  with pytest.raises(TypeError, match="labels"):
    if fn == "soft":
      sce(jnp.zeros(2), bad)
    else:
      sce_int(jnp.zeros((2, 2)), bad)


def test_soft_labels_of_wrong_shape_are_value_error():
  with pytest.raises(ValueError, match="labels"):
    sce(jnp.zeros((2, 3)), jnp.zeros((2, 4)))


def test_integer_labels_of_wrong_shape_are_value_error():
  with pytest.raises(ValueError, match="labels"):
    sce_int(jnp.zeros((2, 3)), jnp.zeros((3,), jnp.int32))


def test_eager_equals_jit():
  # The tests above call jitted twins; the eager calls give the same, edge cases included.
  logits = np.array(random_logits(8))
  logits[0, 1] = -np.inf
  labels = random_distribution(8)
  labels[0, 1] = 0.0
  where = np.ones(logits.shape, bool)
  where[1] = False  # a row excluded entirely
  ints = np.array([0, 1, 2, 3, 4, 7])  # the last is out of range
  for eager, jitted in ((sce(logits, labels, where=where), sce_j(logits, labels, where=where)),
                        (sce_int(logits, ints, where=where), sce_int_j(logits, ints,
                                                                       where=where)),
                        (sce_int(logits, ints, label_smoothing=0.1),
                         sce_int_j(logits, ints, label_smoothing=0.1))):
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-14)
  theta, features, chosen, avail = make_problem(0)
  poisoned = np.where(avail[..., None], features, np.nan)
  np.testing.assert_allclose(np.asarray(lsejax.log_linear_nll(theta, poisoned, chosen, avail)),
                             np.asarray(nll_j(theta, poisoned, chosen, avail)), rtol=1e-14)


def test_soft_label_gradient_matches_optax_at_zero_labels():
  # trainable labels (distillation): d/dy_i = lse − x_i, also where y_i = 0
  logits, labels = jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, 0.5, 0.5])
  ours = jax.grad(lsejax.softmax_cross_entropy, argnums=1)(logits, labels)
  theirs = jax.grad(optax.losses.softmax_cross_entropy, argnums=1)(logits, labels)
  np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_soft_label_gradient_at_a_neg_inf_logit_is_finite():
  g = jax.grad(lsejax.softmax_cross_entropy, argnums=1)(jnp.array([-jnp.inf, 0.0, 0.0]),
                                                        jnp.array([0.0, 1.0, 0.0]))
  assert not np.isnan(np.asarray(g)).any()
  np.testing.assert_allclose(g[1:], [np.log(2), np.log(2)], rtol=1e-12)
