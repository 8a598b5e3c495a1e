"""``logsumexp``: a ``jax.custom_vjp`` reduction with the closed-form softmax gradient.

The forward pass is :func:`lsejax._kernel.row_stats`; the backward is the closed form

    ∂/∂a_i log|Σ_j b_j exp(a_j)| = b_i exp(a_i − lse) · sign,   ∂/∂b_i = exp(a_i − lse) · sign,

computed from the input and two numbers per row saved by the forward (the row max and the
shifted sum). Nothing N×V is saved beyond the input itself.

JAX refuses forward mode (``jax.jvp``, ``jax.jacfwd``) of a custom_vjp function (forward-over-
reverse, as in ``jax.hessian``, works: it differentiates the backward). :func:`forward_mode`
switches every lsejax primitive called inside a function to a ``jax.custom_jvp`` twin with the
same closed form, for code that needs forward mode.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Callable, TypeVar

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lsejax import _args
from lsejax._kernel import (RowStats, compute_dtype, live_mask, log_abs_total, mask, mass_weights,
                            row_stats)

_F = TypeVar("_F", bound=Callable)
if hasattr(jax, "make_user_context"):
  # A context JAX's trace caches key on: a jit, scan or cond body traced for reverse mode is
  # traced again inside forward_mode, and forward_mode(jax.jit(f)) works.
  _FORWARD = jax.make_user_context(default_value=False)
  _forward_value = lambda: bool(_FORWARD.value)  # noqa: E731
else:  # older JAX: a plain context variable (apply forward_mode inside jit, before any trace)
  _FORWARD_VAR = contextvars.ContextVar("lsejax_forward_mode", default=False)

  @contextlib.contextmanager
  def _FORWARD(value):  # noqa: N802
    token = _FORWARD_VAR.set(value)
    try:
      yield
    finally:
      _FORWARD_VAR.reset(token)

  _forward_value = _FORWARD_VAR.get
trace_count = 0  # how many times a primitive body was traced (tests check that jit caches it)


def forward_mode(fun: _F) -> _F:
  """Makes ``fun`` differentiable in forward mode (``jax.jvp``, ``jax.jacfwd``).

  Inside ``fun``, every lsejax primitive runs as a ``jax.custom_jvp`` function whose tangent rule
  is the same closed form (softmax-weighted sum of the tangents) that the default custom_vjp
  backward applies; reverse mode through it transposes that rule. Outside, nothing changes:
  ``jax.grad`` of the undecorated function runs the hand-written backward.

  The mode is part of JAX's trace-cache key, so ``forward_mode(jax.jit(f))`` and
  ``jax.jit(forward_mode(f))`` both work, also after ``f`` was traced for reverse mode.

  Examples:
    >>> import jax, jax.numpy as jnp, lsejax
    >>> h = jax.jacfwd(jax.jacfwd(lsejax.forward_mode(lsejax.logsumexp)))(jnp.array([0.0, 0.0]))
    >>> print(h.round(2).tolist())
    [[0.25, -0.25], [-0.25, 0.25]]
  """

  @functools.wraps(fun)
  def wrapped(*args, **kwargs):
    with _FORWARD(True):
      return fun(*args, **kwargs)

  return wrapped  # type: ignore[return-value]


def in_forward_mode() -> bool:
  """Whether the caller runs inside :func:`forward_mode` (the primitives pass it on as static)."""
  return _forward_value()


def logsumexp(a: ArrayLike, axis=None, b: ArrayLike | None = None, keepdims: bool = False,
              return_sign: bool = False, where: ArrayLike | None = None):
  r"""Log-sum-exp reduction with a hand-written closed-form gradient.

  .. math::
    \operatorname{logsumexp}(a) = \log \sum_i b_i \exp(a_i),
    \qquad \frac{\partial}{\partial a_i} = b_i \exp(a_i - \operatorname{logsumexp}(a))

  Same signature and semantics as :func:`jax.nn.logsumexp` and :func:`scipy.special.logsumexp`,
  plus the conventions below where those return NaN or lose precision.

  Args:
    a: input array, any shape. Integers and bools are promoted to float; float16 and bfloat16
      are reduced in float32 and the result is returned in the input dtype.
    axis: None (all axes), an int or a tuple of ints; negative values count from the end.
    b: optional weights broadcastable to ``a.shape``; may be zero or negative.
    keepdims: keep the reduced axes as size 1.
    return_sign: return ``(log|s|, sign(s))`` instead of ``log s`` (which is NaN for ``s < 0``).
    where: optional boolean mask broadcastable to ``a.shape``: entries to include.

  Returns:
    The reduction, of shape ``a.shape`` without the reduced axes (kept as 1 with
    ``keepdims``), or a pair ``(result, sign)`` with ``return_sign``.

  Note:
    Conventions (value; gradient):

    * no mass in the row (all -inf, fully masked, all weights 0, empty): -inf; gradient 0.
    * +inf entries: +inf; the gradient is the limit of the softmax, split evenly between tied
      +inf entries.
    * NaN in the row (outside the mask and at nonzero weight): NaN for that row only.
    * ``a_i`` whose weight is 0 or that ``where`` excludes is ignored, NaN included; the gradient
      with respect to a zero weight is still ``exp(a_i − lse)``.
    * a dominant term keeps the tiny rest (log1p).

    ``jax.grad``, ``jax.vjp`` and ``jax.jacrev`` run the custom_vjp backward; second derivatives
    (``jacrev(jacrev)``, ``jax.hessian``) differentiate that backward: the Hessian is
    ``diag(p) − p pᵀ``. JAX refuses ``jax.jvp`` and ``jax.jacfwd`` of a custom_vjp function: for
    those, wrap the function in :func:`forward_mode`.
    Complex inputs follow :func:`jax.nn.logsumexp`; their gradient is the holomorphic one.

  Examples:
    >>> import jax, jax.numpy as jnp, lsejax
    >>> print(f"{lsejax.logsumexp(jnp.array([1.0, 2.0, 3.0])):.6f}")
    3.407606
    >>> print(jax.grad(lsejax.logsumexp)(jnp.array([0.0, jnp.log(3.0)])).round(4).tolist())
    [0.25, 0.75]
    >>> print(lsejax.logsumexp(jnp.array([-jnp.inf, -jnp.inf])))
    -inf
  """
  a = _args.inexact(_args.as_array(a, "a"))
  reduced = _args.axes(axis, a.ndim)
  if b is not None:
    b = _args.broadcast_to(b, a.shape, "b")
    # Integer or bool weights take the dtype of `a`: they must not widen a float16 result.
    common = a.dtype if jnp.issubdtype(b.dtype, jnp.integer) or b.dtype == bool else (
        jnp.result_type(a, b))
    a, b = a.astype(common), b.astype(common)
  where = _args.where_mask(where, a.shape)
  for name, flag in (("keepdims", keepdims), ("return_sign", return_sign)):
    if not isinstance(flag, (bool, int)):
      raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
  out, sign = _logsumexp(a, b, where, reduced, bool(keepdims), bool(return_sign),
                         in_forward_mode())
  if jnp.iscomplexobj(a):
    return (out, sign) if return_sign else out
  out, sign = out.astype(a.dtype), sign.astype(a.dtype)  # float16/bfloat16 summed in float32
  return (out, sign) if return_sign else out


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _logsumexp(a, b, where, axes, keepdims, return_sign, forward):
  global trace_count
  trace_count += 1
  reduce = _lse_jvp if forward else _lse_vjp
  out, sign = reduce(a, b, where, axes, return_sign)
  if not keepdims:
    out, sign = jnp.squeeze(out, axes), jnp.squeeze(sign, axes)
  return out, sign


def _value(a, b, where, axes, stats: RowStats, return_sign: bool):
  """``(value, sign)``: the value is NaN for a negative sum unless ``return_sign``, and the
  complex log for complex input."""
  value = stats.shift + log_abs_total(a, b, where, axes, stats)
  if jnp.iscomplexobj(stats.total):
    if not return_sign:
      value = value + 1j * jnp.angle(stats.sign)
  elif not return_sign:
    value = jnp.where(stats.sign < 0, jnp.nan, value)
  return value, stats.sign


def _cotangents(a, b, where, axes, stats: RowStats, g, return_sign: bool):
  """``(g·∂/∂a, g·∂/∂b)``: the closed form, with the guards of the conventions."""
  if not return_sign and not jnp.iscomplexobj(g):
    g = jnp.where(stats.sign < 0, jnp.nan, g)  # a NaN value gets a NaN gradient
  q = mass_weights(a, b, where, axes, stats, g)  # g · exp(a − shift) / total = g · ∂/∂b
  if b is None:
    return mask(q, where, 0).astype(a.dtype), None
  grad_a = mask(compute_dtype(b) * q, live_mask(b, where), 0)
  grad_b = jnp.where(stats.dead, 0, mask(q, where, 0))
  return grad_a.astype(a.dtype), grad_b.astype(b.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _lse_vjp(a, b, where, axes, return_sign):
  return _value(a, b, where, axes, row_stats(a, b, where, axes), return_sign)


def _lse_vjp_fwd(a, b, where, axes, return_sign):
  stats = row_stats(a, b, where, axes)
  return _value(a, b, where, axes, stats, return_sign), (a, b, where, stats)


def _lse_vjp_bwd(axes, return_sign, residuals, cotangents):
  # ∂/∂a = b·exp(a − lse)·sign, ∂/∂b = exp(a − lse)·sign; the sign output is piecewise constant.
  a, b, where, stats = residuals
  g, _ = cotangents
  grad_a, grad_b = _cotangents(a, b, where, axes, stats, g, return_sign)
  return grad_a, grad_b, None


_lse_vjp.defvjp(_lse_vjp_fwd, _lse_vjp_bwd)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _lse_jvp(a, b, where, axes, return_sign):
  return _value(a, b, where, axes, row_stats(a, b, where, axes), return_sign)


@_lse_jvp.defjvp
def _lse_jvp_rule(axes, return_sign, primals, tangents):
  # d lse = Σ_i ∂/∂a_i · da_i + ∂/∂b_i · db_i, with the same closed form as the backward.
  a, b, where = primals
  da, db, _ = tangents
  stats = row_stats(a, b, where, axes)
  value, sign = _value(a, b, where, axes, stats, return_sign)
  grad_a, grad_b = _cotangents(a, b, where, axes, stats, jnp.ones_like(value), return_sign)
  dvalue = jnp.sum(compute_dtype(grad_a * da), axis=axes, keepdims=True)
  if b is not None:
    # ∂/∂b at an ignored entry (zero weight) holding NaN or +inf is NaN/inf; a tangent of 0 there
    # would spread it over the row (0 · NaN), so such weights count as 0 in forward mode.
    grad_b = jnp.where(live_mask(b, where) | jnp.isfinite(grad_b), grad_b, 0)
    dvalue = dvalue + jnp.sum(compute_dtype(grad_b * db), axis=axes, keepdims=True)
  return (value, sign), (dvalue.astype(value.dtype), jnp.zeros_like(sign))
