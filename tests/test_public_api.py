"""Every public name imports, and every public function documents itself with an example."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

import lsejax

PUBLIC = sorted(lsejax.__all__)


def test_all_is_unique_and_complete():
  assert len(set(lsejax.__all__)) == len(lsejax.__all__)
  expected = {
      "FitResult", "GradientCheck", "Inference", "check_gradients", "fit", "fit_function",
      "forward_mode", "log_linear_inference", "log_linear_information", "log_linear_nll",
      "log_softmax", "logsumexp", "softmax", "softmax_cross_entropy",
      "softmax_cross_entropy_with_integer_labels",
  }
  assert expected <= set(lsejax.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_name_imports(name):
  module = importlib.import_module("lsejax")
  obj = getattr(module, name)
  assert obj is not None
  namespace: dict = {}
  exec(f"from lsejax import {name}", namespace)  # noqa: S102
  assert namespace[name] is obj
  assert inspect.getdoc(obj), f"{name} has no docstring"


FUNCTIONS = [n for n in PUBLIC if inspect.isfunction(getattr(lsejax, n))]


def test_functions_found():
  assert {"logsumexp", "fit", "fit_function", "check_gradients", "log_linear_nll"} <= set(
      FUNCTIONS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_docstring_has_examples(name):
  doc = inspect.getdoc(getattr(lsejax, name)) or ""
  match = re.search(r"^Examples?:\s*$", doc, re.M)
  assert match, f"lsejax.{name}: docstring has no 'Examples:' section"
  assert re.search(r"^\s*>>> ", doc[match.end():], re.M), (
      f"lsejax.{name}: the Examples section has no '>>>' line")
