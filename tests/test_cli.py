"""Tests for the ``lsejax fit`` command line: in-process through ``lsejax.cli.main`` and, twice,
as a real subprocess (the console script, and ``python -m lsejax``)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys

import jax

jax.config.update("jax_enable_x64", True)  # tests/conftest.py may do this too; harmless

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.optimize  # noqa: E402
import scipy.stats  # noqa: E402

from lsejax import cli  # noqa: E402

from _published import PUBLISHED, PUBLISHED_LL, assert_published  # noqa: E402

NAMES = ["ASC_air", "ASC_train", "ASC_bus", "gc", "ttme", "hinc:air"]
NULL_LL = -210 * math.log(4)


def run_main(argv, capsys):
  rc = cli.main(argv)
  out, err = capsys.readouterr()
  return rc, out, err


_NUM = r"([-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf))"


def check_default_output(out: str) -> dict:
  """Parse the printed report of the TravelMode fit and check every figure."""
  assert "embedded TravelMode data" in out
  assert "210 cases, 4 alternatives (air, train, bus, car)" in out
  m = re.search(r"gradient check at theta=0: custom vs jax\.grad\(naive\) max rel " + _NUM
                + r", vs central differences max rel " + _NUM, out)
  assert m, out
  assert float(m.group(1)) < 1e-10
  assert float(m.group(2)) < 1e-5
  m = re.search(r"optimizer: L-BFGS[^\n]*: (\d+) iterations, converged \(max\|grad\| " + _NUM,
                out)
  assert m, out
  iterations = int(m.group(1))
  assert 0 < iterations < 1000
  assert float(m.group(2)) < 1e-8
  m = re.search(r"time: compile " + _NUM + r" s, run " + _NUM + r" s", out)
  assert m, out
  assert float(m.group(1)) > 0 and float(m.group(2)) >= 0  # the run may print as 0.000 s
  ll = float(re.search(r"^log-likelihood +" + _NUM + "$", out, re.M).group(1))
  null = float(re.search(r"^null log-likelihood +" + _NUM + "$", out, re.M).group(1))
  rho2 = float(re.search(r"^rho2 +" + _NUM + "$", out, re.M).group(1))
  assert_published(ll, PUBLISHED_LL, "log-likelihood")
  assert null == pytest.approx(NULL_LL, abs=5e-6)  # printed with 5 decimals
  assert rho2 == pytest.approx(1 - ll / null, abs=5e-6)

  lines = out.splitlines()
  header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["name", "estimate"])
  rows = [line.split() for line in lines[header + 1: header + 1 + len(NAMES)]]
  assert [r[0] for r in rows] == NAMES
  for name, est, se, t, p in rows:
    est, se, t, p = float(est), float(se), float(t), float(p)
    coef, std_err = PUBLISHED[name]
    assert_published(est, coef, name)
    assert_published(se, std_err, f"std. err. {name}")
    assert t == pytest.approx(est / se, abs=5e-4)  # printed with 3 decimals
    assert p == pytest.approx(2 * scipy.stats.norm.sf(abs(est / se)), rel=6e-3)  # 3 digits
  return {"iterations": iterations, "ll": ll}


def check_json(path: pathlib.Path, optimizer: str = "lbfgs") -> dict:
  def no_constants(name):
    raise AssertionError(f"non-standard JSON constant {name}")

  payload = json.loads(path.read_text(), parse_constant=no_constants)
  for key in ("log_likelihood", "null_log_likelihood", "rho2", "iterations", "converged",
              "parameters"):
    assert key in payload
  assert payload["converged"] is True
  assert payload["optimizer"] == optimizer
  assert isinstance(payload["iterations"], int) and payload["iterations"] > 0
  assert payload["null_log_likelihood"] == pytest.approx(NULL_LL, rel=1e-14)
  assert payload["rho2"] == pytest.approx(
      1 - payload["log_likelihood"] / payload["null_log_likelihood"], rel=1e-14)
  params = payload["parameters"]
  assert [p["name"] for p in params] == NAMES
  for p in params:
    assert set(p) == {"name", "estimate", "std_err", "t", "p"}
    assert p["t"] == pytest.approx(p["estimate"] / p["std_err"], rel=1e-14)
    assert p["p"] == pytest.approx(2 * scipy.stats.norm.sf(abs(p["t"])), rel=1e-9)
  return payload


# --------------------------------------------------------------------------------------------
# the embedded data: two real processes (started together) and in-process runs


@pytest.fixture(scope="module")
def subprocess_runs(tmp_path_factory):
  """The two real processes, started together: the console script fits the embedded data;
  ``python -m lsejax`` meets bad input (a full second fit would only repeat the first), which
  shows the module entry point and its exit code without another few seconds of compiling."""
  folder = tmp_path_factory.mktemp("cli_subprocess")
  script = shutil.which("lsejax")
  assert script, "the lsejax console script is not installed"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  commands = {
      "script": [script, "fit"],
      "module": [sys.executable, "-m", "lsejax", "fit", "--json",
                 str(folder / "missing" / "out.json")],
  }
  procs = {k: subprocess.Popen(c, cwd=folder, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for k, c in commands.items()}
  results = {}
  for key, proc in procs.items():
    out, err = proc.communicate(timeout=300)
    results[key] = (proc.returncode, out, err)
  return folder, results


def test_console_script_default_run(subprocess_runs):
  _, results = subprocess_runs
  rc, out, err = results["script"]
  assert rc == 0, err
  assert "Traceback" not in err
  check_default_output(out)


def test_python_m_lsejax_bad_input_exit_code(subprocess_runs):
  folder, results = subprocess_runs
  rc, out, err = results["module"]
  assert rc == 2, (out, err)
  assert out == ""
  assert err.count("\n") == 1 and "Traceback" not in err, err
  assert err.startswith("lsejax fit: error: --json ")
  assert str(folder / "missing") in err
  assert os.listdir(folder) == []


def test_in_process_default_run_with_json(tmp_path, capsys):
  out_path = tmp_path / "result.json"
  rc, out, err = run_main(["fit", "--json", str(out_path)], capsys)
  assert rc == 0, err
  assert "Traceback" not in err
  printed = check_default_output(out)
  payload = check_json(out_path)
  assert payload["iterations"] == printed["iterations"]
  for p in payload["parameters"]:
    coef, se = PUBLISHED[p["name"]]
    assert_published(p["estimate"], coef, p["name"])
    assert_published(p["std_err"], se, f"std. err. {p['name']}")
  assert_published(payload["log_likelihood"], PUBLISHED_LL, "log-likelihood")
  assert payload["log_likelihood"] == pytest.approx(printed["ll"], abs=5e-6)
  assert sorted(os.listdir(tmp_path)) == ["result.json"]


def test_adam_converges_near_the_same_estimates(tmp_path, capsys):
  out_path = tmp_path / "adam.json"
  rc, out, err = run_main(["fit", "--optimizer", "adam", "--max-steps", "5000", "--tol", "1e-4",
                           "--json", str(out_path)], capsys)
  assert rc == 0, err
  assert "Adam" in out and "converged" in out and "NOT converged" not in out
  payload = check_json(out_path, optimizer="adam")
  assert payload["iterations"] < 5000
  # Stopped at max|grad| 1e-4 rather than 1e-8: the estimates move by |I⁻¹|·1e-4 ~ 1e-4
  # relative at most, so 1e-3 relative against the published figures.
  assert payload["log_likelihood"] == pytest.approx(float(PUBLISHED_LL), abs=1e-4)
  for p in payload["parameters"]:
    coef, se = PUBLISHED[p["name"]]
    assert p["estimate"] == pytest.approx(float(coef), rel=1e-3)
    assert p["std_err"] == pytest.approx(float(se), rel=1e-3)


# --------------------------------------------------------------------------------------------
# a user CSV in long format


ALTS = "abcd"


def make_user_csv(path: pathlib.Path, seed: int = 0, cases: int = 210):
  """Four alternatives a-d; generic 'cost'; case-level 'inc'; 'av' availability; and
  'cost100' = 100·cost, collinear with cost (only for the singular-information test).

  test_user_csv's specification has 6 parameters, so its arrays have the shapes of the
  TravelMode ones ([210, 4, 6]) and the CLI's eager JAX operations are already compiled.
  Unavailable rows have an empty cost cell and a NaN cost100 cell (neither is ever read).
  Returns the independent design ``x [cases, 4, 6]`` for
  ``ASC_b, ASC_c, ASC_d, cost, inc:b, inc:c`` (reference a), chosen and availability.
  """
  rng = np.random.default_rng(seed)
  theta = np.array([0.5, -0.3, 0.2, -0.8, 0.04, 0.02])
  x = np.zeros((cases, 4, 6))
  avail = np.ones((cases, 4), bool)
  knocked = np.flatnonzero(rng.random(cases) < 0.3)
  avail[knocked, rng.integers(0, 4, size=knocked.size)] = False
  lines = ["id,alt,ch,av,cost,inc,cost100"]
  chosen = np.empty(cases, int)
  for n in range(cases):
    cost = rng.uniform(1, 5, size=4)
    inc = rng.uniform(10, 60)
    x[n, 1, 0] = x[n, 2, 1] = x[n, 3, 2] = 1
    x[n, :, 3] = cost
    x[n, 1, 4] = x[n, 2, 5] = inc
    x[n] *= avail[n][:, None]
    u = np.where(avail[n], x[n] @ theta + rng.gumbel(size=4), -np.inf)
    chosen[n] = int(np.argmax(u))
    order = rng.permutation(4) if n else np.arange(4)  # the first case fixes the order a-d
    for j in order:
      cost_cell = f"{cost[j]:.17g}" if avail[n, j] else ""
      cents = f"{100 * cost[j]:.17g}" if avail[n, j] else "nan"
      lines.append(f"case{n},{ALTS[j]},{int(chosen[n] == j)},{int(avail[n, j])},"
                   f"{cost_cell},{inc:.17g},{cents}")
  path.write_text("\n".join(lines) + "\n")
  return x, chosen, avail


def np_nll_and_grad(theta, x, y, avail):
  u = np.where(avail, x @ theta, -np.inf)
  m = u.max(axis=1, keepdims=True)
  p = np.exp(u - m)
  s = p.sum(axis=1, keepdims=True)
  p /= s
  nll = np.sum(m[:, 0] + np.log(s[:, 0]) - u[np.arange(len(y)), y])
  grad = np.einsum("na,nak->k", p, x) - x[np.arange(len(y)), y].sum(axis=0)
  return nll, grad


def test_user_csv(tmp_path, capsys):
  data = tmp_path / "my data.csv"
  x, y, avail = make_user_csv(data)
  out_path = tmp_path / "fit.json"
  rc, out, err = run_main(
      ["fit", "--data", str(data), "--case", "id", "--alt", "alt", "--choice", "ch", "--avail",
       "av", "--features", "cost", "--asc", "--ref", "a", "--specific", "inc:c+b",
       "--json", str(out_path)], capsys)
  assert rc == 0, err
  assert str(data) in out
  assert "210 cases, 4 alternatives (a, b, c, d)" in out
  payload = json.loads(out_path.read_text())
  names = [p["name"] for p in payload["parameters"]]
  # ASCs in order of appearance without the reference, then features, then the specific
  # interactions in order of appearance (whatever order --specific lists them in)
  assert names == ["ASC_b", "ASC_c", "ASC_d", "cost", "inc:b", "inc:c"]
  for name in names:
    assert re.search(rf"^{re.escape(name)}\s", out, re.M), name
  assert payload["converged"] is True
  # an independent scipy fit on the design built here
  res = scipy.optimize.minimize(np_nll_and_grad, np.zeros(6), args=(x, y, avail), jac=True,
                                method="BFGS", options={"gtol": 1e-9})
  estimates = np.array([p["estimate"] for p in payload["parameters"]])
  np.testing.assert_allclose(estimates, res.x, rtol=1e-4, atol=1e-6)
  assert payload["log_likelihood"] == pytest.approx(-res.fun, rel=1e-9)
  assert payload["null_log_likelihood"] == pytest.approx(-np.sum(np.log(avail.sum(axis=1))),
                                                         rel=1e-14)


@pytest.fixture(scope="module")
def collinear_run(tmp_path_factory):
  """One in-process fit with collinear columns cost and cost100, with the default reference
  and --specific for every non-reference alternative (capsys is per test, so redirect)."""
  folder = tmp_path_factory.mktemp("cli_collinear")
  data = folder / "collinear.csv"
  make_user_csv(data, seed=2)
  out_path = folder / "fit.json"
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    rc = cli.main(["fit", "--data", str(data), "--case", "id", "--alt", "alt", "--choice", "ch",
                   "--avail", "av", "--features", "cost,cost100", "--asc", "--specific", "inc",
                   "--json", str(out_path)])
  return rc, out.getvalue(), err.getvalue(), out_path


def test_default_reference_and_specific_for_all_alternatives(collinear_run):
  rc, out, err, out_path = collinear_run
  assert rc == 0, err
  # the reference defaults to the last alternative (d); --specific without alternatives means
  # every non-reference alternative
  names = re.findall(r"^(\S+) +[-\d]", out.split("\nname ")[1], re.M)
  assert names == ["ASC_a", "ASC_b", "ASC_c", "cost", "cost100", "inc:a", "inc:b", "inc:c"]


def test_collinear_columns_warn_and_give_nan_std_err(collinear_run):
  rc, out, err, out_path = collinear_run
  assert rc == 0, err
  assert "warning: the information matrix is singular" in out
  rows = [line.split() for line in out.split("\nname ")[1].splitlines()[1:] if line.strip()]
  rows = [r for r in rows if not r[0] == "wrote"]
  assert len(rows) == 8
  for name, estimate, std_err, t, p in rows:
    assert math.isfinite(float(estimate)), name
    assert std_err == t == p == "nan", name
  assert out_path.exists()


def test_json_stays_strict_json_with_nan_std_err(collinear_run):
  _, _, _, out_path = collinear_run

  def no_constants(name):
    raise ValueError(f"non-standard JSON constant {name}")

  payload = json.loads(out_path.read_text(), parse_constant=no_constants)
  # whatever stands for "not available" (null, a string, omission), it is not a number
  assert not any(isinstance(p.get("std_err"), (int, float)) for p in payload["parameters"])


# --------------------------------------------------------------------------------------------
# bad input: exit code 2, one line on stderr, nothing else written


GOOD_ROWS = [
    ["id", "alt", "ch", "av", "cost", "inc"],
    ["1", "a", "1", "1", "1.0", "10"],
    ["1", "b", "0", "1", "2.0", "10"],
    ["1", "c", "0", "1", "3.0", "10"],
    ["2", "a", "0", "1", "1.5", "20"],
    ["2", "b", "1", "1", "2.5", "20"],
    ["2", "c", "0", "1", "3.5", "20"],
    ["3", "a", "0", "1", "1.2", "30"],
    ["3", "b", "0", "1", "2.2", "30"],
    ["3", "c", "1", "1", "3.2", "30"],
]
USER_ARGS = ["--case", "id", "--alt", "alt", "--choice", "ch", "--features", "cost"]


def edit(rows, changes):
  """Copy of ``rows`` with ``{(row, column name): value}`` applied."""
  rows = [list(r) for r in rows]
  for (i, column), value in changes.items():
    rows[i][rows[0].index(column)] = value
  return rows


def to_csv(rows):
  return "".join(",".join(r) + "\n" for r in rows)


BAD_INPUTS = {
    # name: (file text or None for no file, extra args, substrings the message must contain)
    "missing file": (None, USER_ARGS, ["nope.csv", "no such file"]),
    "missing column": (to_csv(GOOD_ROWS), ["--case", "id", "--alt", "alt", "--choice", "ch",
                                           "--features", "cost,weight"],
                       ["data.csv", "'weight'"]),
    "missing case column": (to_csv(GOOD_ROWS), ["--case", "person", "--alt", "alt", "--choice",
                                                "ch", "--features", "cost"],
                            ["data.csv", "'person'"]),
    "non-numeric feature": (to_csv(edit(GOOD_ROWS, {(5, "cost"): "cheap"})), USER_ARGS,
                            ["data.csv", "'cost'", "case '2'", "'cheap'"]),
    "NaN feature": (to_csv(edit(GOOD_ROWS, {(8, "cost"): "nan"})), USER_ARGS,
                    ["data.csv", "'cost'", "case '3'"]),
    "inf feature": (to_csv(edit(GOOD_ROWS, {(2, "cost"): "inf"})), USER_ARGS,
                    ["data.csv", "'cost'", "case '1'"]),
    "no chosen row": (to_csv(edit(GOOD_ROWS, {(5, "ch"): "0"})), USER_ARGS,
                      ["data.csv", "case '2'", "no chosen row"]),
    "two chosen rows": (to_csv(edit(GOOD_ROWS, {(4, "ch"): "1"})), USER_ARGS,
                        ["data.csv", "case '2'", "more than one chosen"]),
    "bad choice flag": (to_csv(edit(GOOD_ROWS, {(4, "ch"): "yes"})), USER_ARGS,
                        ["data.csv", "'ch'", "case '2'"]),
    "chosen unavailable": (to_csv(edit(GOOD_ROWS, {(5, "av"): "0"})), USER_ARGS + ["--avail",
                                                                                  "av"],
                           ["data.csv", "case '2'", "unavailable"]),
    "one available": (to_csv(edit(GOOD_ROWS, {(7, "av"): "0", (8, "av"): "0"})),
                      USER_ARGS + ["--avail", "av"],
                      ["data.csv", "case '3'", "fewer than two available"]),
    "one alternative in file": (to_csv([GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[2], GOOD_ROWS[4],
                                        GOOD_ROWS[5], ["3", "a", "1", "1", "1.0", "5"]]),
                                USER_ARGS, ["data.csv", "case '3'", "fewer than two"]),
    "empty file": ("", USER_ARGS, ["data.csv", "empty"]),
    "header only": (to_csv(GOOD_ROWS[:1]), USER_ARGS, ["data.csv", "no data rows"]),
    "ragged row": (to_csv(GOOD_ROWS) + "4,a,1\n", USER_ARGS, ["data.csv", "line 11"]),
    "unknown ref": (to_csv(GOOD_ROWS), USER_ARGS + ["--asc", "--ref", "z"], ["data.csv", "'z'"]),
    "unknown specific alternative": (to_csv(GOOD_ROWS), USER_ARGS + ["--specific", "inc:b+z"],
                                     ["data.csv", "'z'"]),
    "json into missing folder": (to_csv(GOOD_ROWS), USER_ARGS + ["--json", "{dir}/no/out.json"],
                                 ["--json", "does not exist"]),
    "json is a folder": (to_csv(GOOD_ROWS), USER_ARGS + ["--json", "{dir}"],
                         ["--json", "folder"]),
    "no parameters": (to_csv(GOOD_ROWS), ["--case", "id", "--alt", "alt", "--choice", "ch"],
                      ["data.csv", "no parameters"]),
    "data without case": (to_csv(GOOD_ROWS), ["--alt", "alt", "--choice", "ch"], ["--case"]),
    "columns without data": (None, ["--nodata", "--case", "id"], ["--data"]),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input(name, tmp_path, capsys):
  text, extra, needles = BAD_INPUTS[name]
  folder = tmp_path / "work"
  folder.mkdir()
  data = folder / ("nope.csv" if text is None else "data.csv")
  if text is not None:
    data.write_text(text)
  extra = [a.replace("{dir}", str(folder)) for a in extra]
  argv = ["fit"]
  if "--nodata" in extra:
    extra = [a for a in extra if a != "--nodata"]
  else:
    argv += ["--data", str(data)]
  if "--json" not in extra:
    extra += ["--json", str(folder / "out.json")]
  before = sorted(os.listdir(folder))
  rc, out, err = run_main(argv + extra, capsys)
  assert rc == 2, (out, err)
  assert "Traceback" not in err
  assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line
  assert err.startswith("lsejax fit: error: ")
  for needle in needles:
    assert needle in err, (needle, err)
  assert out == ""
  assert sorted(os.listdir(folder)) == before  # no output or temporary file left behind
  assert sorted(os.listdir(tmp_path)) == ["work"]


@pytest.mark.parametrize("option", [["--max-steps", "0"], ["--tol", "0"], ["--tol", "nan"]])
def test_bad_numeric_option_is_one_line_error(option, tmp_path, capsys):
  out_path = tmp_path / "out.json"
  rc, out, err = run_main(["fit", *option, "--json", str(out_path)], capsys)
  assert rc == 2
  assert err.count("\n") == 1 and "Traceback" not in err
  assert option[0] in err
  assert os.listdir(tmp_path) == []


def test_negative_learning_rate_is_one_line_error(tmp_path, capsys):
  rc, out, err = run_main(["fit", "--optimizer", "adam", "--learning-rate", "-1",
                           "--max-steps", "3"], capsys)
  assert rc == 2
  assert err.count("\n") == 1 and "--learning-rate" in err


def test_argparse_errors_exit_2(capsys):
  for argv in (["fit", "--optimizer", "sgd"], ["fit", "--max-steps", "many"], []):
    with pytest.raises(SystemExit) as info:
      cli.main(argv)
    assert info.value.code == 2
    _, err = capsys.readouterr()
    assert "Traceback" not in err and "usage: lsejax" in err


def test_help(capsys):
  with pytest.raises(SystemExit) as info:
    cli.main(["fit", "--help"])
  assert info.value.code == 0
  out, _ = capsys.readouterr()
  for option in ("--data", "--case", "--alt", "--choice", "--avail", "--asc", "--ref",
                 "--specific", "--json", "--optimizer", "--max-steps", "--tol"):
    assert option in out


@pytest.mark.parametrize("target", ["", "dir/", "fifo"])
def test_json_target_that_cannot_hold_the_results_is_refused_up_front(target, tmp_path, capsys):
  (tmp_path / "dir").mkdir()
  os.mkfifo(tmp_path / "fifo")
  path = "" if target == "" else str(tmp_path / target)
  rc, out, err = run_main(["fit", f"--json={path}"], capsys)
  assert rc == 2 and out == ""
  assert err.count("\n") == 1 and "--json" in err
  assert sorted(os.listdir(tmp_path)) == ["dir", "fifo"]


def test_json_file_follows_the_umask(tmp_path, capsys):
  old = os.umask(0o022)
  try:
    rc, _, _ = run_main(["fit", "--json", str(tmp_path / "r.json")], capsys)
  finally:
    os.umask(old)
  assert rc == 0
  assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
