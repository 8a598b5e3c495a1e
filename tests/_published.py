"""The published conditional logit for the embedded TravelMode data, and how to compare with it.

Stata ``clogit`` (Indiana University's tutorial on categorical dependent variable models;
Greene's travel-mode example), kept as the printed strings so that each figure's rounding is
known. Shared by the CLI and inference tests (``tests/conftest.py`` puts this folder on the path).
"""

PUBLISHED_LL = "-199.12837"
PUBLISHED = {  # name: (coefficient, std. err.)
    "ASC_air": ("5.207443", "0.7790551"),
    "ASC_train": ("3.869043", "0.4431269"),
    "ASC_bus": ("3.163194", "0.4502659"),
    "gc": ("-0.0155015", "0.004408"),
    "ttme": ("-0.0961248", "0.0104398"),
    "hinc:air": ("0.013287", "0.0102624"),
}


def half_unit(printed: str) -> float:
  """Half a unit in the last printed digit: the most a correctly rounded figure can be off."""
  decimals = len(printed.split(".")[1]) if "." in printed else 0
  return 0.5 * 10.0 ** (-decimals)


def assert_published(got: float, printed: str, what: str) -> None:
  """``got`` agrees with a published figure within 1e-5 relative, or within its rounding.

  The tolerance is max(1e-5·|x|, half a unit of the last printed digit) (+1e-12 for float
  noise). For the 7-significant-digit figures (5.207443, 0.7790551, 3.869043, 0.4431269,
  3.163194, 0.4502659, -199.12837) half a unit is below 1e-5 relative, so 1e-5 relative
  decides. The rounding decides only where the printout has too few digits for 1e-5:
    * hinc:air 0.013287 (5 significant digits): half a unit 5e-7 is 3.8e-5 relative;
    * gc std. err. 0.004408 (4 significant digits): 5e-7 is 1.1e-4 relative.
  gc -0.0155015 (5e-8 = 3.2e-6 rel), ttme -0.0961248 (5.2e-7 rel), 0.0104398 (4.8e-6 rel) and
  0.0102624 (4.9e-6 rel) are printed finely enough for 1e-5 relative.
  """
  want = float(printed)
  tol = max(1e-5 * abs(want), half_unit(printed)) + 1e-12
  assert abs(got - want) <= tol, f"{what}: got {got!r}, published {printed} (tol {tol:.2g})"
