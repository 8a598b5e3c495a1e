"""Losses of the form ``logsumexp(scores) − score of the target``, one value per example.

Each is ``−log p(target)`` under a softmax, so its gradient with respect to the scores is
``p − target``; with respect to the parameters of linear scores ``θ·x`` it is
``E_p[x] − x_target``. All of them reduce through :func:`lsejax.logsumexp`, so the closed-form
backward and the ±inf/NaN conventions carry over.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lsejax import _args
from lsejax._logsumexp import logsumexp


def _int_axis(axis, ndim: int) -> int:
  try:
    axis = operator.index(axis)
  except TypeError:
    raise TypeError(f"axis must be an int, got {axis!r}") from None
  return _args.axes(axis, ndim)[0]


def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, axis=-1,
                          where: ArrayLike | None = None) -> jax.Array:
  r"""Cross-entropy between a label distribution and the softmax of ``logits``.

  .. math::
    \ell = -\sum_i y_i \log \operatorname{softmax}(x)_i
         = \sum_i y_i \left(\operatorname{logsumexp}(x) - x_i\right)

  Classes with ``y_i = 0`` contribute nothing, even when their logit is -inf (where ``optax``
  returns NaN); as in optax, classes outside ``where`` leave the sum, label mass included.

  Args:
    logits: scores of shape ``[..., num_classes]``.
    labels: label distributions of the same shape as ``logits``.
    axis: the class axis or axes.
    where: optional boolean mask of classes to include, broadcastable to ``logits.shape``.

  Returns:
    The loss per example, of shape ``logits.shape`` without ``axis``. A row that ``where``
    excludes entirely gives 0 with zero gradient; a label on a -inf logit gives +inf.

  Examples:
    >>> import jax.numpy as jnp, lsejax
    >>> logits = jnp.array([-jnp.inf, 0.0, 0.0])
    >>> print(f"{lsejax.softmax_cross_entropy(logits, jnp.array([0.0, 1.0, 0.0])):.4f}")
    0.6931
  """
  logits = _args.inexact(_args.as_array(logits, "logits"))
  labels = _args.as_array(labels, "labels")
  if labels.shape != logits.shape:
    raise ValueError(f"labels of shape {labels.shape} must have the shape {logits.shape} of logits")
  labels = labels.astype(logits.dtype)
  axes = _args.axes(axis, logits.ndim)
  where = _args.where_mask(where, logits.shape)
  lse = logsumexp(logits, axis=axes, where=where, keepdims=True)
  surprisal = lse - logits  # −log softmax: +inf at a −inf logit
  # A zero label at a −inf logit contributes 0, not 0·inf = NaN; elsewhere the product is kept,
  # so the gradient with respect to a zero label is still its surprisal.
  safe = jnp.where((labels != 0) | jnp.isfinite(surprisal), surprisal, 0)
  terms = labels * safe
  if where is not None:
    terms = jnp.where(where, terms, 0)  # as optax: excluded classes leave the sum
  return jnp.sum(terms, axis=axes).astype(logits.dtype)


def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike, labels: ArrayLike, *, axis=-1, where: ArrayLike | None = None,
    label_smoothing: float = 0.0) -> jax.Array:
  r"""Cross-entropy with integer class labels: ``logsumexp(x) − x[label]``.

  .. math::
    \ell = \operatorname{logsumexp}(x) - (1 - \varepsilon)\, x_{y}
           - \frac{\varepsilon}{K} \sum_{k} x_k

  with ``ε = label_smoothing`` and ``K`` the number of classes included by ``where``.

  Args:
    logits: scores of shape ``[..., num_classes]``.
    labels: integer labels of shape ``logits.shape`` without ``axis``.
    axis: the class axis (an int).
    where: optional boolean mask of classes to include, broadcastable to ``logits.shape``.
    label_smoothing: ``ε`` in ``[0, 1)``.

  Returns:
    The loss per example, of the shape of ``labels``. A row that ``where`` excludes entirely
    gives 0 with zero gradient; a label outside ``[0, num_classes)`` gives NaN, and a label on
    an excluded class or a -inf logit gives +inf (its probability is 0).

  Examples:
    >>> import jax.numpy as jnp, lsejax
    >>> logits = jnp.array([[0.0, 0.0], [0.0, jnp.log(3.0)]])
    >>> print(lsejax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1])).round(4))
    [0.6931 0.2877]
  """
  logits = _args.inexact(_args.as_array(logits, "logits"))
  labels = _args.as_array(labels, "labels")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise TypeError(f"labels must be an integer array, got dtype {labels.dtype}")
  axis = _int_axis(axis, logits.ndim)
  if labels.shape != logits.shape[:axis] + logits.shape[axis + 1:]:
    raise ValueError(f"labels of shape {labels.shape} do not match logits of shape "
                     f"{logits.shape} without axis {axis}")
  if not 0.0 <= float(label_smoothing) < 1.0:
    raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
  where = _args.where_mask(where, logits.shape)
  num_classes = logits.shape[axis]
  lse = logsumexp(logits, axis=axis, where=where)
  valid = (labels >= 0) & (labels < num_classes)
  index = jnp.expand_dims(jnp.where(valid, labels, 0), axis)
  target = jnp.take_along_axis(logits, index, axis=axis).squeeze(axis)
  if where is not None:
    target_kept = jnp.take_along_axis(where, index, axis=axis).squeeze(axis)
    target = jnp.where(target_kept, target, -jnp.inf)
  loss = lse - target
  if label_smoothing:
    kept = jnp.ones(logits.shape, bool) if where is None else where
    count = jnp.sum(kept, axis=axis)
    mean = jnp.sum(jnp.where(kept, logits, 0), axis=axis) / jnp.maximum(count, 1)
    loss = lse - (1 - label_smoothing) * target - label_smoothing * mean
  loss = jnp.where(valid, loss, jnp.nan)
  if where is not None:
    loss = jnp.where(jnp.any(where, axis=axis), loss, 0)
  return loss.astype(logits.dtype)


def log_linear_nll(theta: ArrayLike, features: ArrayLike, chosen: ArrayLike,
                   where: ArrayLike | None = None) -> jax.Array:
  r"""Negative log-likelihood of the log-linear (conditional logit) model, per case.

  .. math::
    -\log p(j \mid \theta) = \log \sum_{k \text{ available}} \exp(\theta \cdot x_k)
                             - \theta \cdot x_j,
    \qquad \nabla_\theta = \mathbb{E}_p[x] - x_j

  Args:
    theta: coefficients of shape ``[k]``.
    features: attributes of shape ``[..., num_alternatives, k]``.
    chosen: integer index of the chosen alternative, of shape ``[...]``.
    where: optional availability mask of shape ``[..., num_alternatives]``; features of
      unavailable alternatives are never read (they may be NaN).

  Returns:
    The negative log-likelihood of each case, of shape ``[...]`` (no reduction).

  Examples:
    >>> import jax.numpy as jnp, lsejax
    >>> x = jnp.array([[[1.0], [0.0]]])      # one case, two alternatives, one feature
    >>> print(lsejax.log_linear_nll(jnp.array([0.0]), x, jnp.array([0])).round(4))
    [0.6931]
  """
  theta = _args.as_array(theta, "theta")
  features = _args.as_array(features, "features")
  if theta.ndim != 1:
    raise ValueError(f"theta must be a vector [k], got shape {theta.shape}")
  if features.ndim < 2 or features.shape[-1] != theta.shape[0]:
    raise ValueError(f"features must have shape [..., num_alternatives, {theta.shape[0]}], "
                     f"got {features.shape}")
  if where is not None:
    where = _args.where_mask(where, features.shape[:-1])
    features = jnp.where(where[..., None], features, 0)  # so that NaN never meets a 0 cotangent
  utilities = jnp.einsum("...ak,k->...a", features, theta)
  return softmax_cross_entropy_with_integer_labels(utilities, chosen, where=where)
