"""Tests for lsejax._data: long-format CSV reading, validation and the embedded TravelMode set."""

from __future__ import annotations

import collections
import csv
import os
import pathlib
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsejax._data import (
  DEFAULT_TRAVEL_SPEC,
  ChoiceData,
  DataError,
  Specification,
  embedded_path,
  parse_specific,
  read_long_csv,
  travel_mode,
)

RAW_CSV = pathlib.Path(__file__).resolve().parents[1] / "lsejax" / "data" / "travel_mode.csv"
TRAVEL_NAMES = ("ASC_air", "ASC_train", "ASC_bus", "gc", "ttme", "hinc:air")

# A small balanced file used by most error tests: 2 cases x 3 alternatives.
SMALL = """\
id,alt,ch,x,z,av
1,a,1,1.5,10,1
1,b,0,2.5,10,1
1,c,0,3.5,10,1
2,a,0,4.0,20,1
2,b,1,5.0,20,1
2,c,0,6.0,20,1
"""


def write(tmp_path: pathlib.Path, text: str, name: str = "data.csv") -> pathlib.Path:
  path = tmp_path / name
  path.write_text(text)
  return path


def read(path, spec=None, **kw) -> ChoiceData:
  kw = {"case": "id", "alt": "alt", "choice": "ch", "avail": None, **kw}
  return read_long_csv(path, spec=spec or Specification(features=("x",)), **kw)


def raises(fn, *needles: str) -> str:
  """Assert ``fn`` raises a one-line DataError whose message contains every needle."""
  with pytest.raises(DataError) as info:
    fn()
  message = str(info.value)
  assert "\n" not in message and "\r" not in message
  for needle in needles:
    assert needle in message, (needle, message)
  return message


def raw_rows() -> list[dict[str, str]]:
  with open(RAW_CSV, newline="") as handle:
    return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------------------------
# The embedded TravelMode data


def test_embedded_shape_names_and_dtypes():
  data = travel_mode()
  assert (data.num_cases, data.num_alternatives, data.num_features) == (210, 4, 6)
  assert data.features.shape == (210, 4, 6)
  assert data.alternatives == ("air", "train", "bus", "car")
  assert data.names == TRAVEL_NAMES
  assert data.cases == tuple(str(i) for i in range(1, 211))
  assert data.source == "embedded TravelMode data"
  assert data.features.dtype == np.float64
  assert data.chosen.dtype == np.int32
  assert data.available.dtype == np.bool_
  assert data.available.all()


def test_embedded_chosen_counts_match_independent_count():
  rows = raw_rows()
  per_case = collections.Counter(r["individual"] for r in rows if r["choice"] == "1")
  assert len(per_case) == 210 and set(per_case.values()) == {1}
  expected = collections.Counter(r["mode"] for r in rows if r["choice"] == "1")
  # Checked by hand against the raw file as well as computed here.
  assert expected == {"air": 58, "train": 63, "bus": 30, "car": 59}
  data = travel_mode()
  got = collections.Counter(data.alternatives[i] for i in data.chosen)
  assert got == expected
  for row in rows:
    if row["choice"] == "1":
      case = data.cases.index(row["individual"])
      assert data.alternatives[data.chosen[case]] == row["mode"]


def test_embedded_features_match_raw_csv():
  data = travel_mode()
  rows = raw_rows()
  assert len(rows) == 840
  for row in rows:
    i, j = data.cases.index(row["individual"]), data.alternatives.index(row["mode"])
    f = dict(zip(data.names, data.features[i, j]))
    for mode in ("air", "train", "bus"):
      assert f[f"ASC_{mode}"] == (1.0 if row["mode"] == mode else 0.0)
    assert f["gc"] == float(row["gc"])
    assert f["ttme"] == float(row["ttme"])
    assert f["hinc:air"] == (float(row["hinc"]) if row["mode"] == "air" else 0.0)
  # One literal spot check: traveller 1 on air (gc 70, ttme 69, hinc 35).
  np.testing.assert_array_equal(data.features[0, 0], [1, 0, 0, 70, 69, 35])


def test_embedded_path_is_the_packaged_csv():
  path = embedded_path()
  assert isinstance(path, pathlib.Path) and path.is_file()
  assert path.read_bytes() == RAW_CSV.read_bytes()


def test_default_spec_and_read_long_csv_of_embedded_path_agree():
  direct = read_long_csv(
    embedded_path(),
    case="individual",
    alt="mode",
    choice="choice",
    avail=None,
    spec=DEFAULT_TRAVEL_SPEC,
  )
  data = travel_mode()
  assert direct.source == str(embedded_path())
  assert direct.names == data.names
  np.testing.assert_array_equal(direct.features, data.features)
  np.testing.assert_array_equal(direct.chosen, data.chosen)


