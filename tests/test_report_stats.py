"""The t quantile and the 95 % interval of the report, against published table values."""

import math

import pytest

from rir.report.stats import summarize, t_cdf, t_quantile


@pytest.mark.parametrize(
    "df, expected",
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (5, 2.5706), (9, 2.2622), (10, 2.2281),
     (30, 2.0423), (120, 1.9799), (1e7, 1.9600)],
)
def test_t_quantile_975_matches_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)


def test_t_quantile_other_levels_and_symmetry():
    assert t_quantile(0.95, 4) == pytest.approx(2.1318, abs=5e-4)
    assert t_quantile(0.995, 2) == pytest.approx(9.9248, abs=5e-4)
    assert t_quantile(0.025, 3) == pytest.approx(-t_quantile(0.975, 3))
    assert t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-9)
    assert t_cdf(t_quantile(0.9, 6), 6) == pytest.approx(0.9, abs=1e-9)


def test_t_quantile_refuses_bad_arguments():
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError):
        t_quantile(0.9, 0)


def test_summarize_three_seeds():
    s = summarize([93.0, 94.0, 95.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(94.0) and s["std"] == pytest.approx(1.0)
    assert (s["min"], s["max"]) == (93.0, 95.0)
    half = 4.302653 / math.sqrt(3)
    assert s["half_width"] == pytest.approx(half, rel=1e-5)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((94.0 - half, 94.0 + half), rel=1e-6)


def test_summarize_one_and_no_value():
    one = summarize([91.5])
    assert one["n"] == 1 and one["mean"] == 91.5 and one["std"] is None and one["half_width"] is None
    none = summarize([])
    assert none["n"] == 0 and none["mean"] is None
