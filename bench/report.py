"""The results as JSON, a markdown table (for the README) and a PNG of ratios to jax.nn."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

from bench import contenders as C

PLOTTED = ("lsejax", "naive", "scipy", "torch", "sum_exp", "sum", C.ROOFLINE.name)


def write(doc: dict[str, Any], out_dir: pathlib.Path, name: str, plot: bool = True) -> dict:
  paths: dict[str, Any] = {}
  paths["json"] = out_dir / f"{name}.json"
  paths["json"].write_text(json.dumps(doc, indent=1, default=_jsonable) + "\n")
  text = markdown(doc)
  paths["md"] = out_dir / f"{name}.md"
  paths["md"].write_text(text)
  paths["markdown_text"] = text
  if plot:
    paths["png"] = out_dir / f"{name}.png"
    plot_ratios(doc, paths["png"])
  return paths


def _jsonable(obj):
  if hasattr(obj, "item"):
    return obj.item()
  return str(obj)


def _mark(target: dict[str, Any]) -> str:
  return "met" if target["met"] else "**not met**"


def _bytes(n: int | None) -> str:
  if n is None:
    return "n/a"
  for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if n >= size:
      return f"{n / size:.3g} {unit}"
  return f"{n} B"


def _ms(entry: dict[str, Any] | None) -> str:
  if not entry:
    return "–"
  if "skipped" in entry:
    return "skip"
  if "median_s" not in entry:
    return "–"
  t = entry["median_s"] * 1e3
  s = f"{t:.3g}" if t < 100 else f"{t:.0f}"
  return s + ("*" if entry.get("estimate") else "")


def markdown(doc: dict[str, Any]) -> str:
  m = doc["machine"]
  lines = [
      f"### lsejax benchmark: `{doc['name']}`",
      "",
      f"{m['backend']} / {m['device_kind']} ({m['cpu_model']}, {m['cpu_count']} CPUs), "
      f"jax {m['jax']}, {doc['created_utc']}{', QUICK (tiny shapes)' if doc['quick'] else ''}. "
      "Reduction over the last axis; fwd+bwd is the jitted `jax.value_and_grad` of the sum of "
      "the rows. Ratios are medians of this run, contenders interleaved.",
      "",
      "| shape | fwd / jax.nn (≤ 1.0) | fwd+bwd / jax.nn (≤ 0.8) | fwd+bwd / sum(exp) pass "
      "(≤ 2.5) | temp bytes fwd+bwd: lsejax vs jax.nn | saved residuals: lsejax vs jax.nn (≤) |",
      "|---|---|---|---|---|---|",
  ]
  for s in doc["shapes"]:
    t, r, res = s["targets"], s["results"], s["residuals"]
    mem = lambda c: r[c][C.FWDBWD]["memory"]["temp_size_in_bytes"]  # noqa: E731
    nres = lambda c: (f"{res[c]['count']} "  # noqa: E731
                      f"({_bytes(res[c]['bytes_excluding_args'])} new)")
    label = s["label"] + ("" if s["dtype"] == "float32" else " (informative)")
    lines.append(
        f"| {label} "
        f"| {t['fwd_vs_jax_nn']['value']:.2f}× {_mark(t['fwd_vs_jax_nn'])} "
        f"| {t['fwdbwd_vs_jax_nn']['value']:.2f}× {_mark(t['fwdbwd_vs_jax_nn'])} "
        f"| {t['fwdbwd_vs_sum_exp']['value']:.2f}× {_mark(t['fwdbwd_vs_sum_exp'])} "
        f"| {_bytes(mem('lsejax'))} vs {_bytes(mem(C.REFERENCE))} "
        f"| {nres('lsejax')} vs {nres(C.REFERENCE)} {_mark(t['residuals_vs_jax_nn'])} |")
  summ = doc["summary"]
  lines += ["", "Targets over the float32 shapes: " + "; ".join(
      f"{k} {'met' if v['met_at_every_float32_shape'] else '**not met**'} (worst "
      f"{v['worst']:.2f}×)" for k, v in summ.items() if isinstance(v, dict))
      + f". Sanity check against jax.nn: {'all agree' if summ['sanity_ok'] else '**FAILED**'}."]
  names = [n for n in (*(c.name for c in C.JAX_CONTENDERS), "scipy", "torch", C.ROOFLINE.name)
           if n in doc["contenders"]]
  labels = {n: doc["contenders"][n]["label"] for n in names}
  lines += ["", "Median milliseconds (fwd / fwd+bwd; `skip`: not available, `–`: not applicable"
            + (", `*`: estimate, not measured" if C.ROOFLINE.name in names else "") + "):", "",
            "| shape | " + " | ".join(labels[n] for n in names) + " |",
            "|---" * (len(names) + 1) + "|"]
  for s in doc["shapes"]:
    cells = []
    for n in names:
      modes = s["results"].get(n, {})
      if "skipped" in modes:
        cells.append("skip")
        continue
      cells.append(" / ".join(_ms(modes.get(mode)) for mode in doc["contenders"][n]["modes"]))
    lines.append(f"| {s['label']} | " + " | ".join(cells) + " |")
  jax_names = [c.name for c in C.JAX_CONTENDERS if not c.limit]
  lines += ["", "Compiled fwd+bwd (XLA): compile s, temp bytes, kernels in the entry "
            "computation, N×V intermediates materialised, N×V traffic (reads+writes, in input "
            "sizes), N×V exps, minor page faults per timed call (a fresh large buffer costs one per 4 KiB "
            "page on Linux):", "",
            "| shape | " + " | ".join(labels[n] for n in jax_names) + " |",
            "|---" * (len(jax_names) + 1) + "|"]
  for s in doc["shapes"]:
    cells = []
    for n in jax_names:
      e = s["results"][n][C.FWDBWD]
      h = e["hlo"]
      cells.append(f"{e['compile_s']:.2f} s, {_bytes(e['memory']['temp_size_in_bytes'])}, "
                   f"{h['kernels']} k, {h['full_size_temps']} tmp, "
                   f"{h['full_size_reads'] + h['full_size_writes']}× traffic, "
                   f"{h['full_size_exps']} exp, "
                   f"{e.get('minor_faults_per_call', 0):.0f} faults")
    lines.append(f"| {s['label']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot_ratios(doc: dict[str, Any], path: pathlib.Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import matplotlib.ticker

  shapes = doc["shapes"]
  fig, axes = plt.subplots(1, 2, figsize=(13, 5.8), sharey=True)
  for ax, mode, title, target in ((axes[0], C.FWD, "forward", 1.0),
                                  (axes[1], C.FWDBWD, "forward + backward", 0.8)):
    names = [n for n in PLOTTED if n in doc["contenders"]
             and mode in doc["contenders"][n]["modes"]
             and any("ratio_to_jax_nn" in s["results"].get(n, {}).get(mode, {})
                     for s in shapes)]
    width = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
      values = [s["results"].get(n, {}).get(mode, {}).get("ratio_to_jax_nn", math.nan)
                for s in shapes]
      xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(shapes))]
      bars = ax.bar(xs, values, width, label=doc["contenders"][n]["label"])
      if n == "lsejax":
        for bar, value in zip(bars, values):
          if math.isfinite(value):
            ax.annotate(f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value),
                        ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=1, label="jax.nn.logsumexp (= 1)")
    ax.axhline(target, color="red", linestyle="--", linewidth=1,
               label=f"lsejax target ≤ {target}×")
    ax.set_xticks(range(len(shapes)), [s["label"].replace(" ", "\n") for s in shapes],
                  fontsize=8)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(title)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
  axes[0].set_ylabel("median time / jax.nn.logsumexp (log scale; lower is better)")
  m = doc["machine"]
  fig.suptitle(f"{doc['name']}: {m['backend']} {m['device_kind']}, {m['cpu_count']} CPUs, "
               f"jax {m['jax']}" + (" (quick)" if doc["quick"] else ""), fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
