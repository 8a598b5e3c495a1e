"""Long-format discrete-choice data: reading, validating and building design arrays.

A long-format CSV has one row per (case, alternative) pair and a header row. This module turns
such a file plus a :class:`Specification` into dense numpy arrays for a conditional logit model:
``features[case, alternative, parameter]``, the chosen alternative of every case and an
availability mask. Every problem with the input is reported as a one-line :class:`DataError`
that names the file and the offending column or case.

Example:
    >>> data = travel_mode()
    >>> data.num_cases, data.num_alternatives, data.names
    (210, 4, ('ASC_air', 'ASC_train', 'ASC_bus', 'gc', 'ttme', 'hinc:air'))
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import pathlib
from importlib import resources
from typing import NamedTuple

import numpy as np

__all__ = [
  "DEFAULT_TRAVEL_SPEC",
  "ChoiceData",
  "DataError",
  "Specification",
  "embedded_path",
  "parse_specific",
  "read_long_csv",
  "travel_mode",
]

EMBEDDED_SOURCE = "embedded TravelMode data"

_TRUE = frozenset({"1", "1.0", "true"})
_FALSE = frozenset({"0", "0.0", "false"})


class DataError(ValueError):
  """Bad input data; the message is one line naming the file, the column or the case."""

  def __init__(self, message: str) -> None:
    # The CLI prints the message verbatim as a single line; a quoted CSV field could
    # smuggle in a line break, so fold any into spaces.
    super().__init__(" ".join(str(message).splitlines()))


@dataclasses.dataclass(frozen=True, eq=False)
class ChoiceData:
  """Dense design arrays for a conditional logit model.

  Attributes:
      features: float64 ``[cases, alternatives, k]``; 0.0 where an alternative is unavailable.
      chosen: int32 ``[cases]``, index of the chosen alternative on the alternative axis.
      available: bool ``[cases, alternatives]``.
      names: The ``k`` parameter names, one per feature column.
      alternatives: Alternative labels, in order of first appearance in the file.
      cases: Case ids as strings, in order of first appearance in the file.
      source: The file path, or ``"embedded TravelMode data"``.
  """

  features: np.ndarray
  chosen: np.ndarray
  available: np.ndarray
  names: tuple[str, ...]
  alternatives: tuple[str, ...]
  cases: tuple[str, ...]
  source: str

  @property
  def num_cases(self) -> int:
    """Number of choice cases."""
    return self.features.shape[0]

  @property
  def num_alternatives(self) -> int:
    """Number of distinct alternatives across all cases."""
    return self.features.shape[1]

  @property
  def num_features(self) -> int:
    """Number of parameters ``k``."""
    return self.features.shape[2]


@dataclasses.dataclass(frozen=True)
class Specification:
  """Which parameters to build from the columns of a long-format file.

  Parameters are ordered: alternative-specific constants first (non-reference alternatives in
  order of appearance), then generic ``features`` in the given order, then ``specific``
  interactions in the given order, each column's alternatives in order of appearance.

  Attributes:
      features: Generic columns; one coefficient each, named after the column.
      asc: Whether to add a constant ``ASC_<alt>`` for every alternative except ``ref``.
      ref: Reference alternative; defaults to the last alternative in order of appearance.
      specific: ``(column, alternatives)`` pairs; the column's value enters only on the rows of
          the listed alternatives, one coefficient ``<column>:<alt>`` each. ``None`` means all
          non-reference alternatives.
  """

  features: tuple[str, ...] = ()
  asc: bool = False
  ref: str | None = None
  specific: tuple[tuple[str, tuple[str, ...] | None], ...] = ()

  def __post_init__(self) -> None:
    # Accept lists from callers but store tuples, so the spec stays hashable.
    object.__setattr__(self, "features", tuple(self.features))
    specific = tuple(
      (column, None if alts is None else tuple(alts)) for column, alts in self.specific
    )
    object.__setattr__(self, "specific", specific)


DEFAULT_TRAVEL_SPEC = Specification(
  features=("gc", "ttme"), asc=True, ref="car", specific=(("hinc", ("air",)),)
)


class _Param(NamedTuple):
  """One design column: ``column`` value (or 1.0 when None) on rows of ``alts`` (None: all)."""

  name: str
  column: str | None
  alts: tuple[int, ...] | None


@dataclasses.dataclass
class _Table:
  """The parsed rows of a file, with each row's case and alternative index."""

  label: str
  header: list[str]
  records: list[tuple[int, list[str]]]  # (line number, stripped cells)
  row_case: np.ndarray
  row_alt: np.ndarray
  cases: tuple[str, ...]
  alternatives: tuple[str, ...]

  def where(self, row: int) -> str:
    """Describe a row for an error message."""
    return (
      f"case {self.cases[self.row_case[row]]!r}, "
      f"alternative {self.alternatives[self.row_alt[row]]!r}"
    )


