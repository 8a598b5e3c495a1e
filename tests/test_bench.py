"""The benchmark harness (bench/) in --quick mode: structure and correctness, never timings."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # pytest runs with --import-mode=importlib
  sys.path.insert(0, str(ROOT))

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

from bench import analysis, run  # noqa: E402
from bench import contenders as C  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  out = tmp_path_factory.mktemp("bench")
  rc = run.main(["--quick", "--out", str(out), "--name", "t"])
  doc = json.loads((out / "t.json").read_text())
  return rc, out, doc


def test_quick_run_writes_json_markdown_png(quick):
  rc, out, doc = quick
  assert rc == 0
  assert (out / "t.md").read_text().startswith("### lsejax benchmark")
  assert (out / "t.png").read_bytes()[:8] == PNG_MAGIC
  assert not (run.RESULTS_DIR / "t.json").exists()  # --out is honoured


def test_json_structure(quick):
  _, _, doc = quick
  assert doc["quick"] is True and doc["name"] == "t"
  for key in ("platform", "cpu_count", "jax", "device_kind", "backend"):
    assert key in doc["machine"]
  assert [tuple(s["shape"]) + (s["dtype"],) for s in doc["shapes"]] == list(run.QUICK_SHAPES)
  assert set(doc["summary"]) >= set(run.TARGETS)
  for s in doc["shapes"]:
    assert set(s["targets"]) == set(run.TARGETS)
    for t in s["targets"].values():
      assert isinstance(t["met"], bool) and t["value"] > 0


def test_every_contender_row_exists(quick):
  _, _, doc = quick
  assert set(doc["contenders"]) >= set(C.ALL_NAMES)
  for s in doc["shapes"]:
    assert set(s["results"]) >= set(C.ALL_NAMES)
    for c in C.JAX_CONTENDERS:
      for mode in c.modes:
        e = s["results"][c.name][mode]
        assert e["median_s"] > 0 and e["repeats"] >= run.QUICK_PLAN.min_repeats
        assert e["compile_s"] > 0 and e["trace_lower_s"] > 0
        assert e["memory"]["temp_size_in_bytes"] is not None
        assert e["hlo"]["kernels"] >= 1
        assert e["ratio_to_jax_nn"] > 0
      if not c.limit:
        assert s["residuals"][c.name]["count"] >= 1
    torch_available = doc["contenders"]["torch"]["available"]
    for mode in C.TORCH.modes:
      assert ("median_s" in s["results"]["torch"][mode]) == torch_available
      assert ("skipped" in s["results"]["torch"][mode]) != torch_available
    scipy_entry = s["results"]["scipy"][C.FWD]
    assert ("skipped" in scipy_entry) == (s["dtype"] == "bfloat16")


def test_lsejax_agrees_with_jax_nn(quick):
  _, _, doc = quick
  assert doc["summary"]["lsejax_sanity_ok"]
  for s in doc["shapes"]:
    for mode in C.MODES:
      check = s["sanity"]["lsejax"][mode]
      assert check["ok"], (s["label"], mode, check)
      assert check["value_max_abs_diff"] <= check["value_bound"]
      if mode == C.FWDBWD:
        assert check["grad_max_abs_diff"] <= check["grad_bound"]
    assert s["sanity"][C.REFERENCE][C.FWD]["value_max_abs_diff"] == 0


def test_sanity_check_catches_a_wrong_result():
  import numpy as np
  ref = (np.float32(3.0), np.full((2, 3), 1 / 3, np.float32))
  assert run.sanity(ref, ref, C.FWDBWD, "float32")["ok"]
  bad = (np.float32(3.0), np.full((2, 3), 0.3, np.float32))
  assert not run.sanity(bad, ref, C.FWDBWD, "float32")["ok"]
  assert not run.sanity(np.array([1.0, 2.1]), np.array([1.0, 2.0]), C.FWD, "float32")["ok"]


def test_residuals_and_hlo_counts():
  import jax
  import jax.numpy as jnp

  x = jnp.ones((4, 8), jnp.float32)
  nn = analysis.saved_residuals(lambda x: jnp.sum(jax.nn.logsumexp(x, axis=-1)), x)
  assert nn["count"] >= 1 and nn["bytes_excluding_args"] >= x.nbytes  # it saves exp(x)
  hlo = jax.jit(lambda x: jnp.exp(x) * 2).lower(x).compile().as_text()
  stats = analysis.hlo_stats(hlo, x.size)
  assert stats["full_size_exps"] == 1 and stats["reads_of_input"] >= 1
  assert stats["full_size_writes"] >= 1 and stats["full_size_temps"] == 0


def test_roofline_estimate():
  import jax.numpy as jnp

  x = jnp.zeros((4, 1024), jnp.float32)
  roof = run.hbm_roofline(x, None, "NVIDIA H200")
  assert roof["bandwidth_Bps"] == 4.8e12 and roof[C.FWDBWD]["bytes"] == 3 * x.nbytes
  measured = run.hbm_roofline(x, 1e-3, "unknown GPU")
  assert measured["bandwidth_Bps"] == x.nbytes / 1e-3


def test_parse_shape():
  assert run.parse_shape("4096x128") == (4096, 128, "float32")
  assert run.parse_shape("8x16:bfloat16") == (8, 16, "bfloat16")
