"""The ``lsejax`` command line: argument parsing and printing only; the work is the library's.

    lsejax fit                       # the conditional logit on the embedded TravelMode data
    lsejax fit --data F.csv --case id --alt mode --choice chosen --features cost,time --asc
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

EXIT_BAD_INPUT = 2
_CREDIT = ("Greene & Hensher 1997, public domain; table F18-2 of Greene, Econometric Analysis, "
           "7th ed.")


class UsageError(Exception):
  """Bad command-line input: reported as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="lsejax", description="Conditional logit fitting and logsumexp checks with lsejax.")
  commands = parser.add_subparsers(dest="command", required=True)
  fit = commands.add_parser(
      "fit", help="fit a conditional logit model by maximum likelihood",
      description="Fit log p(j) = theta.x_j - log sum_k exp(theta.x_k) by maximum likelihood. Without "
      "--data: the embedded TravelMode data (ASC with car as reference, gc, ttme, hinc:air).")
  fit.add_argument("--data", help="long-format CSV, one row per case x alternative")
  fit.add_argument("--case", help="column identifying the choice case")
  fit.add_argument("--alt", help="column naming the alternative")
  fit.add_argument("--choice", help="column: 1 on the chosen row, else 0")
  fit.add_argument("--avail", help="column: 1 on available rows, 0 on unavailable ones")
  fit.add_argument("--features", default="", help="generic columns, comma-separated")
  fit.add_argument("--asc", action="store_true", help="alternative-specific constants")
  fit.add_argument("--ref", help="reference alternative (default: the last one in the file)")
  fit.add_argument("--specific", default="",
                   help="case columns interacted with alternatives: c,d or c:alt1+alt2")
  fit.add_argument("--json", dest="json_out", metavar="OUT", help="also write results as JSON")
  fit.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs",
                   help="optax.lbfgs with its line search (default) or optax.adam")
  fit.add_argument("--learning-rate", type=float, default=0.05,
                   help="for --optimizer adam (default 0.05)")
  fit.add_argument("--max-steps", type=int, default=1000,
                   help="most optimizer steps (default 1000)")
  fit.add_argument("--tol", type=float, default=1e-8,
                   help="stop when max |gradient| of -log L is below this (default 1e-8)")
  commands.add_parser(
      "check", help="run the edge-case suite against float64 references",
      description="Run every convention of the README by example (no mass, +inf, NaN, weights, "
      "dominant term, low precision, empty/integer, complex, cross-entropy) and compare with "
      "float64 references. Exit code 0 only when every case holds.")
  return parser


def _check(args) -> int:
  del args
  import jax  # noqa: PLC0415

  jax.config.update("jax_enable_x64", True)  # for the float64 cases and references
  from lsejax._edge_cases import run_edge_cases  # noqa: PLC0415

  results = run_edge_cases()
  print(f"{'kind':<16} {'cases':>5}  {'worst error':>11}  {'tolerance':>9}  status")
  for r in results:
    status = "ok" if r.ok else "FAILED: " + "; ".join(r.failures)
    print(f"{r.kind:<16} {r.cases:>5}  {r.worst_error:>11.1e}  {r.tolerance:>9.0e}  {status}")
  total = sum(r.cases for r in results)
  failed = sum(len(r.failures) for r in results)
  print(f"{total - failed} of {total} cases hold")
  return 0 if failed == 0 else 1


def _load(args):
  from lsejax import _data  # noqa: PLC0415  (keep `lsejax --help` fast)

  if args.data is None:
    if any((args.case, args.alt, args.choice, args.avail, args.features, args.asc, args.ref,
            args.specific)):
      raise UsageError("--case/--alt/--choice/--features/... need --data FILE.csv")
    return _data.travel_mode()
  missing = [f"--{n}" for n in ("case", "alt", "choice") if getattr(args, n) is None]
  if missing:
    raise UsageError(f"--data needs {', '.join(missing)}")
  features = tuple(f.strip() for f in args.features.split(",") if f.strip())
  spec = _data.Specification(features=features, asc=args.asc, ref=args.ref,
                             specific=_data.parse_specific(args.specific))
  return _data.read_long_csv(args.data, case=args.case, alt=args.alt, choice=args.choice,
                             avail=args.avail, spec=spec)


