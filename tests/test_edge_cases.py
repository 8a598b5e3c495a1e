"""`lsejax check`: the edge-case suite holds, and fails when a convention is broken."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lsejax._edge_cases as edge
from lsejax import cli


def test_every_edge_case_holds():
  results = edge.run_edge_cases()
  assert [r.kind for r in results] == ["no mass", "+inf", "NaN", "weights", "dominant term",
                                       "low precision", "empty/integer", "complex",
                                       "cross-entropy"]
  assert all(r.ok for r in results), [r for r in results if not r.ok]
  assert sum(r.cases for r in results) >= 40


def test_check_command_prints_table_and_exits_zero(capsys):
  assert cli.main(["check"]) == 0
  out = capsys.readouterr().out
  assert "worst error" in out and "no mass" in out and "cross-entropy" in out
  assert "42 of 42 cases hold" in out


def test_check_fails_when_a_convention_is_broken(monkeypatch, capsys):
  # jax.nn's softmax returns NaN on [+inf, 0]: the suite must notice.
  monkeypatch.setattr(edge, "softmax", jax.nn.softmax)
  results = {r.kind: r for r in edge.run_edge_cases()}
  assert not results["+inf"].ok
  assert "softmax [+inf,0]" in results["+inf"].failures
  assert results["no mass"].ok
  monkeypatch.setattr(edge, "logsumexp", jax.nn.logsumexp)
  assert cli.main(["check"]) == 1
  assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("got, want, err", [
    (np.inf, np.inf, 0.0), (np.nan, np.nan, 0.0), (-np.inf, np.inf, np.inf),
    (1.0, np.nan, np.inf), (1.5, 1.0, 0.5), ([0.0, 2.0], [0.0, 1.0], 1.0),
])
def test_relative_error(got, want, err):
  assert edge.relative_error(jnp.asarray(got), want) == err
