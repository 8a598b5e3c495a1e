"""The edge-case suite behind ``lsejax check``: each convention of the README, by example.

Every case computes something with lsejax and compares it with a float64 reference written
independently (numpy closed forms and the limits the conventions define). The error of a case is
the largest relative difference; matching infinities and NaNs count as exact, a mismatch as inf.
Needs ``jax_enable_x64`` for the float64 cases (the CLI turns it on).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lsejax._logsumexp import forward_mode, logsumexp
from lsejax._losses import softmax_cross_entropy, softmax_cross_entropy_with_integer_labels
from lsejax._softmax import log_softmax, softmax

inf, nan = np.inf, np.nan
f16, f32, f64 = jnp.float16, jnp.float32, jnp.float64
_TOL = {np.dtype(np.float16): 2e-3, np.dtype(jnp.bfloat16): 1e-2, np.dtype(np.float32): 2e-6,
        np.dtype(np.float64): 1e-13, np.dtype(np.complex128): 1e-13}


class Case(NamedTuple):
  kind: str
  name: str
  compute: Callable[[], object]  # lsejax's answer (array or tuple of arrays)
  want: object  # the float64 reference, same structure
  dtype: type = f64  # the precision the case runs in (sets the tolerance)


class KindResult(NamedTuple):
  kind: str
  cases: int
  worst_error: float  # the relative error of the case nearest its tolerance
  tolerance: float  # that case's tolerance (by its dtype)
  failures: tuple[str, ...]  # names of the cases beyond their tolerance

  @property
  def ok(self) -> bool:
    return not self.failures


def relative_error(got, want) -> float:
  """Largest relative difference; equal infinities and NaN-for-NaN are exact."""
  got = np.asarray(got, np.complex128 if np.iscomplexobj(got) else np.float64)
  want = np.broadcast_to(np.asarray(want, got.dtype), got.shape)
  if got.shape != want.shape:
    return inf
  same = (got == want) | (np.isnan(got) & np.isnan(want))
  finite = np.isfinite(got) & np.isfinite(want)
  if np.any(~same & ~finite):
    return inf
  err = np.abs(got[finite] - want[finite]) / np.maximum(np.abs(want[finite]), 1e-30)
  return float(err.max(initial=0.0))


def _grad(f, *args, **kw):
  return lambda: jax.grad(f, **kw)(*args)


def _lse_row_sum(x):
  return jnp.sum(logsumexp(x, axis=1))


def _cases() -> list[Case]:
  a7, b7 = jnp.zeros(3), jnp.array([2.0, 0.0, 5.0])
  rows = jnp.array([[1.0, 2.0], [-inf, -inf]])
  s12 = np.exp([1.0, 2.0]) / np.exp([1.0, 2.0]).sum()
  big_nan = jnp.zeros(5000, f32).at[1234].set(nan)
  signed_a, signed_b = jnp.array([0.0, 1.0]), jnp.array([1.0, -1.0])
  s = 1 - math.e
  z = jnp.array([1 + 1j, 2 - 0.5j, 0.3j])
  zz = np.array([1 + 1j, 2 - 0.5j, 0.3j])
  lse_f16 = lambda x: logsumexp(x).astype(f32)  # noqa: E731
  return [
      # 1. No mass: -inf, gradient 0 (second derivatives and nested too).
      Case("no mass", "[-inf,-inf] value", lambda: logsumexp(jnp.array([-inf, -inf])), -inf),
      Case("no mass", "[-inf,-inf] grad", _grad(logsumexp, jnp.array([-inf, -inf])), [0, 0]),
      Case("no mass", "rows grad", _grad(_lse_row_sum, rows), [s12, [0, 0]]),
      Case("no mass", "fully masked", lambda: logsumexp(jnp.ones(3), where=jnp.zeros(3, bool)),
           -inf),
      Case("no mass", "all weights 0 grad",
           _grad(lambda a: logsumexp(a, b=jnp.zeros(3)), jnp.ones(3)), [0, 0, 0]),
      Case("no mass", "second derivative",
           lambda: jax.jacrev(jax.jacrev(logsumexp))(jnp.array([-inf, -inf])), np.zeros((2, 2))),
      Case("no mass", "nested grad", _grad(
          lambda x: logsumexp(jnp.stack([logsumexp(x[0]), logsumexp(x[1])])), rows),
           [s12, [0, 0]]),
      # 2. +inf: value +inf, gradient the limit of the softmax.
      Case("+inf", "[0,+inf] grad", _grad(logsumexp, jnp.array([0.0, inf])), [0, 1]),
      Case("+inf", "[+inf] grad", _grad(logsumexp, jnp.array([inf])), [1]),
      Case("+inf", "[-inf] grad", _grad(logsumexp, jnp.array([-inf])), [0]),
      Case("+inf", "softmax [+inf,0]", lambda: softmax(jnp.array([inf, 0.0])), [1, 0]),
      Case("+inf", "softmax [+inf,0,+inf]", lambda: softmax(jnp.array([inf, 0.0, inf])),
           [0.5, 0, 0.5]),
      Case("+inf", "[+inf,0,+inf] value and grad", lambda: jax.value_and_grad(logsumexp)(
          jnp.array([inf, 0.0, inf])), (inf, [0.5, 0, 0.5])),
      # 3. NaN: only its row; ignored where masked out or at zero weight.
      Case("NaN", "row NaN, other row untouched",
           lambda: logsumexp(jnp.array([[nan, 1.0], [0.0, 0.0]]), axis=1), [nan, math.log(2)]),
      Case("NaN", "row NaN grad", _grad(_lse_row_sum, jnp.array([[nan, 1.0], [0.0, 0.0]])),
           [[nan, nan], [0.5, 0.5]]),
      Case("NaN", "[nan,1], b=[0,1]", lambda: jax.value_and_grad(
          lambda a: logsumexp(a, b=jnp.array([0.0, 1.0])))(jnp.array([nan, 1.0])), (1, [0, 1])),
      Case("NaN", "NaN outside where", lambda: logsumexp(
          jnp.array([nan, 1.0]), where=jnp.array([False, True])), 1),
      Case("NaN", "float32 x 5000 with one NaN", lambda: logsumexp(big_nan), nan, f32),
      # 4. Weights: gradient wrt b right at b == 0, in both modes; signs.
      Case("weights", "value log 7", lambda: logsumexp(a7, b=b7), math.log(7)),
      Case("weights", "d/db reverse", _grad(lambda b: logsumexp(a7, b=b), b7), [1 / 7] * 3),
      Case("weights", "d/db forward", lambda: jax.jacfwd(forward_mode(
          lambda b: logsumexp(a7, b=b)))(b7), [1 / 7] * 3),
      Case("weights", "return_sign value", lambda: logsumexp(
          signed_a, b=signed_b, return_sign=True), (math.log(-s), -1)),
      Case("weights", "return_sign grad", _grad(
          lambda a: logsumexp(a, b=signed_b, return_sign=True)[0], signed_a),
           [1 / s, -math.e / s]),
      Case("weights", "negative sum without sign", lambda: logsumexp(signed_a, b=signed_b), nan),
      Case("weights", "cancelling sum", lambda: logsumexp(
          jnp.zeros(2), b=signed_b, return_sign=True), (-inf, 0)),
      Case("weights", "empty sum sign", lambda: logsumexp(jnp.zeros(0), return_sign=True),
           (-inf, 0)),
      # 5. A dominant term keeps the tiny rest.
      Case("dominant term", "[0,-40]", lambda: logsumexp(jnp.array([0.0, -40.0])),
           math.log1p(math.exp(-40))),
      Case("dominant term", "[5,-35]", lambda: logsumexp(jnp.array([5.0, -35.0])),
           5 + math.log1p(math.exp(-40))),
      Case("dominant term", "[0,0,-40]", lambda: logsumexp(jnp.array([0.0, 0.0, -40.0])),
           math.log(2) + math.log1p(math.exp(-40) / 2)),
      Case("dominant term", "float32 [0,-20]", lambda: logsumexp(jnp.array([0.0, -20.0], f32)),
           math.log1p(math.exp(-20)), f32),
      # 6. Low precision: reduced in float32, returned in the input dtype.
      Case("low precision", "f16 zeros(65536)", lambda: logsumexp(jnp.zeros(65536, f16)),
           math.log(65536), f16),
      Case("low precision", "f16 zeros(65536) grad", _grad(lse_f16, jnp.zeros(65536, f16)),
           1 / 65536, f16),
      Case("low precision", "f16 log_softmax(zeros(70000))",
           lambda: log_softmax(jnp.zeros(70000, f16)), -math.log(70000), f16),
      Case("low precision", "bf16 zeros(65536)",
           lambda: logsumexp(jnp.zeros(65536, jnp.bfloat16)), math.log(65536), jnp.bfloat16),
      # 7. Empty and integer inputs.
      Case("empty/integer", "[]", lambda: logsumexp(jnp.zeros(0)), -inf),
      Case("empty/integer", "zeros((0,2)) axis 0", lambda: logsumexp(jnp.zeros((0, 2)), axis=0),
           [-inf, -inf]),
      Case("empty/integer", "int32 [20,30,100]", lambda: logsumexp(
          jnp.array([20, 30, 100], jnp.int32)), 100 + math.log1p(math.exp(-70) + math.exp(-80))),
      # 8. Complex: jax.nn's values, holomorphic gradient.
      Case("complex", "value", lambda: logsumexp(z), np.log(np.sum(np.exp(zz))), jnp.complex128),
      Case("complex", "holomorphic grad", _grad(logsumexp, z, holomorphic=True),
           np.exp(zz) / np.sum(np.exp(zz)), jnp.complex128),
      # 9. Cross-entropy with masked classes.
      Case("cross-entropy", "[-inf,0,0] vs [0,1,0]", lambda: jax.value_and_grad(
          lambda x: softmax_cross_entropy(x, jnp.array([0.0, 1.0, 0.0])))(
              jnp.array([-inf, 0.0, 0.0])), (math.log(2), [0, -0.5, 0.5])),
      Case("cross-entropy", "label on a -inf class", lambda: softmax_cross_entropy_with_integer_labels(
          jnp.array([-inf, 0.0]), jnp.array(0)), inf),
      Case("cross-entropy", "row excluded by where", lambda: jax.value_and_grad(
          lambda x: softmax_cross_entropy(x, jnp.array([0.0, 1.0]), where=jnp.zeros(2, bool)))(
              jnp.array([1.0, 2.0])), (0, [0, 0])),
  ]


def run_edge_cases() -> list[KindResult]:
  """Runs every case; returns one result per kind, in the order of the conventions."""
  by_kind: dict[str, list[tuple[str, float, float]]] = {}
  for case in _cases():
    tol = _TOL[np.dtype(case.dtype)]
    try:
      got = case.compute()
      got = got if isinstance(got, tuple) else (got,)
      want = case.want if isinstance(case.want, tuple) else (case.want,)
      err = max(relative_error(g, w) for g, w in zip(got, want, strict=True))
    except Exception as exc:  # noqa: BLE001  a crash is a failed case, reported by name
      err = inf
      case = case._replace(name=f"{case.name} ({type(exc).__name__})")
    by_kind.setdefault(case.kind, []).append((case.name, err, tol))
  results = []
  for kind, items in by_kind.items():
    failures = tuple(name for name, err, tol in items if not err <= tol)
    _, err, tol = max(items, key=lambda item: item[1] / item[2])  # the case nearest its bound
    results.append(KindResult(kind, len(items), err, tol, failures))
  return results
