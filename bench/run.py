"""``python -m bench``: time lsejax.logsumexp side by side with jax.nn, naive autodiff, scipy, torch.

For each shape (float32 rows × reduced length, reduced over the last axis, plus a bfloat16 row)
and each contender, in one process:

1. jit the forward and the jitted ``jax.value_and_grad`` of the sum of the rows; lower and compile
   them separately from the timing (trace+lower and compile seconds are reported on their own),
   and record ``memory_analysis()``, HLO counts and the saved residuals;
2. warm up (2 calls), and check each contender's value (and gradient) against jax.nn;
3. time repeats with ``block_until_ready``, round-robin over the contenders of the shape (the
   repeats of each cell are spread over several rounds, in shuffled order), and keep the median.

Results: ``<out>/<name>.json`` (everything), ``<out>/<name>.md`` (the tables, also printed) and
``<out>/<name>.png`` (ratios to jax.nn). ``--quick`` runs tiny shapes in a few seconds.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import os
import pathlib
import platform
import socket
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bench import analysis, contenders as C, report
from bench.timing import Cell, Plan, choose_repeats, run_round_robin

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"

FULL_SHAPES = ((4096, 4096, "float32"), (512, 65536, "float32"), (64, 1048576, "float32"),
               (16384, 128, "float32"), (4096, 4096, "bfloat16"))
QUICK_SHAPES = ((64, 256, "float32"), (8, 4096, "float32"), (512, 32, "float32"),
                (64, 256, "bfloat16"))
FULL_PLAN = Plan(warmup=2, target_s=0.75, min_repeats=5, max_repeats=2000, rounds=10)
QUICK_PLAN = Plan(warmup=2, target_s=0.02, min_repeats=3, max_repeats=20, rounds=2)

# Sanity tolerances against jax.nn: |value − ref| ≤ tol·max(1, max|ref|) per row (and for the
# summed value); |grad − ref| ≤ tol·max|ref grad|.
TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2}

TARGETS = {
    "fwd_vs_jax_nn": 1.0,  # lsejax forward ≤ 1.0× jax.nn
    "fwdbwd_vs_jax_nn": 0.8,  # lsejax forward+backward ≤ 0.8× jax.nn
    "fwdbwd_vs_sum_exp": 2.5,  # lsejax forward+backward ≤ 2.5× one sum(exp(x)) pass
    "residuals_vs_jax_nn": 1.0,  # number of saved residuals ≤ jax.nn's
}

# Peak HBM bandwidth (bytes/s) by a substring of device_kind; GPU only, for the roofline row.
PEAK_BANDWIDTH = (("H200", 4.8e12), ("H100", 3.35e12), ("A100", 2.0e12))


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
  p.add_argument("--name", default=None,
                 help="results file stem (default: <backend>-<hostname>, '-quick' with --quick)")
  p.add_argument("--out", default=None, help=f"results directory (default: {RESULTS_DIR})")
  p.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (< 1 min)")
  p.add_argument("--shape", action="append", default=None, metavar="NxV[:dtype]",
                 help="override the shapes (repeatable), e.g. 4096x4096:bfloat16")
  p.add_argument("--target-s", type=float, default=None,
                 help="timed seconds per cell (default 0.75, quick 0.02)")
  p.add_argument("--no-plot", action="store_true", help="skip the PNG")
  return p.parse_args(argv)


def parse_shape(text: str) -> tuple[int, int, str]:
  dims, _, dtype = text.partition(":")
  n, v = (int(d) for d in dims.lower().split("x"))
  return n, v, dtype or "float32"


def machine_info() -> dict[str, Any]:
  dev = jax.devices()[0]
  cpu_model = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      cpu_model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu_model)
  except OSError:
    pass
  info = {
      "hostname": socket.gethostname(),
      "platform": platform.platform(),
      "machine": platform.machine(),
      "cpu_model": cpu_model,
      "cpu_count": os.cpu_count(),
      "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "python": platform.python_version(),
      "jax": jax.__version__,
      "jaxlib": getattr(__import__("jaxlib"), "__version__", None),
      "numpy": np.__version__,
      "backend": jax.default_backend(),
      "device_kind": dev.device_kind,
      "device_count": jax.device_count(),
      "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
  }
  try:
    import scipy
    info["scipy"] = scipy.__version__
  except ImportError:
    info["scipy"] = None
  return info


def make_input(n: int, v: int, dtype: str) -> jax.Array:
  x = jax.random.normal(jax.random.key(0), (n, v), jnp.float32)
  return jax.block_until_ready(x.astype(dtype))


def peak_bandwidth(device_kind: str) -> float | None:
  return next((bw for key, bw in PEAK_BANDWIDTH if key.lower() in device_kind.lower()), None)


def hbm_roofline(x: jax.Array, sum_median_s: float | None, device_kind: str) -> dict[str, Any]:
  """GPU only, an estimate and not a measurement: the fastest a memory-bound logsumexp can run.

  Forward: read x once. Forward+backward: read x (forward), read x and write the gradient
  (backward): 3 × x bytes. Bandwidth from PEAK_BANDWIDTH by device_kind, else measured from
  the plain jnp.sum pass (x bytes / its median).
  """
  bw = peak_bandwidth(device_kind)
  source = f"peak table ({device_kind})"
  if bw is None and sum_median_s:
    bw, source = x.nbytes / sum_median_s, "measured from the jnp.sum pass"
  if bw is None:
    return {"skipped": "no bandwidth known"}
  return {"bandwidth_Bps": bw, "bandwidth_source": source, "estimate": True,
          C.FWD: {"median_s": x.nbytes / bw, "bytes": x.nbytes, "estimate": True},
          C.FWDBWD: {"median_s": 3 * x.nbytes / bw, "bytes": 3 * x.nbytes, "estimate": True}}


def _max_abs(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    return float("inf")
  d = np.abs(a - b)
  both_nan = np.isnan(a) & np.isnan(b)
  d = np.where(both_nan | (a == b), 0.0, d)  # equal infinities agree
  return float(np.max(d)) if d.size else 0.0


def sanity(result, reference, mode: str, dtype: str) -> dict[str, Any]:
  """Does ``result`` agree with jax.nn's ``reference`` (rows, or ``(value, grad)``)?"""
  tol = TOLERANCE.get(dtype, 1e-4)
  res, ref = C.to_numpy(result), C.to_numpy(reference)
  if mode == C.FWD:
    diff = _max_abs(res, ref)
    bound = tol * max(1.0, float(np.max(np.abs(ref))))
    return {"ok": bool(diff <= bound), "value_max_abs_diff": diff, "value_bound": bound}
  (value, grad), (ref_value, ref_grad) = res, ref
  vdiff, gdiff = _max_abs(value, ref_value), _max_abs(grad, ref_grad)
  vbound = tol * max(1.0, float(np.max(np.abs(ref_value))))
  gbound = tol * float(np.max(np.abs(ref_grad)))
  return {"ok": bool(vdiff <= vbound and gdiff <= gbound), "value_max_abs_diff": vdiff,
          "value_bound": vbound, "grad_max_abs_diff": gdiff, "grad_bound": gbound}


