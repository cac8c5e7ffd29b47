"""Paired statistics against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from emoaug.stats import (bootstrap_mean_ci, detectable_effect, holm, minimum_detectable_effect, paired_comparison,
                          paired_p_value, smallest_wilcoxon_p)

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


# ------------------------------------------------------------------------------ minimum detectable effect
def rejection_rate(effect: float, sd: float, n: int, *, alpha: float = 0.05, replicates: int = 4_000,
                   seed: int = 0, test: str = "ttest") -> float:
    """How often the paired test rejects at ``alpha`` when the true mean difference is ``effect``: simulated
    normal differences, tested by scipy (not by emoaug)."""
    d = np.random.default_rng(seed).normal(effect, sd, size=(replicates, n))
    p = (scipy_stats.ttest_1samp(d, 0.0, axis=1) if test == "ttest" else scipy_stats.wilcoxon(d, axis=1)).pvalue
    return float((p < alpha).mean())


@pytest.mark.parametrize("n", [5, 15])
def test_the_mde_is_detected_with_80_percent_power_in_simulation(n):
    sd = 0.025  # 2.5 pp of UA
    mde = minimum_detectable_effect(sd, n)
    # 4,000 replicates: the rate's standard error is 0.006, so +-0.03 is ~5 standard errors
    assert rejection_rate(mde, sd, n, seed=n) == pytest.approx(0.80, abs=0.03)
    # and it is the smallest such effect: three quarters of it is detected clearly less often
    assert rejection_rate(0.75 * mde, sd, n, seed=n + 1) < 0.70


def test_the_mde_follows_alpha_and_power():
    sd, n = 0.04, 15
    mde = minimum_detectable_effect(sd, n, alpha=0.01, power=0.90)
    assert mde > minimum_detectable_effect(sd, n)  # stricter alpha, more power: a larger effect is needed
    assert rejection_rate(mde, sd, n, alpha=0.01, seed=7) == pytest.approx(0.90, abs=0.03)


def test_the_mde_approaches_the_normal_approximation_for_many_pairs():
    sd, n = 0.03, 400
    normal = (scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.80)) * sd / math.sqrt(n)
    assert minimum_detectable_effect(sd, n) == pytest.approx(normal, rel=0.01)
    # at 5 pairs the t distribution's heavy tails make it much larger than the normal formula says
    normal_at_5 = normal * math.sqrt(n / 5)
    assert minimum_detectable_effect(sd, 5) > 1.2 * normal_at_5


def test_mde_edge_cases():
    assert math.isnan(minimum_detectable_effect(0.03, 1)) and math.isnan(minimum_detectable_effect(0.03, 0))
    assert math.isnan(minimum_detectable_effect(math.nan, 10)) and math.isnan(minimum_detectable_effect(math.inf, 10))
    assert minimum_detectable_effect(0.0, 5) == 0.0
    assert minimum_detectable_effect(0.03, 2) > minimum_detectable_effect(0.03, 3) > 0  # finite even at 2 pairs
    with pytest.raises(ValueError, match="alpha and power"):
        minimum_detectable_effect(0.03, 10, alpha=1.5)


@pytest.mark.parametrize("n", range(2, 9))
def test_smallest_wilcoxon_p_is_what_scipy_gives_when_every_difference_has_one_sign(n):
    assert smallest_wilcoxon_p(n) == pytest.approx(scipy_stats.wilcoxon(np.arange(1, n + 1) / 100).pvalue)


def test_with_five_pairs_wilcoxon_can_rule_nothing_out_but_the_t_test_can():
    d = GEN[:5] - BASE[:5]
    assert detectable_effect(d, "wilcoxon") == math.inf  # p >= 0.0625 whatever the effect
    assert detectable_effect(d, "ttest") == pytest.approx(minimum_detectable_effect(d.std(ddof=1), 5))
    assert math.isfinite(detectable_effect(GEN[:6] - BASE[:6], "wilcoxon"))  # 6 pairs: p can reach 0.031
    assert detectable_effect(d, "wilcoxon", alpha=0.1) < math.inf
    assert math.isnan(detectable_effect([0.02], "ttest"))


def test_wilcoxon_has_a_little_less_power_than_the_t_test_at_its_mde():
    # what the docstring and README say: at 15 pairs of normal differences about 0.77 instead of 0.80
    sd, n = 0.025, 15
    rate = rejection_rate(minimum_detectable_effect(sd, n), sd, n, seed=3, test="wilcoxon")
    assert 0.72 < rate < 0.80


def test_paired_comparison_carries_the_mde_with_its_alpha_and_power():
    table = paired_comparison(fold_metrics(), "none", metric="ua").set_index("generator")
    vae, d = table.loc["vae"], GEN - BASE
    assert vae["sd_diff"] == pytest.approx(d.std(ddof=1))
    assert vae["mde"] == pytest.approx(minimum_detectable_effect(d.std(ddof=1), len(d)))  # 7 pairs: reachable
    assert (vae["alpha"], vae["power"]) == (0.05, 0.80)
    assert table.loc["copy", "mde"] == 0.0  # identical to the baseline in every cell: no noise
    strict = paired_comparison(fold_metrics(), "none", metric="ua", alpha=0.01, power=0.9).set_index("generator")
    assert strict.loc["vae", "mde"] > vae["mde"] and strict.loc["vae", "alpha"] == 0.01