def test_travel_mode_custom_spec_orders_parameters():
  spec = Specification(
    features=["invc", "invt"],
    asc=True,
    ref="air",
    specific=[("psize", None), ("hinc", ("car", "train"))],
  )
  data = travel_mode(spec)
  assert data.names == (
    "ASC_train",
    "ASC_bus",
    "ASC_car",
    "invc",
    "invt",
    "psize:train",
    "psize:bus",
    "psize:car",
    "hinc:train",
    "hinc:car",
  )
  # Default ref (last alternative, car) when none is given.
  data = travel_mode(Specification(specific=(("psize", None),)))
  assert data.names == ("psize:air", "psize:train", "psize:bus")


def test_specification_normalises_to_tuples():
  spec = Specification(features=["a"], specific=[("h", ["x", "y"]), ("p", None)])
  assert spec.features == ("a",)
  assert spec.specific == (("h", ("x", "y")), ("p", None))
  hash(spec)


# ---------------------------------------------------------------------------------------------
# Layout: unbalanced cases, row order, availability, cell syntax


def test_unbalanced_cases(tmp_path):
  path = write(
    tmp_path,
    """\
id,alt,ch,x
1,a,0,1
1,b,1,2
1,c,0,3
2,c,1,7
2,b,0,8
3,a,1,4
3,c,0,5
""",
  )
  data = read(path, Specification(features=("x",), asc=True))
  assert data.alternatives == ("a", "b", "c")
  assert data.cases == ("1", "2", "3")
  assert data.names == ("ASC_a", "ASC_b", "x")  # ref defaults to the last alternative, c
  np.testing.assert_array_equal(data.available, [[1, 1, 1], [0, 1, 1], [1, 0, 1]])
  np.testing.assert_array_equal(data.chosen, [1, 2, 0])
  np.testing.assert_array_equal(data.features[..., 2], [[1, 2, 3], [0, 8, 7], [4, 0, 5]])
  np.testing.assert_array_equal(data.features[..., 0], [[1, 0, 0], [0, 0, 0], [1, 0, 0]])


def test_alternatives_in_order_of_first_appearance(tmp_path):
  path = write(tmp_path, "id,alt,ch,x\n1,b,1,1\n1,a,0,2\n2,c,0,3\n2,a,1,4\n")
  data = read(path, Specification(asc=True))
  assert data.alternatives == ("b", "a", "c")
  assert data.names == ("ASC_b", "ASC_a")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shuffled_rows_give_the_same_data(tmp_path, seed):
  lines = RAW_CSV.read_text().splitlines()
  body = lines[1:]
  random.Random(seed).shuffle(body)
  path = write(tmp_path, "\n".join([lines[0], *body]) + "\n")
  got = read_long_csv(
    path, case="individual", alt="mode", choice="choice", avail=None, spec=DEFAULT_TRAVEL_SPEC
  )
  ref = travel_mode()
  # Alternatives (and so the ASC order) follow first appearance, which shuffling changes.
  assert sorted(got.names) == sorted(ref.names)
  assert got.names[got.names.index("gc") :] == ("gc", "ttme", "hinc:air")
  assert sorted(got.cases) == sorted(ref.cases)
  assert sorted(got.alternatives) == sorted(ref.alternatives)
  ci = [got.cases.index(c) for c in ref.cases]
  ai = [got.alternatives.index(a) for a in ref.alternatives]
  ki = [got.names.index(n) for n in ref.names]
  np.testing.assert_array_equal(got.features[np.ix_(ci, ai, ki)], ref.features)
  got_chosen = [got.alternatives[got.chosen[i]] for i in ci]
  assert got_chosen == [ref.alternatives[c] for c in ref.chosen]