def run_shape(n: int, v: int, dtype: str, plan: Plan, torch, info: dict[str, Any],
              log) -> dict[str, Any]:
  x = make_input(n, v, dtype)
  out: dict[str, Any] = {"shape": [n, v], "dtype": dtype, "label": f"{n}x{v} {dtype}",
                         "input_bytes": int(x.nbytes), "results": {}, "residuals": {},
                         "sanity": {}}
  results = out["results"]
  cells: list[Cell] = []
  # jax.nn first: it is the reference for the sanity check.
  order = sorted(C.JAX_CONTENDERS, key=lambda c: c.name != C.REFERENCE)
  for c in order:
    results[c.name] = {}
    for mode in c.modes:
      jitted = jax.jit(C.jax_function(c, mode))
      t0 = time.perf_counter()
      lowered = jitted.lower(x)
      t1 = time.perf_counter()
      compiled = lowered.compile()
      t2 = time.perf_counter()
      results[c.name][mode] = {
          "trace_lower_s": t1 - t0, "compile_s": t2 - t1,
          "memory": analysis.memory_stats(compiled),
          "hlo": analysis.hlo_stats(compiled.as_text(), x.size),
      }
      cells.append(Cell(c.name, mode, functools.partial(compiled, x)))
    if not c.limit:
      out["residuals"][c.name] = analysis.saved_residuals(
          lambda x, f=c.row_fn: jnp.sum(f(x).astype(jnp.float32)), x)
  for c, make in ((C.SCIPY, C.scipy_call), (C.TORCH, None)):
    results[c.name] = {}
    for mode in c.modes:
      if c is C.TORCH:
        call, reason = (None, info["torch_skip"]) if torch is None else C.torch_call(torch, x,
                                                                                     mode)
      else:
        call, reason = make(x, mode)
      if call is None:
        results[c.name][mode] = {"skipped": reason}
      else:
        results[c.name][mode] = {}
        cells.append(Cell(c.name, mode, call))

  log(f"  warm-up and sanity check ({len(cells)} cells)")
  per_call = {}
  for cell in cells:
    per_call[id(cell)] = cell.warm_up(plan.warmup)
  refs = {cell.mode: cell.first_result for cell in cells if cell.contender == C.REFERENCE}
  for cell in cells:
    if cell.contender in ("sum_exp", "sum"):
      continue
    check = sanity(cell.first_result, refs[cell.mode], cell.mode, dtype)
    out["sanity"].setdefault(cell.contender, {})[cell.mode] = check
    if not check["ok"]:
      log(f"  SANITY FAILURE {cell.contender} {cell.mode}: {check}")
  for cell in cells:
    cell.first_result = None
  refs = None
  gc.collect()

  for cell in cells:
    cell.repeats = choose_repeats(per_call[id(cell)], plan)
  t0 = time.perf_counter()
  run_round_robin(cells, plan, seed=n * 31 + v)
  log(f"  timed {sum(c.repeats for c in cells)} calls in {time.perf_counter() - t0:.1f} s")
  for cell in cells:
    results[cell.contender][cell.mode].update(cell.summary())

  ref = results[C.REFERENCE]
  for name, modes in results.items():
    for mode, entry in modes.items():
      if "median_s" in entry and mode in ref:
        entry["ratio_to_jax_nn"] = entry["median_s"] / ref[mode]["median_s"]
  sum_s = results["sum"][C.FWD]["median_s"]
  out["measured_bandwidth_Bps"] = x.nbytes / sum_s  # the plain sum pass reads x once
  if info["backend"] == "gpu":
    roof = hbm_roofline(x, sum_s, info["device_kind"])
    results[C.ROOFLINE.name] = roof
    for mode in C.MODES:
      if mode in roof:
        roof[mode]["ratio_to_jax_nn"] = roof[mode]["median_s"] / ref[mode]["median_s"]
  out["ratios"] = ratios(out)
  out["targets"] = targets(out)
  del x, cells
  return out