def _check_output_path(path: str | None) -> None:
  """Refuse, before any work, an output path that the results could not be written to."""
  if path is None:
    return
  if not path or path.endswith(os.sep):
    raise UsageError(f"--json {path!r}: give a file name")
  if os.path.isdir(path):
    raise UsageError(f"--json {path}: is a folder")
  if os.path.exists(path) and not os.path.isfile(path):
    raise UsageError(f"--json {path}: exists and is not a regular file")
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise UsageError(f"--json {path}: folder {folder} does not exist")
  try:  # the same temporary file the results will go through, so that it can be made at all
    fd, probe = tempfile.mkstemp(prefix=".lsejax-", suffix=".json", dir=folder)
    os.close(fd)
    os.unlink(probe)
  except OSError as err:
    raise UsageError(f"--json {path}: cannot write in {folder}: {err.strerror}") from None


def _write_json_atomically(path: str, payload: dict) -> None:
  """Write to a temporary file beside ``path``, then rename: never a half-written file."""
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=".lsejax-", suffix=".json", dir=folder)
  try:
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a results file is an ordinary file
    with os.fdopen(fd, "w") as handle:
      json.dump(payload, handle, indent=2, allow_nan=False)
      handle.write("\n")
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


class _Progress:
  """Prints the step and loss to stderr, but only once a fit has run for over a second."""

  def __init__(self):
    self.start = time.perf_counter()
    self.shown = False

  def __call__(self, step, value, grad_norm):
    elapsed = time.perf_counter() - self.start
    if elapsed > 1.0 and sys.stderr.isatty():  # a log file gets no stream of \r lines
      print(f"\r  ... step {int(step)}, -log L {float(value):.6f}, max|grad| {float(grad_norm):.1e}"
            f" ({elapsed:.1f} s)", end="", file=sys.stderr, flush=True)
      self.shown = True

  def done(self):
    if self.shown:
      print(file=sys.stderr)


def _fmt(x: float, digits: int = 7) -> str:
  return f"{x:.{digits}g}" if math.isfinite(x) else str(x)


def _check_options(args) -> None:
  if args.max_steps < 1:
    raise UsageError(f"--max-steps must be a positive integer, got {args.max_steps}")
  if not args.tol > 0 or not math.isfinite(args.tol):
    raise UsageError(f"--tol must be a positive number, got {args.tol}")
  if not args.learning_rate > 0 or not math.isfinite(args.learning_rate):
    raise UsageError(f"--learning-rate must be a positive number, got {args.learning_rate}")


def _json_number(x: float) -> float | None:
  """Strict JSON has no NaN or Infinity: write null for a figure that is not available."""
  return x if math.isfinite(x) else None


