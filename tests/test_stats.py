"""Paired statistics against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from emoaug.stats import bootstrap_mean_ci, holm, paired_comparison, paired_p_value

GEN = np.array([0.61, 0.58, 0.66, 0.70, 0.52, 0.64, 0.59])
BASE = np.array([0.55, 0.57, 0.60, 0.71, 0.50, 0.58, 0.60])


def test_wilcoxon_p_value_matches_scipy_on_paired_data():
    expected = scipy_stats.wilcoxon(GEN, BASE, alternative="two-sided").pvalue
    assert paired_p_value(GEN - BASE, "wilcoxon") == pytest.approx(expected, rel=1e-12)


def test_paired_t_p_value_matches_scipy_ttest_rel():
    expected = scipy_stats.ttest_rel(GEN, BASE).pvalue
    assert paired_p_value(GEN - BASE, "ttest") == pytest.approx(expected, rel=1e-12)


def test_smallest_exact_wilcoxon_p_with_five_pairs_is_one_sixteenth():
    assert paired_p_value([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx(2 / 2**5)


def test_degenerate_differences():
    assert paired_p_value([0.0, 0.0, 0.0]) == 1.0
    assert paired_p_value([0.0, 0.0], "ttest") == 1.0
    assert paired_p_value([0.1, 0.1, 0.1], "ttest") == 0.0
    assert math.isnan(paired_p_value([0.3]))
    with pytest.raises(ValueError, match="test must be"):
        paired_p_value([0.1, 0.2], "sign")


def test_holm_by_hand_and_with_nan():
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    out = holm([0.02, math.nan, 0.5])  # the NaN is not part of the family of two
    np.testing.assert_allclose(out[[0, 2]], [0.04, 0.5])
    assert math.isnan(out[1])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])  # capped at 1


def test_bootstrap_interval_properties():
    assert bootstrap_mean_ci([0.02] * 6) == pytest.approx((0.02, 0.02))
    d = GEN - BASE
    low, high = bootstrap_mean_ci(d, seed=3)
    assert low < d.mean() < high
    assert bootstrap_mean_ci(d, seed=3) == (low, high)  # seeded: reproducible
    narrow = bootstrap_mean_ci(d, confidence=0.5, seed=3)
    assert low < narrow[0] < narrow[1] < high
    assert all(math.isnan(v) for v in bootstrap_mean_ci([0.1]))


def test_bootstrap_interval_agrees_with_the_normal_interval_for_a_large_sample():
    d = np.random.default_rng(0).normal(1.0, 1.0, size=400)
    low, high = bootstrap_mean_ci(d, n_boot=20_000, seed=1)
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert low == pytest.approx(d.mean() - half, abs=0.02)
    assert high == pytest.approx(d.mean() + half, abs=0.02)


def fold_metrics() -> pd.DataFrame:
    rows = []
    for k, (g, b) in enumerate(zip(GEN, BASE)):
        seed, fold = divmod(k, 4)
        rows += [{"generator": "none", "seed": seed, "fold": fold, "metric": "ua", "value": b},
                 {"generator": "vae", "seed": seed, "fold": fold, "metric": "ua", "value": g},
                 {"generator": "copy", "seed": seed, "fold": fold, "metric": "ua", "value": b},
                 {"generator": "vae", "seed": seed, "fold": fold, "metric": "wa", "value": 0.0}]
    # a cell the baseline never finished cannot be paired
    rows.append({"generator": "vae", "seed": 9, "fold": 0, "metric": "ua", "value": 1.0})
    return pd.DataFrame(rows)


def test_paired_comparison_pairs_cells_and_corrects_across_generators():
    table = paired_comparison(fold_metrics(), "none", metric="ua").set_index("generator")
    assert list(table.index) == ["vae", "copy"]
    vae = table.loc["vae"]
    assert vae["n_pairs"] == len(GEN)
    assert vae["mean_diff"] == pytest.approx((GEN - BASE).mean())
    assert vae["p_value"] == pytest.approx(scipy_stats.wilcoxon(GEN, BASE).pvalue)
    assert vae["ci_low"] < vae["mean_diff"] < vae["ci_high"]
    assert table.loc["copy", "mean_diff"] == 0 and table.loc["copy", "p_value"] == 1.0
    np.testing.assert_allclose(table["p_holm"], holm(table["p_value"]))
    with pytest.raises(ValueError, match="baseline"):
        paired_comparison(fold_metrics(), "specaugment", metric="ua")
