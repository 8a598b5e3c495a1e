"""``softmax`` and ``log_softmax`` on the same kernel as :func:`lsejax.logsumexp`.

Both save only their output for the backward (the softmax Jacobian is ``diag(p) − p pᵀ``, the
log-softmax Jacobian ``I − 1 pᵀ``), and both follow the logsumexp conventions: a row holding +inf
gets the limit of the softmax, a row with no mass gets zeros (``softmax``) or -inf
(``log_softmax``) and a zero gradient, a NaN stays in its row.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lsejax import _args
from lsejax._kernel import compute_dtype, exponent, log_abs_total, mask, mass_weights, row_stats
from lsejax._logsumexp import in_forward_mode


def _prepare(x, axis, where, name):
  x = _args.inexact(_args.as_array(x, "x"))
  if jnp.iscomplexobj(x):
    raise TypeError(f"{name} takes real input; got dtype {x.dtype}")
  return x, x.dtype, _args.axes(axis, x.ndim), _args.where_mask(where, x.shape)


def softmax(x: ArrayLike, axis=-1, where: ArrayLike | None = None) -> jax.Array:
  r"""Softmax, the gradient of :func:`lsejax.logsumexp`.

  .. math::
    \operatorname{softmax}(x)_i = \frac{\exp(x_i)}{\sum_j \exp(x_j)}

  Args:
    x: input array, e.g. logits of shape ``[..., num_classes]``.
    axis: the axis or axes to normalise over (None: all).
    where: optional boolean mask broadcastable to ``x.shape``; excluded entries get 0.

  Returns:
    An array of the shape and dtype of ``x`` (float for integer input).

  Note:
    ``softmax([+inf, 0, +inf]) = [0.5, 0, 0.5]`` (the limit), a row with no mass (all -inf, or
    fully masked) is all zeros with zero gradient, and a NaN makes its row NaN. For forward
    mode wrap the caller in :func:`lsejax.forward_mode`.

  Examples:
    >>> import jax.numpy as jnp, lsejax
    >>> print(lsejax.softmax(jnp.array([jnp.inf, 0.0, jnp.inf])).tolist())
    [0.5, 0.0, 0.5]
  """
  x, out_dtype, axes, where = _prepare(x, axis, where, "softmax")
  return _softmax(compute_dtype(x), where, axes, in_forward_mode()).astype(out_dtype)


def log_softmax(x: ArrayLike, axis=-1, where: ArrayLike | None = None) -> jax.Array:
  r"""Log-softmax, ``x − logsumexp(x)``, exact at ±inf.

  .. math::
    \operatorname{log\_softmax}(x)_i = x_i - \log \sum_j \exp(x_j)

  Args:
    x: input array, e.g. logits of shape ``[..., num_classes]``.
    axis: the axis or axes to normalise over (None: all).
    where: optional boolean mask broadcastable to ``x.shape``; excluded entries get -inf.

  Returns:
    An array of the shape and dtype of ``x`` (float for integer input).

  Note:
    A row holding +inf gives ``-log(number of +inf entries)`` at them and -inf elsewhere; a row
    with no mass is all -inf with zero gradient. For forward mode wrap the caller in
    :func:`lsejax.forward_mode`.

  Examples:
    >>> import jax.numpy as jnp, lsejax
    >>> print(lsejax.log_softmax(jnp.array([0.0, 0.0])).round(4))
    [-0.6931 -0.6931]
  """
  x, out_dtype, axes, where = _prepare(x, axis, where, "log_softmax")
  return _log_softmax(compute_dtype(x), where, axes, in_forward_mode()).astype(out_dtype)


# ---- softmax: p = exp(x − shift) / total; Jacobian diag(p) − p pᵀ (symmetric: one map serves
# as the backward and the tangent rule).


def _softmax_value(x, where, axes):
  stats = row_stats(x, None, where, axes)
  return mask(mass_weights(x, None, where, axes, stats, jnp.ones_like(stats.total)), where, 0)


def _softmax_apply(p, where, axes, v):
  # (diag(p) − p pᵀ) v: the entries outside `where` have p = 0 and get 0.
  return mask(p * (v - jnp.sum(p * v, axis=axes, keepdims=True)), where, 0)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _softmax(x, where, axes, forward):
  return (_softmax_jvp if forward else _softmax_vjp)(x, where, axes)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _softmax_vjp(x, where, axes):
  return _softmax_value(x, where, axes)


def _softmax_vjp_fwd(x, where, axes):
  p = _softmax_value(x, where, axes)
  return p, (p, where)


def _softmax_vjp_bwd(axes, residuals, g):
  p, where = residuals
  return _softmax_apply(p, where, axes, g), None


_softmax_vjp.defvjp(_softmax_vjp_fwd, _softmax_vjp_bwd)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _softmax_jvp(x, where, axes):
  return _softmax_value(x, where, axes)


@_softmax_jvp.defjvp
def _softmax_jvp_rule(axes, primals, tangents):
  (x, where), (dx, _) = primals, tangents
  p = _softmax_value(x, where, axes)
  return p, _softmax_apply(p, where, axes, dx)


# ---- log_softmax: y = (x − shift) − log|total|; Jacobian I − 1 pᵀ with p = exp(y).


def _log_softmax_value(x, where, axes):
  # y = (x − shift) − log|total|; a row holding +inf takes the limit: −log(number of +inf
  # entries) at them and −inf elsewhere.
  stats = row_stats(x, None, where, axes)
  dead = stats.dead
  log_total = log_abs_total(x, None, where, axes, stats)
  x_in = mask(x, where, -jnp.inf)
  y = exponent(x_in, stats) - jnp.where(dead, 0, log_total)
  at_inf = jnp.where(x_in == jnp.inf, -log_total, -jnp.inf)  # total counts the +inf entries
  y = jnp.where(stats.inf_row, at_inf, y)
  return jnp.where(dead, -jnp.inf, y), dead


def _log_softmax_tangent(y, dead, where, axes, dx):
  # dy = dx − Σ p dx
  dy = dx - jnp.sum(jnp.exp(y) * mask(dx, where, 0), axis=axes, keepdims=True)
  return jnp.where(dead, 0, mask(dy, where, 0))


def _log_softmax_cotangent(y, dead, where, axes, g):
  # x̄ = g − p Σ g  (entries outside `where`, and rows with no mass, are constants: 0)
  g = jnp.where(dead, 0, mask(g, where, 0))
  return mask(g - jnp.exp(y) * jnp.sum(g, axis=axes, keepdims=True), where, 0)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _log_softmax(x, where, axes, forward):
  return (_log_softmax_jvp if forward else _log_softmax_vjp)(x, where, axes)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _log_softmax_vjp(x, where, axes):
  return _log_softmax_value(x, where, axes)[0]


def _log_softmax_vjp_fwd(x, where, axes):
  y, dead = _log_softmax_value(x, where, axes)
  return y, (y, dead, where)


def _log_softmax_vjp_bwd(axes, residuals, g):
  y, dead, where = residuals
  return _log_softmax_cotangent(y, dead, where, axes, g), None


_log_softmax_vjp.defvjp(_log_softmax_vjp_fwd, _log_softmax_vjp_bwd)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _log_softmax_jvp(x, where, axes):
  return _log_softmax_value(x, where, axes)[0]


@_log_softmax_jvp.defjvp
def _log_softmax_jvp_rule(axes, primals, tangents):
  (x, where), (dx, _) = primals, tangents
  y, dead = _log_softmax_value(x, where, axes)
  return y, _log_softmax_tangent(y, dead, where, axes, dx)