def _fit(args) -> int:
  _check_options(args)
  _check_output_path(args.json_out)
  data = _load(args)

  import jax  # noqa: PLC0415

  jax.config.update("jax_enable_x64", True)  # the published figures need float64
  import jax.numpy as jnp  # noqa: PLC0415
  import optax  # noqa: PLC0415

  import lsejax  # noqa: PLC0415

  features = jnp.asarray(data.features)
  chosen = jnp.asarray(data.chosen)
  available = jnp.asarray(data.available)
  theta0 = jnp.zeros(data.num_features)

  def neg_log_likelihood(theta, x, y, avail):
    return jnp.sum(lsejax.log_linear_nll(theta, x, y, avail))

  def naive(theta, x, y, avail):  # the textbook formula, autodiffed
    u = x @ theta
    log_z = jnp.log(jnp.sum(jnp.where(avail, jnp.exp(u), 0.0), axis=-1))
    return jnp.sum(log_z - jnp.take_along_axis(u, y[:, None], axis=1)[:, 0])

  counts = [int((data.chosen == j).sum()) for j in range(data.num_alternatives)]
  print(f"data: {data.source}" + ("" if args.data else f" ({_CREDIT})"))
  print(f"  {data.num_cases} cases, {data.num_alternatives} alternatives "
        f"({', '.join(data.alternatives)}), "
        f"{int(data.available.sum())} available rows, {data.num_features} parameters")
  print("  chosen: " + ", ".join(f"{a} {c}" for a, c in zip(data.alternatives, counts)))
  check = lsejax.check_gradients(neg_log_likelihood, naive, theta0, features, chosen, available)
  print(f"gradient check at theta=0: custom vs jax.grad(naive) max rel "
        f"{check.max_rel_vs_reference:.1e}, vs central differences max rel "
        f"{check.max_rel_vs_finite_diff:.1e}")

  if args.optimizer == "lbfgs":
    optimizer, label = optax.lbfgs(), "L-BFGS (optax.lbfgs, zoom line search)"
  else:
    optimizer, label = optax.adam(args.learning_rate), f"Adam (optax.adam, lr {args.learning_rate})"
  progress = _Progress()
  run = lsejax.fit_function(neg_log_likelihood, optimizer=optimizer, max_steps=args.max_steps,
                            tol=args.tol, callback=progress)
  t0 = time.perf_counter()
  compiled = run.lower(theta0, features, chosen, available).compile()
  t1 = time.perf_counter()
  progress.start = t1
  result = jax.block_until_ready(compiled(theta0, features, chosen, available))
  t2 = time.perf_counter()
  progress.done()
  inference = jax.jit(lsejax.log_linear_inference)(result.params, features, chosen, available)

  converged = bool(result.converged)
  status = "converged" if converged else "NOT converged"
  print(f"optimizer: {label}: {int(result.iterations)} iterations, {status} "
        f"(max|grad| {float(result.grad_norm):.1e}, tol {args.tol:g})")
  print(f"time: compile {t1 - t0:.2f} s, run {t2 - t1:.3f} s")
  print(f"log-likelihood       {float(inference.log_likelihood):.5f}")
  print(f"null log-likelihood  {float(inference.null_log_likelihood):.5f}")
  print(f"rho2                 {float(inference.rho2):.5f}")
  if not converged:
    print(f"warning: not converged after {int(result.iterations)} steps: the estimates and "
          "standard errors below are not at the optimum (raise --max-steps or --tol; Adam "
          "needs many steps on unscaled features)", file=sys.stderr)
  if not bool(jnp.all(jnp.isfinite(inference.std_err))):
    print("warning: the information matrix is singular: some parameter is not identified "
          "(collinear or constant columns?); standard errors are NaN")
  print()
  width = max(8, *(len(n) for n in data.names))
  print(f"{'name':<{width}}  {'estimate':>12}  {'std. err':>12}  {'t':>8}  {'p':>9}")
  rows = []
  for i, name in enumerate(data.names):
    row = {"name": name, "estimate": float(inference.estimate[i]),
           "std_err": float(inference.std_err[i]), "t": float(inference.t[i]),
           "p": float(inference.p[i])}
    rows.append({k: _json_number(v) if isinstance(v, float) else v for k, v in row.items()})
    print(f"{name:<{width}}  {_fmt(row['estimate']):>12}  {_fmt(row['std_err']):>12}  "
          f"{row['t']:>8.3f}  {row['p']:>9.2e}")

  if args.json_out is not None:
    _write_json_atomically(args.json_out, {
        "data": data.source, "cases": data.num_cases, "alternatives": list(data.alternatives),
        "optimizer": args.optimizer,
        "log_likelihood": _json_number(float(inference.log_likelihood)),
        "null_log_likelihood": _json_number(float(inference.null_log_likelihood)),
        "rho2": _json_number(float(inference.rho2)), "iterations": int(result.iterations),
        "converged": converged, "grad_norm": _json_number(float(result.grad_norm)),
        "compile_seconds": t1 - t0, "run_seconds": t2 - t1,
        "gradient_check": {k: _json_number(v) for k, v in check._asdict().items()},
        "parameters": rows})
    print(f"\nwrote {args.json_out}")
  return 0


def main(argv: list[str] | None = None) -> int:
  """Entry point of the ``lsejax`` console script; returns the exit code."""
  args = _parser().parse_args(argv)
  from lsejax._data import DataError  # noqa: PLC0415

  try:
    if args.command == "fit":
      return _fit(args)
    if args.command == "check":
      return _check(args)
    raise UsageError(f"unknown command {args.command}")
  except (UsageError, DataError) as err:
    print(f"lsejax {args.command}: error: {err}", file=sys.stderr)
    return EXIT_BAD_INPUT
  except OSError as err:  # e.g. the disk filled while writing --json: nothing half-written stays
    print(f"lsejax {args.command}: error: {err.filename or ''}: {err.strerror}", file=sys.stderr)
    return EXIT_BAD_INPUT
  except BrokenPipeError:  # `lsejax fit | head`: the reader left; not an error of ours
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
  sys.exit(main())