def test_avail_column_masks_rows_and_skips_their_values(tmp_path):
  path = write(
    tmp_path,
    """\
id,alt,ch,x,av
1,a,1,1.0,1
1,b,0,,0
1,c,0,3.0,true
2,a,0,nan,0
2,b,1,5.0,TRUE
2,c,0,6.0,1.0
3,a,0,abc,false
3,b,0,inf,0.0
3,c,1,9.0,1
3,d,0,2.0,1
""",
  )
  data = read(path, Specification(features=("x",), asc=True), avail="av")
  assert data.alternatives == ("a", "b", "c", "d")
  np.testing.assert_array_equal(data.available, [[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
  x = data.features[..., data.names.index("x")]
  np.testing.assert_array_equal(x, [[1, 0, 3, 0], [0, 5, 6, 0], [0, 0, 9, 2]])
  assert np.all(data.features[~data.available] == 0.0)
  np.testing.assert_array_equal(data.chosen, [0, 1, 2])


def test_choice_tokens_whitespace_bom_and_blank_lines(tmp_path):
  text = "\ufeff id , alt , ch , x \n 1 , a , 1.0 , 1 \n\n1,b, 0.0 ,2\n2,a,false,3\n2,b,True,4\n\n"
  path = tmp_path / "bom.csv"
  path.write_text(text, encoding="utf-8")
  data = read(path)
  assert data.cases == ("1", "2") and data.alternatives == ("a", "b")
  np.testing.assert_array_equal(data.chosen, [0, 1])
  np.testing.assert_array_equal(data.features[..., 0], [[1, 2], [3, 4]])


def test_specific_alternatives_follow_order_of_appearance(tmp_path):
  path = write(tmp_path, SMALL)
  data = read(path, Specification(specific=(("z", ("b", "a")),), ref="c"))
  assert data.names == ("z:a", "z:b")
  np.testing.assert_array_equal(data.features[..., 0], [[10, 0, 0], [20, 0, 0]])
  np.testing.assert_array_equal(data.features[..., 1], [[0, 10, 0], [0, 20, 0]])


def test_specific_cells_outside_its_alternatives_are_not_read(tmp_path):
  # A case attribute only needs to be present on the rows where it is used.
  path = write(tmp_path, "id,alt,ch,h\n1,a,1,5\n1,b,0,\n2,a,0,7\n2,b,1,oops\n")
  data = read(path, Specification(specific=(("h", ("a",)),)))
  np.testing.assert_array_equal(data.features[..., 0], [[5, 0], [7, 0]])


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_files_round_trip(tmp_path_factory, data):
  """Random unbalanced data written in random row order reads back as written."""
  num_alts = data.draw(st.integers(2, 4))
  labels = [f"m{i}" for i in range(num_alts)]
  rows, truth = [], {}
  for case in range(data.draw(st.integers(1, 6))):
    alts = data.draw(st.lists(st.sampled_from(labels), min_size=2, max_size=num_alts, unique=True))
    pick = data.draw(st.sampled_from(alts))
    for alt in alts:
      x = data.draw(st.integers(1, 99))
      rows.append((f"c{case}", alt, int(alt == pick), x))
      truth[(f"c{case}", alt)] = (x, alt == pick)
  rows = data.draw(st.permutations(rows))
  text = "id,alt,ch,x\n" + "".join(f"{c},{a},{ch},{x}\n" for c, a, ch, x in rows)
  path = write(tmp_path_factory.mktemp("rt"), text)
  got = read(path)
  assert got.cases == tuple(dict.fromkeys(r[0] for r in rows))
  assert got.alternatives == tuple(dict.fromkeys(r[1] for r in rows))
  for i, case in enumerate(got.cases):
    for j, alt in enumerate(got.alternatives):
      if (case, alt) in truth:
        x, picked = truth[(case, alt)]
        assert got.available[i, j] and got.features[i, j, 0] == x
        assert (got.chosen[i] == j) == picked
      else:
        assert not got.available[i, j] and got.features[i, j, 0] == 0.0


# ---------------------------------------------------------------------------------------------
# parse_specific


@pytest.mark.parametrize(
  "text, expected",
  [
    ("hinc:air+train,psize", (("hinc", ("air", "train")), ("psize", None))),
    ("hinc", (("hinc", None),)),
    (" hinc : air + bus , psize ", (("hinc", ("air", "bus")), ("psize", None))),
    ("a:x,b:y+z", (("a", ("x",)), ("b", ("y", "z")))),
    ("", ()),
    ("   ", ()),
  ],
)
def test_parse_specific(text, expected):
  assert parse_specific(text) == expected


@pytest.mark.parametrize(
  "text",
  [
    ",",
    "hinc,",
    ",hinc",
    "hinc,,psize",
    ":air",
    "hinc:",
    "hinc:air+",
    "hinc:air++bus",
    "hinc:air:bus",
  ],
)
def test_parse_specific_rejects_bad_syntax(text):
  raises(lambda: parse_specific(text), "--specific")


# ---------------------------------------------------------------------------------------------
# Errors: the file itself


def test_missing_file(tmp_path):
  path = tmp_path / "nope.csv"
  raises(lambda: read(path), str(path), "no such file")


def test_directory(tmp_path):
  raises(lambda: read(tmp_path), str(tmp_path), "directory")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
  path = write(tmp_path, SMALL)
  path.chmod(0)
  try:
    raises(lambda: read(path), str(path), "cannot read")
  finally:
    path.chmod(0o600)


def test_read_error_reported(tmp_path, monkeypatch):
  # Runs even as root, where chmod 0 does not stop reads.
  import lsejax._data as module

  def deny(*args, **kwargs):
    raise PermissionError(13, "Permission denied")

  monkeypatch.setattr(module, "open", deny, raising=False)
  path = write(tmp_path, SMALL)
  raises(lambda: read(path), str(path), "cannot read", "Permission denied")


def test_not_utf8(tmp_path):
  path = tmp_path / "latin.csv"
  path.write_bytes(b"id,alt,ch,x\n1,\xe9,1,1\n")
  raises(lambda: read(path), str(path), "UTF-8")


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_empty_file(tmp_path, text):
  path = write(tmp_path, text)
  raises(lambda: read(path), str(path), "empty")


def test_header_only(tmp_path):
  path = write(tmp_path, "id,alt,ch,x\n")
  raises(lambda: read(path), str(path), "no data rows")


@pytest.mark.parametrize("line", ["1,b,0,2.5,10", "1,b,0,2.5,10,1,9"])
def test_wrong_number_of_fields(tmp_path, line):
  lines = SMALL.splitlines()
  lines[2] = line
  path = write(tmp_path, "\n".join(lines) + "\n")
  raises(lambda: read(path), str(path), "line 3")


def test_duplicate_header_column(tmp_path):
  path = write(tmp_path, "id,alt,ch,x,x\n1,a,1,1,1\n1,b,0,2,2\n")
  raises(lambda: read(path), str(path), "'x'", "twice")


@pytest.mark.parametrize(
  "role, kwargs",
  [
    ("case", {"case": "person"}),
    ("alt", {"alt": "mode"}),
    ("choice", {"choice": "chosen"}),
    ("avail", {"avail": "avail"}),
    ("feature", {"spec": Specification(features=("x", "cost"))}),
    ("specific", {"spec": Specification(specific=(("income", None),))}),
  ],
)
def test_missing_column(tmp_path, role, kwargs):
  path = write(tmp_path, SMALL)
  missing = {
    "case": "person",
    "alt": "mode",
    "choice": "chosen",
    "avail": "avail",
    "feature": "cost",
    "specific": "income",
  }[role]
  raises(lambda: read(path, **kwargs), str(path), repr(missing), "id, alt, ch, x, z, av")


# ---------------------------------------------------------------------------------------------
# Errors: rows and cases


def test_duplicate_case_alternative(tmp_path):
  path = write(tmp_path, SMALL + "2,c,0,6.0,20,1\n")
  raises(lambda: read(path), str(path), "'2'", "'c'", "line 8")


def test_empty_case_id(tmp_path):
  path = write(tmp_path, SMALL + ",c,0,6.0,20,1\n")
  raises(lambda: read(path), str(path), "'id'", "line 8")


@pytest.mark.parametrize("value", ["2", "yes", "", "-1", "0.5"])
def test_bad_choice_value(tmp_path, value):
  path = write(tmp_path, SMALL.replace("2,b,1,5.0", f"2,b,{value},5.0"))
  raises(lambda: read(path), str(path), "'ch'", "case '2'", repr(value))


@pytest.mark.parametrize("value", ["2", "maybe", ""])
def test_bad_avail_value(tmp_path, value):
  path = write(tmp_path, SMALL.replace("2,c,0,6.0,20,1", f"2,c,0,6.0,20,{value}"))
  raises(lambda: read(path, avail="av"), str(path), "'av'", "case '2'", repr(value))


@pytest.mark.parametrize("value", ["abc", "nan", "NaN", "inf", "-inf", ""])
def test_bad_feature_value_on_available_row(tmp_path, value):
  path = write(tmp_path, SMALL.replace("2,c,0,6.0", f"2,c,0,{value}"))
  raises(lambda: read(path), str(path), "'x'", "case '2'", "alternative 'c'")
  raises(lambda: read(path, avail="av"), "'x'", "case '2'", "alternative 'c'")


def test_bad_specific_value_on_its_rows(tmp_path):
  path = write(tmp_path, SMALL.replace("2,a,0,4.0,20", "2,a,0,4.0,x20"))
  raises(
    lambda: read(path, Specification(specific=(("z", ("a",)),))),
    "'z'",
    "case '2'",
    "alternative 'a'",
  )


def test_case_with_no_chosen_row(tmp_path):
  path = write(tmp_path, SMALL.replace("2,b,1,5.0", "2,b,0,5.0"))
  raises(lambda: read(path), str(path), "case '2'", "no chosen", "'ch'")


def test_case_with_two_chosen_rows(tmp_path):
  path = write(tmp_path, SMALL.replace("1,c,0,3.5", "1,c,1,3.5"))
  raises(lambda: read(path), str(path), "case '1'", "more than one chosen")


def test_counts_other_bad_cases(tmp_path):
  path = write(tmp_path, SMALL.replace(",1,", ",0,"))  # no case has a choice now
  raises(lambda: read(path), "case '1'", "and 1 more")


def test_chosen_alternative_unavailable(tmp_path):
  path = write(tmp_path, SMALL.replace("2,b,1,5.0,20,1", "2,b,1,5.0,20,0"))
  raises(lambda: read(path, avail="av"), str(path), "case '2'", "unavailable")


def test_case_with_one_available_alternative(tmp_path):
  text = SMALL.replace("2,a,0,4.0,20,1", "2,a,0,4.0,20,0")
  path = write(tmp_path, text.replace("2,c,0,6.0,20,1", "2,c,0,6.0,20,0"))
  raises(lambda: read(path, avail="av"), str(path), "case '2'", "fewer than two")


def test_case_with_one_row(tmp_path):
  path = write(tmp_path, SMALL + "3,a,1,1,1,1\n")
  raises(lambda: read(path), str(path), "case '3'", "fewer than two")


# ---------------------------------------------------------------------------------------------
# Errors: the specification


def test_unknown_reference(tmp_path):
  path = write(tmp_path, SMALL)
  raises(lambda: read(path, Specification(asc=True, ref="d")), str(path), "'d'", "a, b, c")
  raises(lambda: read(path, Specification(features=("x",), ref="d")), "'d'")


def test_specific_unknown_alternative(tmp_path):
  path = write(tmp_path, SMALL)
  spec = Specification(specific=(("z", ("a", "zz")),))
  raises(lambda: read(path, spec), str(path), "'z'", "'zz'")


def test_specific_lists_reference(tmp_path):
  path = write(tmp_path, SMALL)
  spec = Specification(specific=(("z", ("a", "c")),))
  raises(lambda: read(path, spec), "'z'", "reference", "'c'")
  spec = Specification(specific=(("z", ("b",)),), ref="b")
  raises(lambda: read(path, spec), "'z'", "reference", "'b'")


@pytest.mark.parametrize(
  "spec, name",
  [
    (Specification(features=("x", "x")), "'x'"),
    (Specification(specific=(("z", ("a", "a")),)), "'z:a'"),
    (Specification(specific=(("z", ("a",)), ("z", None))), "'z:a'"),
  ],
)
def test_duplicate_parameter_names(tmp_path, spec, name):
  path = write(tmp_path, SMALL)
  raises(lambda: read(path, spec), str(path), "duplicate", name)


def test_asc_name_clashing_with_column(tmp_path):
  path = write(tmp_path, "id,alt,ch,ASC_a\n1,a,1,1\n1,b,0,2\n")
  raises(lambda: read(path, Specification(features=("ASC_a",), asc=True)), "duplicate", "'ASC_a'")


def test_empty_specification(tmp_path):
  path = write(tmp_path, SMALL)
  raises(lambda: read(path, Specification()), str(path), "no parameters")


def test_asc_of_never_available_alternative(tmp_path):
  text = SMALL.replace("1,a,1,1.5,10,1", "1,a,0,1.5,10,0").replace("1,b,0", "1,b,1")
  text = text.replace("2,a,0,4.0,20,1", "2,a,0,4.0,20,0")
  path = write(tmp_path, text)
  raises(lambda: read(path, Specification(asc=True), avail="av"), str(path), "'ASC_a'", "zero")


def test_all_zero_feature_column(tmp_path):
  path = write(tmp_path, "id,alt,ch,x,w\n1,a,1,1,0\n1,b,0,2,0.0\n2,a,0,3,0\n2,b,1,4,-0\n")
  raises(lambda: read(path, Specification(features=("x", "w"))), str(path), "'w'", "zero")


def test_specific_zero_on_its_rows(tmp_path):
  path = write(tmp_path, "id,alt,ch,h\n1,a,1,0\n1,b,0,5\n2,a,0,0\n2,b,1,5\n")
  raises(lambda: read(path, Specification(specific=(("h", ("a",)),))), "'h:a'", "zero")


def test_data_error_is_value_error_and_one_line():
  assert issubclass(DataError, ValueError)
  assert str(DataError("a\nb\r\nc")) == "a b c"
