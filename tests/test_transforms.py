"""lsejax under JAX transforms, and proof that jax.grad runs the hand-written backward.

B: the custom_vjp is what reverse mode differentiates: its primitive is in the jaxpr, the
backward traced by jax.grad is ``lsejax._logsumexp._cotangents`` (patched and observed), the
backward holds no max reduction or log, and only the input plus per-row arrays are saved.
E: jit, vmap, grad, value_and_grad, jacrev, jacrev∘jacrev, checkpoint, scan and forward_mode
agree with each other and with the closed form; jit caching does not retrace the primitive.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.ad_checkpoint import print_saved_residuals

import lsejax
import lsejax._logsumexp as lse_module

inf = np.inf

# Each test that needs a fresh trace (no jit-cache hit) takes a shape no other test uses.
_FRESH = itertools.count(11)


def _fresh_shape():
  n = next(_FRESH)
  return (3, n)


def _rows(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * 2)


def _primitives(jaxpr):
  """Names of every primitive in ``jaxpr``, nested jaxprs (jit, custom_vjp, ...) included."""
  names = []
  for eqn in jaxpr.eqns:
    names.append(eqn.primitive.name)
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else (param,):
        inner = getattr(sub, "jaxpr", None)  # a ClosedJaxpr holds its Jaxpr as .jaxpr
        if hasattr(sub, "eqns"):
          names.extend(_primitives(sub))
        elif hasattr(inner, "eqns"):
          names.extend(_primitives(inner))
  return names


def _softmax_np(x, axis=-1):
  e = np.exp(x - np.max(x, axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


# ---- B. the custom backward is the one jax.grad runs --------------------------------------------


def test_jaxpr_holds_the_custom_vjp_call():
  x = _rows((3, 4))
  names = _primitives(jax.make_jaxpr(lsejax.logsumexp)(x).jaxpr)
  assert any("custom_vjp" in name for name in names), names
  # The forward_mode twin is a custom_jvp call instead.
  names = _primitives(jax.make_jaxpr(lsejax.forward_mode(lsejax.logsumexp))(x).jaxpr)
  assert any("custom_jvp" in name for name in names), names
  assert not any("custom_vjp" in name for name in names), names
  for fun in (lsejax.softmax, lsejax.log_softmax):
    names = _primitives(jax.make_jaxpr(fun)(x).jaxpr)
    assert any("custom_vjp" in name for name in names), (fun, names)


def test_grad_traces_the_hand_written_cotangents():
  x = _rows(_fresh_shape())
  f = lambda x: jnp.sum(lsejax.logsumexp(x, axis=1))  # noqa: E731
  real = lse_module._cotangents
  with mock.patch.object(lse_module, "_cotangents", wraps=real) as spy:
    lsejax.logsumexp(x, axis=1)  # the forward alone does not call the backward
    assert spy.call_count == 0
    g = jax.grad(f)(x)
    assert spy.call_count == 1
  np.testing.assert_allclose(g, _softmax_np(np.asarray(x), axis=1), rtol=1e-14)


def test_grad_result_comes_from_the_hand_written_cotangents():
  # Replace the backward's closed form by twice itself: jax.grad must double. An autodiff of the
  # forward pass would not notice the patch.
  shape = _fresh_shape()
  x, b = _rows(shape, 1), jnp.asarray(np.random.default_rng(2).uniform(0.5, 2, shape))
  real = lse_module._cotangents

  def doubled(*args, **kwargs):
    ga, gb = real(*args, **kwargs)
    return 2 * ga, None if gb is None else 2 * gb

  f = lambda x, b: jnp.sum(lsejax.logsumexp(x, axis=1, b=b))  # noqa: E731
  expected = jax.grad(lambda x, b: jnp.sum(jax.nn.logsumexp(x, axis=1, b=b)), argnums=(0, 1))(x, b)
  with mock.patch.object(lse_module, "_cotangents", doubled):
    ga, gb = jax.grad(f, argnums=(0, 1))(x, b)
  np.testing.assert_allclose(ga, 2 * expected[0], rtol=1e-13)
  np.testing.assert_allclose(gb, 2 * expected[1], rtol=1e-13)
  # Unpatched again, a new trace (fresh shape) is the plain gradient.
  x2 = _rows(_fresh_shape())
  np.testing.assert_allclose(jax.grad(lambda x: lsejax.logsumexp(x))(x2),
                             _softmax_np(np.asarray(x2).ravel()).reshape(x2.shape), rtol=1e-13)


def test_backward_holds_no_max_reduction_or_log():
  x = _rows((3, 5))
  jaxpr = jax.make_jaxpr(jax.grad(lambda x: jnp.sum(lsejax.logsumexp(x, axis=1))))(x).jaxpr
  # jax.grad of a jitted custom_vjp: a forward call returning residuals, then a backward call
  # consuming the input, the per-row residuals and the cotangent.
  calls = [eqn for eqn in jaxpr.eqns if eqn.primitive.name in ("pjit", "jit")]
  assert len(calls) == 2, [eqn.primitive.name for eqn in jaxpr.eqns]
  forward, backward = calls
  forward_prims = _primitives(forward.params["jaxpr"].jaxpr)
  backward_prims = _primitives(backward.params["jaxpr"].jaxpr)
  assert forward_prims.count("reduce_max") == 1
  assert "reduce_max" not in backward_prims
  assert not {"log", "log1p"} & set(backward_prims), backward_prims
  assert "exp" in backward_prims
  # The backward's array inputs: the input and per-row arrays (and the per-row cotangent).
  shapes = [tuple(v.aval.shape) for v in backward.invars]
  assert shapes.count((3, 5)) == 1, shapes
  assert all(s in ((3, 5), (3, 1), (3,)) for s in shapes), shapes


def _saved_residuals(fun, *args):
  buffer = io.StringIO()
  with contextlib.redirect_stdout(buffer):
    print_saved_residuals(fun, *args)
  lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
  out = []
  for line in lines:
    match = re.match(r"\s*(\w+)\[([\d,]*)\]\s+(.*)", line)
    assert match, line
    shape = tuple(int(d) for d in match.group(2).split(",") if d)
    out.append((match.group(1), shape, match.group(3)))
  return out


def test_saved_residuals_are_the_input_and_per_row_arrays():
  x = _rows((6, 7))
  saved = _saved_residuals(lambda x: jnp.sum(lsejax.logsumexp(x, axis=1)), x)
  full = [r for r in saved if r[1] == (6, 7)]
  assert len(full) == 1 and "argument" in full[0][2], saved
  assert all(r[1] in ((6, 1), (6,)) for r in saved if r not in full), saved
  # With weights and a mask: exactly the three arguments are N×V.
  b = jnp.ones((6, 7))
  w = jnp.ones((6, 7), bool)
  saved = _saved_residuals(lambda x, b: jnp.sum(lsejax.logsumexp(x, axis=1, b=b, where=w)), x, b)
  full = [r for r in saved if r[1] == (6, 7)]
  assert len(full) <= 3 and all("argument" in r[2] or "bool" == r[0] for r in full), saved
  assert all(r[1] in ((6, 1), (6,)) for r in saved if r not in full), saved
  # Reducing the first axis: per-row arrays are (1, 7).
  saved = _saved_residuals(lambda x: jnp.sum(lsejax.logsumexp(x, axis=0)), x)
  assert sorted({r[1] for r in saved}) == [(1, 7), (6, 7)], saved


def test_softmax_saves_only_its_output():
  x = _rows((6, 7))
  saved = _saved_residuals(lambda x: jnp.sum(jnp.sin(lsejax.softmax(x))), x)
  ours = [r for r in saved if "function '_softmax'" in r[2]]
  assert len(ours) == 1 and ours[0][1] == (6, 7), saved
  # log_softmax: its output, and per-row flags.
  saved = _saved_residuals(lambda x: jnp.sum(jnp.sin(lsejax.log_softmax(x))), x)
  ours = [r for r in saved if "function '_log_softmax'" in r[2]]
  assert [r[1] for r in ours if r[1] == (6, 7)] == [(6, 7)], saved
  assert all(r[1] in ((6, 7), (6, 1)) for r in ours), saved


# ---- E. transforms -----------------------------------------------------------------------------


def _loss(a, b=None, where=None, axis=1):
  return jnp.sum(jnp.cos(lsejax.logsumexp(a, axis=axis, b=b, where=where)))


def test_grad_value_and_grad_jacrev_agree():
  a = _rows((3, 5), 3)
  p = _softmax_np(np.asarray(a), axis=1)
  lse = np.log(np.exp(np.asarray(a)).sum(axis=1))
  expected = -np.sin(lse)[:, None] * p
  g = jax.grad(_loss)(a)
  np.testing.assert_allclose(g, expected, rtol=1e-13)
  value, g2 = jax.value_and_grad(_loss)(a)
  np.testing.assert_allclose(value, np.cos(lse).sum(), rtol=1e-14)
  np.testing.assert_allclose(g2, g, rtol=0, atol=0)
  jac = jax.jacrev(lambda a: lsejax.logsumexp(a, axis=1))(a)
  np.testing.assert_allclose(jac, np.einsum("ij,ik->ijk", np.eye(3), p), rtol=1e-13, atol=1e-16)
  np.testing.assert_allclose(jax.jit(jax.grad(_loss))(a), g, rtol=1e-13)


def test_jacrev_of_jacrev_is_diag_p_minus_ppt_per_row():
  a = _rows((2, 4), 4)
  h = jax.jacrev(jax.jacrev(lambda a: lsejax.logsumexp(a, axis=1)))(a)  # [2, 2, 4, 2, 4]
  for i in range(2):
    p = _softmax_np(np.asarray(a[i]))
    np.testing.assert_allclose(h[i, i, :, i, :], np.diag(p) - np.outer(p, p), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_array_equal(h[i, 1 - i], 0.0)
    np.testing.assert_array_equal(h[i, :, :, 1 - i, :], 0.0)


@pytest.mark.parametrize("batched", ["a", "b", "where", "all"])
def test_vmap_equals_loop(batched):
  rng = np.random.default_rng(5)
  a = jnp.asarray(rng.normal(size=(4, 3, 5)))
  b = jnp.asarray(rng.uniform(-1, 2, size=(4, 3, 5)))
  where = jnp.asarray(rng.random((4, 3, 5)) < 0.7).at[:, :, 0].set(True)
  in_axes = {"a": (0, None, None), "b": (None, 0, None), "where": (None, None, 0),
             "all": (0, 0, 0)}[batched]
  args = (a, b, where)
  pick = lambda i: tuple(x[i] if ax == 0 else x[0] for x, ax in zip(args, in_axes))  # noqa: E731
  unbatched = tuple(x[0] for x in args)

  def f(a, b, where):
    value, sign = lsejax.logsumexp(a, axis=-1, b=b, where=where, return_sign=True)
    return value, sign

  call_args = tuple(x if ax == 0 else u for x, ax, u in zip(args, in_axes, unbatched))
  value, sign = jax.vmap(f, in_axes=in_axes)(*call_args)
  for i in range(4):
    v_i, s_i = f(*pick(i))
    np.testing.assert_allclose(value[i], v_i, rtol=1e-14)
    np.testing.assert_array_equal(sign[i], s_i)

  loss = lambda a, b, where: jnp.sum(f(a, b, where)[0])  # noqa: E731
  grads = jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=in_axes)(*call_args)
  for i in range(4):
    ga, gb = jax.grad(loss, argnums=(0, 1))(*pick(i))
    np.testing.assert_allclose(grads[0][i], ga, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grads[1][i], gb, rtol=1e-13, atol=1e-15)
  # vmap under jit, and grad of a vmapped function.
  jv = jax.jit(jax.vmap(f, in_axes=in_axes))(*call_args)
  np.testing.assert_allclose(jv[0], value, rtol=1e-14)
  g_outer = jax.grad(lambda *xs: jnp.sum(jax.vmap(f, in_axes=in_axes)(*xs)[0]),
                     argnums=(0, 1))(*call_args)
  summed = [sum(g[i] for i in range(4)) if ax != 0 else g for g, ax in zip(grads, in_axes)]
  np.testing.assert_allclose(g_outer[0], summed[0], rtol=1e-13, atol=1e-15)
  np.testing.assert_allclose(g_outer[1], summed[1], rtol=1e-13, atol=1e-15)


def test_vmap_with_axis_none_and_keepdims():
  a = _rows((5, 2, 3), 6)
  got = jax.vmap(lambda x: lsejax.logsumexp(x, keepdims=True))(a)
  assert got.shape == (5, 1, 1)
  ref = np.log(np.exp(np.asarray(a)).sum(axis=(1, 2), keepdims=True))
  np.testing.assert_allclose(got, ref, rtol=1e-14)
  got = jax.vmap(lambda x: lsejax.softmax(x, axis=None), in_axes=1, out_axes=1)(a)
  np.testing.assert_allclose(got, _softmax_np(np.asarray(a), axis=(0, 2)), rtol=1e-13)


def test_checkpoint_matches_plain_grad():
  a = _rows((3, 6), 7)
  b = jnp.asarray(np.random.default_rng(8).uniform(0.5, 1.5, (3, 6)))
  plain = jax.grad(_loss, argnums=(0, 1))(a, b)
  remat = jax.grad(jax.checkpoint(_loss), argnums=(0, 1))(a, b)
  policy = jax.checkpoint(_loss, policy=jax.checkpoint_policies.nothing_saveable)
  remat2 = jax.grad(policy, argnums=(0, 1))(a, b)
  for r in (remat, remat2):
    np.testing.assert_allclose(r[0], plain[0], rtol=1e-14)
    np.testing.assert_allclose(r[1], plain[1], rtol=1e-14)


def test_inside_scan():
  xs = _rows((5, 3, 4), 9)

  def step(carry, x):
    out = lsejax.logsumexp(x + carry[:, None], axis=1)
    return out - jnp.mean(out), lsejax.logsumexp(out)

  def through_scan(xs):
    carry, ys = lax.scan(step, jnp.zeros(3), xs)
    return jnp.sum(ys) + jnp.sum(carry)

  def unrolled(xs):
    carry, total = jnp.zeros(3), 0.0
    for x in xs:
      carry, y = step(carry, x)
      total = total + y
    return total + jnp.sum(carry)

  # forward_mode first: the scan body is traced for the first time inside it.
  fwd = jax.jacfwd(lsejax.forward_mode(through_scan))(xs)
  np.testing.assert_allclose(fwd, jax.grad(unrolled)(xs), rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(through_scan(xs), unrolled(xs), rtol=1e-13)
  np.testing.assert_allclose(jax.grad(through_scan)(xs), jax.grad(unrolled)(xs), rtol=1e-12,
                             atol=1e-15)
  np.testing.assert_allclose(jax.jit(jax.grad(through_scan))(xs), jax.grad(unrolled)(xs),
                             rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("control_flow", ["scan", "cond"])
def test_forward_mode_after_reverse_mode_through_control_flow(control_flow):
  xs = _rows((4, 3), 15)

  def body(carry, x):  # one function object, traced twice by lax.scan / lax.cond
    return carry + lsejax.logsumexp(x), None

  def f(xs):
    if control_flow == "scan":
      return lax.scan(body, 0.0, xs)[0]
    return lax.cond(xs[0, 0] > 0, body, body, 0.0, xs[0])[0]

  reverse = jax.grad(f)(xs)  # traces (and caches) the body with the custom_vjp primitive
  forward = jax.jacfwd(lsejax.forward_mode(f))(xs)
  np.testing.assert_allclose(forward, reverse, rtol=1e-13)
  # around a jit traced before for reverse mode, too
  jitted = jax.jit(f)
  jitted(xs)
  np.testing.assert_allclose(jax.jacfwd(lsejax.forward_mode(jitted))(xs), reverse, rtol=1e-13)


@pytest.mark.parametrize("with_b", [False, True])
def test_forward_mode_equals_reverse(with_b):
  rng = np.random.default_rng(10)
  a = jnp.asarray(rng.normal(size=(3, 4)))
  b = jnp.asarray(rng.uniform(-1, 2, size=(3, 4))) if with_b else None
  where = jnp.asarray(rng.random((3, 4)) < 0.8).at[:, 0].set(True)

  def f(a):
    value, _ = lsejax.logsumexp(a, axis=(0, 1) if not with_b else 1, b=b, where=where,
                                return_sign=True)
    return jnp.sin(value)

  fm = lsejax.forward_mode(f)
  np.testing.assert_allclose(jax.jacfwd(fm)(a), jax.jacrev(f)(a), rtol=1e-13, atol=1e-15)
  np.testing.assert_allclose(jax.jacrev(fm)(a), jax.jacrev(f)(a), rtol=1e-13, atol=1e-15)
  np.testing.assert_allclose(jax.hessian(fm)(a), jax.jacrev(jax.jacrev(f))(a), rtol=1e-11,
                             atol=1e-13)
  t = jnp.asarray(rng.normal(size=(3, 4)))
  y, dy = jax.jvp(fm, (a,), (t,))
  out, pullback = jax.vjp(f, a)
  np.testing.assert_allclose(y, out, rtol=0, atol=0)
  for i in range(out.size):
    e = jnp.zeros(out.shape).ravel().at[i].set(1.0).reshape(out.shape)
    np.testing.assert_allclose(dy.ravel()[i], jnp.vdot(pullback(e)[0], t), rtol=1e-13,
                               atol=1e-15)
  np.testing.assert_allclose(jax.jit(jax.jacfwd(fm))(a), jax.jacrev(f)(a), rtol=1e-13,
                             atol=1e-15)


def test_forward_mode_on_weights():
  a = _rows((2, 3), 11)
  b = jnp.asarray(np.random.default_rng(12).uniform(0.5, 2, (2, 3)))
  f = lambda b: lsejax.logsumexp(a, axis=1, b=b)  # noqa: E731
  np.testing.assert_allclose(jax.jacfwd(lsejax.forward_mode(f))(b), jax.jacrev(f)(b),
                             rtol=1e-13, atol=1e-16)


def test_forward_mode_restores_reverse_mode_afterwards():
  x = _rows(_fresh_shape())
  lsejax.forward_mode(lsejax.logsumexp)(x)
  assert not lse_module.in_forward_mode()
  names = _primitives(jax.make_jaxpr(lsejax.logsumexp)(x).jaxpr)
  assert any("custom_vjp" in n for n in names)
  with pytest.raises(TypeError):
    jax.jvp(lsejax.logsumexp, (x,), (x,))


def test_jit_caches_the_primitive_trace():
  shape = (5, 29)  # used by no other test
  x = jnp.asarray(np.random.default_rng(13).normal(size=shape))
  before = lse_module.trace_count
  lsejax.logsumexp(x, axis=1)
  lsejax.logsumexp(x + 1, axis=1)
  assert lse_module.trace_count == before + 1
  # Equal axes spelled differently normalise to one cache entry.
  lsejax.logsumexp(x, axis=-1)
  lsejax.logsumexp(x, axis=(1,))
  assert lse_module.trace_count == before + 1

  shape = (5, 31)
  y = jnp.asarray(np.random.default_rng(14).normal(size=shape))
  f = jax.jit(lambda y: lsejax.logsumexp(y, axis=0))
  before = lse_module.trace_count
  f(y)
  f(y * 2)
  assert lse_module.trace_count == before + 1
  # The jitted gradient compiles once too.
  g = jax.jit(jax.grad(lambda y: jnp.sum(lsejax.logsumexp(y, axis=0))))
  g(y)
  count = lse_module.trace_count
  g(y * 3)
  assert lse_module.trace_count == count


@pytest.mark.parametrize("ignored", [jnp.nan, jnp.inf])
def test_forward_mode_ignores_nan_or_inf_at_zero_weight(ignored):
  b = jnp.array([0.0, 1.0, 1.0])
  a = jnp.array([ignored, 0.0, 1.0])
  p = np.asarray(jax.nn.softmax(jnp.array([0.0, 1.0])))
  forward = jax.jacfwd(lsejax.forward_mode(lambda a: lsejax.logsumexp(a, b=b)))(a)
  reverse = jax.grad(lambda a: lsejax.logsumexp(a, b=b))(a)
  np.testing.assert_allclose(forward, [0.0, *p], rtol=1e-12)
  np.testing.assert_allclose(reverse, [0.0, *p], rtol=1e-12)
  db = jax.jacfwd(lsejax.forward_mode(lambda b: lsejax.logsumexp(a, b=b)))(b)
  np.testing.assert_allclose(db[1:], p, rtol=1e-12)
