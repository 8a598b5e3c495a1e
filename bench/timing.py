"""Wall-clock timing: warm-up, then round-robin repeats across cells, medians per cell."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import time
from typing import Any, Callable

import jax

try:
  import resource
except ImportError:  # not on Windows
  resource = None


def minor_faults() -> int:
  """Minor page faults of this process so far (0 where unavailable)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0


def block(result: Any) -> Any:
  """Wait for a result: JAX arrays are asynchronous; numpy and torch CPU results are not."""
  return jax.block_until_ready(result) if _has_jax(result) else result


def _has_jax(result) -> bool:
  if isinstance(result, tuple):
    return any(_has_jax(r) for r in result)
  return isinstance(result, jax.Array)


@dataclasses.dataclass
class Cell:
  """One (contender, shape, mode): a no-argument call, and the samples timed for it."""

  contender: str
  mode: str
  call: Callable[[], Any]
  samples: list[float] = dataclasses.field(default_factory=list)
  faults: int = 0  # minor page faults during the timed calls (fresh large buffers cost these)
  repeats: int = 0
  first_result: Any = None

  def once(self) -> float:
    f0 = minor_faults()
    t0 = time.perf_counter()
    block(self.call())
    elapsed = time.perf_counter() - t0
    self.faults += minor_faults() - f0
    return elapsed

  def warm_up(self, n: int) -> float:
    """Runs ``n`` (≥ 1) untimed calls, keeping the first result; returns the last call's time."""
    t0 = time.perf_counter()
    self.first_result = block(self.call())
    last = time.perf_counter() - t0
    for _ in range(n - 1):
      last = self.once()
    self.faults = 0
    return last

  def summary(self) -> dict[str, Any]:
    s = sorted(self.samples)
    q = lambda p: s[min(len(s) - 1, int(round(p * (len(s) - 1))))]  # noqa: E731
    return {"median_s": statistics.median(s), "min_s": s[0], "p25_s": q(0.25), "p75_s": q(0.75),
            "repeats": len(s), "minor_faults_per_call": self.faults / max(1, len(s))}


@dataclasses.dataclass(frozen=True)
class Plan:
  warmup: int  # untimed calls per cell
  target_s: float  # time budget per cell for the timed repeats
  min_repeats: int
  max_repeats: int
  rounds: int  # the repeats are spread over this many round-robin rounds


def choose_repeats(per_call_s: float, plan: Plan) -> int:
  n = math.ceil(plan.target_s / max(per_call_s, 1e-7))
  return max(plan.min_repeats, min(plan.max_repeats, n))


def run_round_robin(cells: list[Cell], plan: Plan, seed: int = 0) -> None:
  """Times every cell's repeats, interleaved: in each round every cell runs its share, in a
  shuffled order, so that the cells of one shape see the same machine conditions."""
  rng = random.Random(seed)
  rounds = max(1, min(plan.rounds, min(c.repeats for c in cells)))
  share = {id(c): math.ceil(c.repeats / rounds) for c in cells}
  for _ in range(rounds):
    order = list(cells)
    rng.shuffle(order)
    for cell in order:
      for _ in range(share[id(cell)]):
        cell.samples.append(cell.once())