def ratios(shape: dict[str, Any]) -> dict[str, float]:
  r = shape["results"]
  lse, nn, sum_exp = r["lsejax"], r[C.REFERENCE], r["sum_exp"][C.FWD]["median_s"]
  res = shape["residuals"]
  return {
      "fwd_vs_jax_nn": lse[C.FWD]["median_s"] / nn[C.FWD]["median_s"],
      "fwdbwd_vs_jax_nn": lse[C.FWDBWD]["median_s"] / nn[C.FWDBWD]["median_s"],
      "fwdbwd_vs_sum_exp": lse[C.FWDBWD]["median_s"] / sum_exp,
      "fwd_vs_sum_exp": lse[C.FWD]["median_s"] / sum_exp,
      "residuals_vs_jax_nn": res["lsejax"]["count"] / res[C.REFERENCE]["count"],
      "residual_bytes_vs_jax_nn": (res["lsejax"]["bytes_excluding_args"]
                                   / max(1, res[C.REFERENCE]["bytes_excluding_args"])),
      "temp_bytes_fwdbwd_vs_jax_nn": (
          (lse[C.FWDBWD]["memory"]["temp_size_in_bytes"] or 0)
          / max(1, nn[C.FWDBWD]["memory"]["temp_size_in_bytes"] or 0)),
  }


