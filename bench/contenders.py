"""The contenders: what is timed, and how each one is built for a given input.

Every contender reduces the last axis of a 2-D array. JAX contenders are plain row functions
``x -> (rows,)``; the harness jits them for the forward and jits
``jax.value_and_grad(lambda x: jnp.sum(f(x)))`` for the forward+backward. scipy and torch are
wrapped in the same ``prepare(x) -> call() -> result`` shape so the timing loop treats all alike.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import lsejax

FWD = "fwd"
FWDBWD = "fwdbwd"
MODES = (FWD, FWDBWD)
REFERENCE = "jax_nn"  # ratios are to this contender, and the sanity check compares against it


@dataclasses.dataclass(frozen=True)
class Contender:
  name: str  # key in the JSON
  label: str  # for the table and the plot
  kind: str  # "jax", "scipy" or "torch"
  modes: tuple[str, ...]
  limit: bool = False  # a limit row (not a logsumexp): no sanity check against jax.nn
  row_fn: Callable[[jax.Array], jax.Array] | None = None  # JAX contenders only


def _naive(x):
  return jnp.log(jnp.sum(jnp.exp(x), axis=-1))


JAX_CONTENDERS = (
    Contender("lsejax", "lsejax.logsumexp", "jax", MODES,
              row_fn=lambda x: lsejax.logsumexp(x, axis=-1)),
    Contender("jax_nn", "jax.nn.logsumexp", "jax", MODES,
              row_fn=lambda x: jax.nn.logsumexp(x, axis=-1)),
    Contender("naive", "log(sum(exp(x)))", "jax", MODES, row_fn=_naive),
    Contender("sum_exp", "limit: sum(exp(x)) pass", "jax", (FWD,), limit=True,
              row_fn=lambda x: jnp.sum(jnp.exp(x), axis=-1)),
    Contender("sum", "limit: sum(x) pass", "jax", (FWD,), limit=True,
              row_fn=lambda x: jnp.sum(x, axis=-1)),
)
SCIPY = Contender("scipy", "scipy.special.logsumexp", "scipy", (FWD,))
TORCH = Contender("torch", "torch.logsumexp (CPU)", "torch", MODES)
# Not timed: a GPU-only estimate added by the harness (see bench.run.hbm_roofline).
ROOFLINE = Contender("hbm_roofline", "limit: HBM roofline (estimate)", "estimate", MODES,
                     limit=True)

ALL_NAMES = tuple(c.name for c in JAX_CONTENDERS) + (SCIPY.name, TORCH.name)


def torch_module():
  """``(torch, None)`` if torch imports, else ``(None, reason)``."""
  try:
    return importlib.import_module("torch"), None
  except Exception as err:  # ImportError, or a broken install: skip cleanly either way
    return None, f"torch not importable: {type(err).__name__}: {err}"


def jax_function(contender: Contender, mode: str) -> Callable:
  """The (unjitted) function timed for ``mode``: rows, or ``(sum of rows, grad)``."""
  f = contender.row_fn
  if mode == FWD:
    return f
  return jax.value_and_grad(lambda x: jnp.sum(f(x)))


def scipy_call(x: jax.Array, mode: str) -> tuple[Callable[[], Any] | None, str | None]:
  """``(call, None)``, or ``(None, reason)`` where scipy cannot run this input."""
  del mode
  if x.dtype == jnp.bfloat16:
    return None, "numpy/scipy have no bfloat16 arithmetic"
  import scipy.special

  host = np.asarray(x)
  return (lambda: scipy.special.logsumexp(host, axis=-1)), None


def torch_call(torch, x: jax.Array, mode: str) -> tuple[Callable[[], Any] | None, str | None]:
  """A torch CPU call on a copy of ``x`` (bfloat16 as torch.bfloat16)."""
  host = np.asarray(x.astype(jnp.float32))
  t = torch.from_numpy(host)
  if x.dtype == jnp.bfloat16:
    t = t.to(torch.bfloat16)
  t = t.contiguous()
  if mode == FWD:
    def call():
      with torch.no_grad():
        return torch.logsumexp(t, dim=-1)
    return call, None
  leaf = t.detach().requires_grad_(True)

  def call_grad():
    value = torch.logsumexp(leaf, dim=-1).sum()
    (grad,) = torch.autograd.grad(value, leaf)
    return value.detach(), grad
  return call_grad, None


def to_numpy(result) -> Any:
  """Results (JAX, numpy or torch; a value or a ``(value, grad)`` pair) as float64 numpy."""
  if isinstance(result, tuple):
    return tuple(to_numpy(r) for r in result)
  if hasattr(result, "detach"):  # torch
    result = result.detach().float().numpy()
  return np.asarray(np.asarray(result).astype(np.float32), dtype=np.float64)
