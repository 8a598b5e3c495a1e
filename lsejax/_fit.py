"""Minimising a loss with an optax optimizer, the whole loop inside one ``lax.while_loop``."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu
from jax import lax


class FitResult(NamedTuple):
  """What :func:`fit` returns."""

  params: Any  # the minimiser (a pytree like the initial parameters)
  value: jax.Array  # the loss there
  grad_norm: jax.Array  # the max-abs gradient there
  iterations: jax.Array  # optimizer steps taken
  converged: jax.Array  # whether the gradient tolerance was met
  history: jax.Array  # loss after each step: [max_steps + 1], NaN past ``iterations``


def _max_abs(tree) -> jax.Array:
  return jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree)]))


def fit(loss: Callable[..., jax.Array], init_params, *args,
        optimizer: optax.GradientTransformation | None = None, max_steps: int = 500,
        tol: float = 1e-6, callback: Callable | None = None) -> FitResult:
  r"""Minimises ``loss(params, *args)`` with an optax optimizer, compiled as one loop.

  The default optimizer is ``optax.lbfgs()`` with its zoom line search (the loss and its
  gradient are then taken from the line search's state, not recomputed); any other optax
  transformation (``optax.adam(1e-2)``, …) works too. The loop stops when the largest absolute
  gradient entry is below ``tol`` or after ``max_steps`` steps.

  Args:
    loss: scalar function of ``(params, *args)``; jit-compatible.
    init_params: the starting point (any pytree of float arrays).
    *args: extra arguments passed to ``loss`` (data), not differentiated.
    optimizer: an optax ``GradientTransformation``; default ``optax.lbfgs()``.
    max_steps: the most optimizer steps.
    tol: the gradient tolerance (max-abs entry).
    callback: optional ``callback(step, value, grad_norm)`` called on the host after every
      step (through ``jax.debug.callback``), e.g. to show progress.

  Returns:
    A :class:`FitResult` with the parameters, final loss, gradient norm, iterations,
    convergence flag and the loss history.

  Examples:
    >>> import jax.numpy as jnp, lsejax
    >>> res = lsejax.fit(lambda p: jnp.sum((p - 3.0) ** 2), jnp.zeros(2))
    >>> print(res.params.round(4).tolist(), bool(res.converged))
    [3.0, 3.0] True
  """
  return fit_function(loss, optimizer=optimizer, max_steps=max_steps, tol=tol,
                      callback=callback)(init_params, *args)


def fit_function(loss: Callable[..., jax.Array], *,
                 optimizer: optax.GradientTransformation | None = None, max_steps: int = 500,
                 tol: float = 1e-6, callback: Callable | None = None
                 ) -> Callable[..., FitResult]:
  """The jitted ``(init_params, *args) -> FitResult`` loop behind :func:`fit`.

  Use it to compile once and fit many data sets of the same shapes, or to time compilation
  apart from the run (``fit_function(loss).lower(params, *args).compile()``). The arguments are
  those of :func:`fit`.

  Examples:
    >>> import jax.numpy as jnp, lsejax
    >>> run = lsejax.fit_function(lambda p, c: jnp.sum((p - c) ** 2))
    >>> print(run(jnp.zeros(2), jnp.array([1.0, 2.0])).params.round(4).tolist())
    [1.0, 2.0]
  """
  if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
    raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
  if not float(tol) > 0:
    raise ValueError(f"tol must be positive, got {tol!r}")
  optimizer = optax.lbfgs() if optimizer is None else optimizer
  takes_extra_args = isinstance(optimizer, optax.GradientTransformationExtraArgs)
  tol = float(tol)

  @jax.jit
  def run(init_params, *args) -> FitResult:
    objective = lambda params: loss(params, *args)  # noqa: E731

    def value_and_grad(params, state):
      # L-BFGS's line search already evaluated the loss and gradient at the new point.
      if otu.tree_get(state, "value") is not None:
        return optax.value_and_grad_from_state(objective)(params, state=state)
      return jax.value_and_grad(objective)(params)

    def keep_going(carry):
      _, _, _, grad, step, _ = carry
      return (step < max_steps) & (_max_abs(grad) >= tol)

    def body(carry):
      params, state, value, grad, step, history = carry
      extra = dict(value=value, grad=grad, value_fn=objective) if takes_extra_args else {}
      updates, state = optimizer.update(grad, state, params, **extra)
      params = optax.apply_updates(params, updates)
      value, grad = value_and_grad(params, state)
      if callback is not None:
        jax.debug.callback(callback, step + 1, value, _max_abs(grad), ordered=True)
      return params, state, value, grad, step + 1, history.at[step + 1].set(value)

    state = optimizer.init(init_params)
    value, grad = value_and_grad(init_params, state)
    history = jnp.full((max_steps + 1,), jnp.nan, value.dtype).at[0].set(value)
    carry = (init_params, state, value, grad, jnp.asarray(0), history)
    params, _, value, grad, step, history = lax.while_loop(keep_going, body, carry)
    norm = _max_abs(grad)
    return FitResult(params, value, norm, step, norm < tol, history)

  return run