def targets(shape: dict[str, Any]) -> dict[str, dict[str, Any]]:
  return {k: {"value": shape["ratios"][k], "limit": lim, "met": shape["ratios"][k] <= lim}
          for k, lim in TARGETS.items()}


def summarize(shapes: list[dict[str, Any]]) -> dict[str, Any]:
  f32 = [s for s in shapes if s["dtype"] == "float32"]
  summary = {k: {"met_at_every_float32_shape": all(s["targets"][k]["met"] for s in f32),
                 "worst": max((s["targets"][k]["value"] for s in f32), default=None)}
             for k in TARGETS}
  summary["sanity_ok"] = all(check["ok"] for s in shapes for modes in s["sanity"].values()
                             for check in modes.values())
  summary["lsejax_sanity_ok"] = all(check["ok"] for s in shapes
                                    for check in s["sanity"].get("lsejax", {}).values())
  return summary


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  log = functools.partial(print, flush=True)
  plan = QUICK_PLAN if args.quick else FULL_PLAN
  if args.target_s is not None:
    plan = Plan(plan.warmup, args.target_s, plan.min_repeats, plan.max_repeats, plan.rounds)
  shapes = ([parse_shape(s) for s in args.shape] if args.shape
            else QUICK_SHAPES if args.quick else FULL_SHAPES)
  info = machine_info()
  name = args.name or (f"{info['backend']}-{info['hostname'] or info['machine']}"
                       + ("-quick" if args.quick else ""))
  out_dir = pathlib.Path(args.out) if args.out else RESULTS_DIR
  out_dir.mkdir(parents=True, exist_ok=True)
  torch, info["torch_skip"] = C.torch_module()
  info["torch"] = getattr(torch, "__version__", None)
  if torch is None:
    log(f"torch skipped: {info['torch_skip']}")

  contenders = {c.name: {"label": c.label, "kind": c.kind, "modes": list(c.modes),
                         "limit": c.limit, "available": True}
                for c in (*C.JAX_CONTENDERS, C.SCIPY, C.TORCH)}
  if torch is None:
    contenders["torch"].update(available=False, skip_reason=info["torch_skip"])
  if info["backend"] == "gpu":
    c = C.ROOFLINE
    contenders[c.name] = {"label": c.label, "kind": c.kind, "modes": list(c.modes),
                          "limit": True, "available": True, "estimate": True}

  log(f"bench '{name}': {info['backend']} ({info['device_kind']}), {info['cpu_count']} CPUs, "
      f"jax {info['jax']}; {'quick' if args.quick else 'full'} run, {len(shapes)} shapes")
  started = time.perf_counter()
  shape_results = []
  for n, v, dtype in shapes:
    log(f"shape {n}x{v} {dtype}")
    shape_results.append(run_shape(n, v, dtype, plan, torch, info, log))
    gc.collect()
    jax.clear_caches()
  doc = {
      "schema": 1,
      "name": name,
      "quick": bool(args.quick),
      "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "argv": sys.argv[1:] if argv is None else list(argv),
      "machine": info,
      "plan": plan.__dict__,
      "contenders": contenders,
      "targets": TARGETS,
      "shapes": shape_results,
      "summary": summarize(shape_results),
      "wall_s": time.perf_counter() - started,
  }
  paths = report.write(doc, out_dir, name, plot=not args.no_plot)
  log(paths["markdown_text"])
  for kind in ("json", "md", "png"):
    if kind in paths:
      log(f"wrote {paths[kind]}")
  return 0 if doc["summary"]["lsejax_sanity_ok"] else 2