def parse_specific(text: str) -> tuple[tuple[str, tuple[str, ...] | None], ...]:
  """Parse the ``--specific`` syntax: comma-separated ``column[:alt+alt...]`` items.

  Args:
      text: For example ``"hinc:air+train,psize"``. Empty or blank text means no items.

  Returns:
      ``(column, alternatives)`` pairs; ``alternatives`` is None when an item names no
      alternatives (meaning all non-reference alternatives).

  Raises:
      DataError: On an empty item, column or alternative, or more than one ``:`` in an item.

  Example:
      >>> parse_specific("hinc:air+train,psize")
      (('hinc', ('air', 'train')), ('psize', None))
  """
  if not text.strip():
    return ()
  items = []
  for item in text.split(","):
    column, sep, alts = (part.strip() for part in item.partition(":"))
    if not column or ":" in alts:
      raise DataError(f"--specific {text!r}: bad item {item.strip()!r}, want column[:alt+alt]")
    if not sep:
      items.append((column, None))
      continue
    names = tuple(alt.strip() for alt in alts.split("+"))
    if not all(names):
      raise DataError(f"--specific {text!r}: empty alternative in item {item.strip()!r}")
    items.append((column, names))
  return tuple(items)


def embedded_path() -> pathlib.Path:
  """Path of the embedded TravelMode CSV shipped in ``lsejax/data``.

  Examples:
      >>> import lsejax
      >>> lsejax.embedded_path().name
      'travel_mode.csv'
  """
  return pathlib.Path(str(resources.files("lsejax") / "data" / "travel_mode.csv"))


def travel_mode(spec: Specification | None = None) -> ChoiceData:
  """The embedded TravelMode data (Greene and Hensher): 210 cases, 4 modes.

  Args:
      spec: Parameters to build; defaults to :data:`DEFAULT_TRAVEL_SPEC`, giving
          ``ASC_air, ASC_train, ASC_bus, gc, ttme, hinc:air`` with car as reference.

  Returns:
      The design arrays, with ``source`` set to ``"embedded TravelMode data"``.

  Examples:
      >>> import lsejax
      >>> data = lsejax.travel_mode()
      >>> data.features.shape, data.names[:2]
      ((210, 4, 6), ('ASC_air', 'ASC_train'))
  """
  spec = DEFAULT_TRAVEL_SPEC if spec is None else spec
  return _load(
    embedded_path(),
    EMBEDDED_SOURCE,
    case="individual",
    alt="mode",
    choice="choice",
    avail=None,
    spec=spec,
  )


def read_long_csv(
  path: str | os.PathLike[str],
  *,
  case: str,
  alt: str,
  choice: str,
  avail: str | None = None,
  spec: Specification,
) -> ChoiceData:
  """Read a long-format choice CSV into design arrays.

  Rows of a case may come in any order; a (case, alternative) pair absent from the file is
  unavailable. Feature cells of unavailable rows are not read, so they may be empty or NaN.

  Args:
      path: The CSV file, with a header row.
      case: Column holding the case id.
      alt: Column holding the alternative label.
      choice: Column that is 1 (or 1.0/true) on the chosen row and 0 (0.0/false) elsewhere.
      avail: Optional column that is 1/0 or true/false; rows with 0 are unavailable.
      spec: The parameters to build.

  Returns:
      The design arrays; ``source`` is ``str(path)``.

  Raises:
      DataError: On any problem with the file or the specification, in one line.

  Examples:
      >>> import lsejax
      >>> spec = lsejax.Specification(features=("gc",), asc=True, ref="car")
      >>> data = lsejax.read_long_csv(lsejax.embedded_path(), case="individual", alt="mode",
      ...                             choice="choice", spec=spec)
      >>> data.names
      ('ASC_air', 'ASC_train', 'ASC_bus', 'gc')
  """
  return _load(
    pathlib.Path(path), str(path), case=case, alt=alt, choice=choice, avail=avail, spec=spec
  )


