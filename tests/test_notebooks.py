"""Every notebook in notebooks/ runs top to bottom without an error (its cells assert their claims).

Each notebook is executed with nbclient on the "python3" kernel (ipykernel) from a copy in a
temporary folder, so nothing is written back: the committed notebooks stay without outputs. The
kernel imports lsejax from this checkout (the repository root goes first on its PYTHONPATH).

This is part of the normal test run: there is no marker to opt into, and a missing kernel is a
failure, not a skip. ``pip install -e .[test]`` installs ipykernel, whose wheel ships the
"python3" kernelspec.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import time

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT_S = 120
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the kernel colours its tracebacks


def _kernel_or_fail() -> None:
  try:
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
  except NoSuchKernel:
    pytest.fail(f"no Jupyter kernel named {KERNEL!r}: install ipykernel (pip install -e .[test]) "
                f"or register one (python -m ipykernel install --user --name {KERNEL})")
  assert spec.language.lower() == "python", spec.language


def test_notebooks_exist():
  assert NOTEBOOKS, f"no notebooks in {ROOT / 'notebooks'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  assert nb.metadata.kernelspec.name == KERNEL
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, (path.name, cell.get("id"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
  _kernel_or_fail()
  copy = tmp_path / path.name
  shutil.copyfile(path, copy)
  nb = nbformat.read(copy, as_version=4)
  # The kernel inherits this environment: test this checkout's lsejax, keep JAX quiet and on CPU
  # unless the caller chose otherwise, and silence the debugger's frozen-modules warning.
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
  monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
  client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL,
                                   resources={"metadata": {"path": str(tmp_path)}})
  start = time.perf_counter()
  failure = None
  try:
    client.execute()
  except nbclient.exceptions.CellTimeoutError as err:
    failure = f"{path.name}: a cell ran past {CELL_TIMEOUT_S} s\n{err}"
  except nbclient.exceptions.CellExecutionError as err:
    failure = f"{path.name}: a cell raised\n{_ANSI.sub('', str(err))}"
  if failure is not None:  # outside the except: one report, not a chained traceback
    pytest.fail(failure, pytrace=False)
  elapsed = time.perf_counter() - start
  errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if out.get("output_type") == "error"]
  assert not errors, errors
  print(f"{path.name}: {elapsed:.1f} s")
