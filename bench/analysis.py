"""Static figures for the JAX contenders: saved residuals, compiled memory, and HLO counts."""

from __future__ import annotations

import contextlib
import io
import math
import re
from typing import Any, Callable

import numpy as np

_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2,
                "f32": 4, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8, "c64": 8,
                "c128": 16}
_MEMORY_FIELDS = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
                  "alias_size_in_bytes", "generated_code_size_in_bytes", "peak_memory_in_bytes")


def saved_residuals(f: Callable, x) -> dict[str, Any]:
  """What reverse mode saves from the forward of ``f`` (a scalar function of ``x``).

  Uses ``jax._src.ad_checkpoint.saved_residuals`` (present in jax 0.10.2), falling back to
  parsing ``jax.ad_checkpoint.print_saved_residuals``. Returns the count, the bytes, and the same
  excluding the function's own arguments (which cost no extra memory: they are alive anyway).
  """
  entries: list[tuple[str, int, bool]] = []  # (description, bytes, is_argument)
  try:
    from jax._src.ad_checkpoint import saved_residuals as _saved
    for aval, source in _saved(f, x):
      nbytes = int(math.prod(aval.shape)) * np.dtype(aval.dtype).itemsize
      entries.append((f"{aval.str_short()} {source}", nbytes, "from the argument" in source))
    method = "jax._src.ad_checkpoint.saved_residuals"
  except Exception:  # the private API moved: parse the public printout instead
    from jax.ad_checkpoint import print_saved_residuals
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
      print_saved_residuals(f, x)
    for line in buf.getvalue().splitlines():
      if not line.strip():
        continue
      shape = line.split(" ", 1)[0]
      entries.append((line.strip(), _shape_bytes(shape), "from the argument" in line))
    method = "jax.ad_checkpoint.print_saved_residuals"
  created = [e for e in entries if not e[2]]
  return {
      "count": len(entries),
      "bytes": sum(e[1] for e in entries),
      "count_excluding_args": len(created),
      "bytes_excluding_args": sum(e[1] for e in created),
      "items": [e[0] for e in entries],
      "method": method,
  }


def memory_stats(compiled) -> dict[str, int | None]:
  """``compiled.memory_analysis()`` as a dict (None for fields this backend does not report)."""
  try:
    stats = compiled.memory_analysis()
  except Exception:
    stats = None
  out: dict[str, int | None] = {}
  for field in _MEMORY_FIELDS:
    value = getattr(stats, field, None) if stats is not None else None
    out[field] = int(value) if value is not None else None
  return out


def _shape_elems(shape: str) -> tuple[str, int]:
  m = re.match(r"(\w+)\[([\d,]*)\]", shape)
  if not m:
    return "", 0
  dims = [int(d) for d in m.group(2).split(",") if d]
  return m.group(1), int(math.prod(dims)) if dims else 1


def _shape_bytes(shape: str) -> int:
  dtype, elems = _shape_elems(shape)
  return elems * _DTYPE_BYTES.get(dtype, 4)


def _operands(rest: str) -> list[str]:
  """Operand names of an instruction, from the text after ``op(``."""
  depth, end = 1, len(rest)
  for i, ch in enumerate(rest):
    if ch == "(":
      depth += 1
    elif ch == ")":
      depth -= 1
      if depth == 0:
        end = i
        break
  return re.findall(r"%([\w.\-]+)", rest[:end])


_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+) = (\([^=]*?\)|\S+) ([\w\-]+)\((.*)$")
_FREE = {"parameter", "constant", "bitcast", "tuple", "get-tuple-element"}


def hlo_stats(hlo_text: str, n_elems: int) -> dict[str, Any]:
  """Counts from the optimised HLO of one jitted function of an array of ``n_elems`` elements.

  * ``fusions``: fusion instructions in the entry computation (kernels launched);
  * ``kernels``: entry instructions that do work (fusions and unfused ops);
  * ``full_size_temps``: full-size (``n_elems``) arrays the entry computation materialises that
    are not outputs, i.e. N×V intermediates;
  * ``full_size_reads`` / ``full_size_writes``: full-size operands read and results written by
    the entry's kernels, so ``reads + writes`` is the memory traffic in units of the input size;
  * ``reads_of_input``: kernels that read the input (passes over x);
  * ``full_size_exps``: full-size ``exponential`` ops over all computations (the exps per element).
  """
  lines = hlo_text.splitlines()
  start = next((i for i, line in enumerate(lines) if line.startswith("ENTRY")), None)
  stats: dict[str, Any] = {"fusions": 0, "kernels": 0, "full_size_temps": 0,
                           "full_size_reads": 0, "full_size_writes": 0, "reads_of_input": 0,
                           "full_size_exps": 0, "kernel_names": []}
  for line in lines:
    m = _INSTR.match(line)
    if m and m.group(3) == "exponential" and _shape_elems(m.group(2))[1] == n_elems:
      stats["full_size_exps"] += 1
  if start is None:
    return stats
  shapes: dict[str, int] = {}
  params: set[str] = set()
  root_operands: set[str] = set()
  body = []
  for line in lines[start + 1:]:
    if line.startswith("}"):
      break
    m = _INSTR.match(line)
    if not m:
      continue
    name, shape, op, rest = m.groups()
    shapes[name] = _shape_elems(shape)[1] if not shape.startswith("(") else 0
    if op == "parameter":
      params.add(name)
    if line.lstrip().startswith("ROOT"):
      root_operands = set(_operands(rest)) if op == "tuple" else {name}
    body.append((name, shape, op, rest))
  for name, shape, op, rest in body:
    if op in _FREE:
      continue
    stats["kernels"] += 1
    stats["fusions"] += op == "fusion"
    stats["kernel_names"].append(name)
    operands = _operands(rest)
    stats["full_size_reads"] += sum(1 for o in set(operands) if shapes.get(o) == n_elems)
    stats["reads_of_input"] += any(o in params for o in operands)
    if shapes.get(name) == n_elems:
      stats["full_size_writes"] += 1
      if name not in root_operands:
        stats["full_size_temps"] += 1
  return stats