def _load(
  path: pathlib.Path,
  label: str,
  *,
  case: str,
  alt: str,
  choice: str,
  avail: str | None,
  spec: Specification,
) -> ChoiceData:
  """Read ``path``, naming it ``label`` in errors and in ``ChoiceData.source``."""
  header, records = _read_rows(path, label)
  # Check every referenced column up front, so a typo is reported before any data problem.
  needed = [case, alt, choice, *([avail] if avail is not None else [])]
  needed += [*spec.features, *(column for column, _ in spec.specific)]
  for column in needed:
    _column(header, label, column)
  table = _index_rows(label, header, records, case, alt)
  row_avail = _flags(table, avail) if avail is not None else np.ones(len(records), dtype=bool)
  available = np.zeros((len(table.cases), len(table.alternatives)), dtype=bool)
  available[table.row_case, table.row_alt] = row_avail
  chosen = _chosen(table, choice, _flags(table, choice), available)
  params = _parameters(spec, table.alternatives, label)
  features = _design(table, params, row_avail)
  return ChoiceData(
    features=features,
    chosen=chosen,
    available=available,
    names=tuple(p.name for p in params),
    alternatives=table.alternatives,
    cases=table.cases,
    source=label,
  )


def _read_rows(path: pathlib.Path, label: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
  """Read the header and the non-blank rows, each with its line number; cells stripped."""
  header: list[str] | None = None
  records: list[tuple[int, list[str]]] = []
  try:
    with open(path, newline="", encoding="utf-8-sig") as handle:
      reader = csv.reader(handle)
      try:
        for fields in reader:
          if not fields:  # csv yields [] for a blank line
            continue
          fields = [cell.strip() for cell in fields]
          if header is None:
            header = fields
          elif len(fields) != len(header):
            raise DataError(
              f"{label}: line {reader.line_num} has {len(fields)} fields, "
              f"the header has {len(header)}"
            )
          else:
            records.append((reader.line_num, fields))
      except csv.Error as exc:
        raise DataError(f"{label}: line {reader.line_num}: malformed CSV ({exc})") from None
  except FileNotFoundError:
    raise DataError(f"{label}: no such file") from None
  except IsADirectoryError:
    raise DataError(f"{label}: is a directory, not a CSV file") from None
  except UnicodeDecodeError:
    raise DataError(f"{label}: not UTF-8 text") from None
  except OSError as exc:
    raise DataError(f"{label}: cannot read file ({exc.strerror or exc})") from None
  if header is None:
    raise DataError(f"{label}: empty file, expected a header row")
  if not records:
    raise DataError(f"{label}: header only, no data rows")
  for i, name in enumerate(header):
    if name in header[:i]:
      raise DataError(f"{label}: column {name!r} appears twice in the header")
  return header, records


def _column(header: list[str], label: str, name: str) -> int:
  """Index of column ``name``, or a DataError listing the columns there are."""
  if name not in header:
    raise DataError(f"{label}: no column {name!r}; columns are: {', '.join(header)}")
  return header.index(name)


def _index_rows(
  label: str, header: list[str], records: list[tuple[int, list[str]]], case: str, alt: str
) -> _Table:
  """Assign case and alternative indices in order of first appearance; reject duplicates."""
  case_col, alt_col = _column(header, label, case), _column(header, label, alt)
  case_ids: dict[str, int] = {}
  alt_ids: dict[str, int] = {}
  seen: set[tuple[int, int]] = set()
  row_case, row_alt = [], []
  for line, fields in records:
    case_id, alt_id = fields[case_col], fields[alt_col]
    for column, value in ((case, case_id), (alt, alt_id)):
      if not value:
        raise DataError(f"{label}: line {line}: empty cell in column {column!r}")
    key = (
      case_ids.setdefault(case_id, len(case_ids)),
      alt_ids.setdefault(alt_id, len(alt_ids)),
    )
    if key in seen:
      raise DataError(
        f"{label}: case {case_id!r} has more than one row for alternative {alt_id!r} (line {line})"
      )
    seen.add(key)
    row_case.append(key[0])
    row_alt.append(key[1])
  return _Table(
    label,
    header,
    records,
    np.array(row_case, dtype=np.intp),
    np.array(row_alt, dtype=np.intp),
    tuple(case_ids),
    tuple(alt_ids),
  )


def _flags(table: _Table, column: str) -> np.ndarray:
  """Parse a 0/1 (or true/false) column into a bool per row."""
  col = table.header.index(column)
  out = np.empty(len(table.records), dtype=bool)
  for row, (_, fields) in enumerate(table.records):
    value = fields[col].lower()
    if value not in _TRUE and value not in _FALSE:
      raise DataError(
        f"{table.label}: column {column!r}, {table.where(row)}: "
        f"{fields[col]!r} is not 1/0 or true/false"
      )
    out[row] = value in _TRUE
  return out


def _check_cases(table: _Table, bad: np.ndarray, problem: str) -> None:
  """Raise for the first case flagged in ``bad``, saying how many others share the problem."""
  idx = np.flatnonzero(bad)
  if idx.size:
    more = f" (and {idx.size - 1} more cases)" if idx.size > 1 else ""
    raise DataError(f"{table.label}: case {table.cases[idx[0]]!r}{more} {problem}")


def _chosen(
  table: _Table, column: str, row_chosen: np.ndarray, available: np.ndarray
) -> np.ndarray:
  """Index of each case's chosen alternative, checking each case's choice set is usable."""
  n = len(table.cases)
  count = np.bincount(table.row_case[row_chosen], minlength=n)
  _check_cases(table, count == 0, f"has no chosen row in column {column!r}")
  _check_cases(table, count > 1, f"has more than one chosen row in column {column!r}")
  chosen = np.empty(n, dtype=np.int32)
  chosen[table.row_case[row_chosen]] = table.row_alt[row_chosen]
  _check_cases(table, ~available[np.arange(n), chosen], "chose an unavailable alternative")
  _check_cases(table, available.sum(axis=1) < 2, "has fewer than two available alternatives")
  return chosen


def _parameters(spec: Specification, alternatives: tuple[str, ...], label: str) -> list[_Param]:
  """Resolve the specification against the file's alternatives into ordered design columns."""
  known = ", ".join(alternatives)
  ref = alternatives[-1] if spec.ref is None else spec.ref
  if ref not in alternatives:
    raise DataError(
      f"{label}: reference alternative {ref!r} is not among the alternatives ({known})"
    )
  non_ref = [i for i, name in enumerate(alternatives) if name != ref]
  params = [_Param(f"ASC_{alternatives[i]}", None, (i,)) for i in non_ref] if spec.asc else []
  params += [_Param(column, column, None) for column in spec.features]
  for column, alts in spec.specific:
    if alts is None:
      indices = non_ref
    else:
      for name in alts:
        if name not in alternatives:
          raise DataError(
            f"{label}: specific column {column!r} names unknown alternative {name!r} ({known})"
          )
        if name == ref:
          raise DataError(
            f"{label}: specific column {column!r} lists the reference alternative {ref!r}"
          )
      # Sorting by appearance makes the parameter order independent of how alts were typed.
      indices = sorted(alternatives.index(name) for name in alts)
    params += [_Param(f"{column}:{alternatives[i]}", column, (i,)) for i in indices]
  if not params:
    raise DataError(f"{label}: the specification has no parameters")
  names = [p.name for p in params]
  for i, name in enumerate(names):
    if name in names[:i]:
      raise DataError(f"{label}: duplicate parameter name {name!r}")
  return params


def _design(table: _Table, params: list[_Param], row_avail: np.ndarray) -> np.ndarray:
  """Fill ``features[case, alt, j]``; only cells of available rows are read and validated."""
  features = np.zeros((len(table.cases), len(table.alternatives), len(params)), dtype=np.float64)
  for j, param in enumerate(params):
    rows = row_avail.copy()
    if param.alts is not None:
      rows &= np.isin(table.row_alt, param.alts)
    idx = np.flatnonzero(rows)
    values = 1.0 if param.column is None else _numbers(table, param.column, idx)
    features[table.row_case[idx], table.row_alt[idx], j] = values
    # A column that is zero wherever it could enter the utility has no effect on the
    # likelihood, so its coefficient is unidentified (e.g. an ASC of a never-available mode).
    if not np.any(features[:, :, j]):  # unavailable entries are 0 already
      raise DataError(
        f"{table.label}: parameter {param.name!r} is zero on every available row, "
        "so it cannot be estimated"
      )
  return features


def _numbers(table: _Table, column: str, rows: np.ndarray) -> np.ndarray:
  """Parse ``column`` on the given rows as finite floats."""
  col = table.header.index(column)
  out = np.empty(rows.size, dtype=np.float64)
  for i, row in enumerate(rows):
    text = table.records[row][1][col]
    try:
      value = float(text)
    except ValueError:
      value = math.nan
    if not math.isfinite(value):
      raise DataError(
        f"{table.label}: column {column!r}, {table.where(row)}: {text!r} is not a finite number"
      )
    out[i] = value
  return out
