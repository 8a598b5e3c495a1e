"""``python -m bench.hlo [NxV[:dtype]] [--full]``: what XLA compiles for lsejax vs jax.nn.

Prints, for the forward and the forward+backward of each JAX contender, the kernels of the entry
computation (fusion kind: ``__ynn_fusion`` is the YNNPACK reduction path of XLA:CPU, ``kLoop`` an
elementwise loop), which ones write a full-size (N×V) array, and the counts of
:func:`bench.analysis.hlo_stats`. ``--full`` dumps the whole optimised HLO text instead.
"""

from __future__ import annotations

import argparse
import re

import jax

from bench import analysis, contenders as C
from bench.run import make_input, parse_shape


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m bench.hlo", description=__doc__.split("\n\n")[0])
  p.add_argument("shape", nargs="?", default="512x4096", help="NxV[:dtype] (default 512x4096)")
  p.add_argument("--contenders", default="lsejax,jax_nn", help="comma-separated names")
  p.add_argument("--full", action="store_true", help="print the whole optimised HLO")
  args = p.parse_args(argv)
  n, v, dtype = parse_shape(args.shape)
  x = make_input(n, v, dtype)
  wanted = args.contenders.split(",")
  for c in C.JAX_CONTENDERS:
    if c.name not in wanted:
      continue
    for mode in c.modes:
      text = jax.jit(C.jax_function(c, mode)).lower(x).compile().as_text()
      print(f"===== {c.name} {mode} {n}x{v} {dtype}")
      if args.full:
        print(text)
        continue
      entry = text[text.index("\nENTRY"):]
      for line in entry.splitlines()[1:]:
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\S+) (fusion|[\w\-]+)\(", line)
        if not m or m.group(3) in ("parameter", "constant", "bitcast", "tuple"):
          continue
        kind = re.search(r'"kind":"(\w+)"', line) or re.search(r"kind=(\w+)", line)
        size = analysis._shape_elems(m.group(2))[1]
        print(f"  {m.group(1):40s} {m.group(2):28s} {kind.group(1) if kind else m.group(3):14s}"
              f"{'  <- writes N×V' if size == x.size else ''}")
      stats = analysis.hlo_stats(text, x.size)
      stats.pop("kernel_names")
      print("  ", stats)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
