"""Paired statistics for "generator vs baseline" on the same folds and seeds.

Every comparison is paired: the unit is one (seed, fold) cell, for which both the generator's classifier
and the baseline's (``none``) were trained on the same real training rows and tested on the same held-out
speakers. For the per-cell differences ``d = metric(generator) - metric(baseline)`` we report

* the mean difference and a percentile bootstrap confidence interval (resampling cells with replacement,
  seeded, so the interval is reproducible);
* a two-sided p-value: Wilcoxon signed-rank (default; exact for small samples, as scipy chooses) or the
  paired t-test;
* Holm's step-down correction across all generators compared in one table (family-wise error).

With 5 folds x 1 seed the smallest two-sided exact Wilcoxon p-value is 2 / 2**5 = 0.0625: a quick run can
show a consistent direction but never "significance" at 0.05; that needs more folds or seeds.

Functions only compute; nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

TESTS = ("wilcoxon", "ttest")


def bootstrap_mean_ci(differences: Sequence[float], *, confidence: float = 0.95, n_boot: int = 10_000,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences`` (NaN, NaN for fewer than 2 values)."""
    d = np.asarray(differences, dtype=np.float64)
    if not 0 < confidence < 1:
        raise ValueError(f"bootstrap_mean_ci: confidence must be in (0, 1), got {confidence}")
    if d.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_p_value(differences: Sequence[float], test: str = "wilcoxon") -> float:
    """Two-sided p-value that the paired differences are centred on zero (NaN below 2 pairs).

    All-zero differences give 1.0 (no evidence of any change) where scipy would refuse or return NaN.
    """
    if test not in TESTS:
        raise ValueError(f"paired_p_value: test must be one of {TESTS}, got {test!r}")
    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        return math.nan
    if np.allclose(d, 0.0, atol=1e-12):
        return 1.0
    if test == "ttest":
        if np.allclose(d, d[0], atol=1e-12):  # constant non-zero shift: zero variance, t is infinite
            return 0.0
        return float(scipy_stats.ttest_1samp(d, 0.0).pvalue)
    return float(scipy_stats.wilcoxon(d, alternative="two-sided").pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (same order as given; NaNs stay NaN and do not count in the family)."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))  # step-down: never below an earlier one
        adjusted[index] = running
    return adjusted


def paired_comparison(values: pd.DataFrame, baseline: str, *, metric: str, test: str = "wilcoxon",
                      confidence: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Compare every generator with ``baseline`` on ``metric``, paired by (seed, fold).

    ``values``: tidy rows ``generator, seed, fold, metric, value`` (the runner's ``fold_metrics``). Only
    cells present for both the generator and the baseline are paired. Returns one row per generator
    (baseline excluded): ``generator, metric, n_pairs, mean_diff, ci_low, ci_high, p_value, p_holm,
    test, confidence``; differences are in the metric's own unit (fractions for WA/UA).
    """
    picked = values[values["metric"] == metric]
    wide = picked.pivot_table(index=["seed", "fold"], columns="generator", values="value", aggfunc="first")
    if baseline not in wide.columns:
        raise ValueError(f"paired_comparison: baseline {baseline!r} has no {metric!r} values")
    rows = []
    for generator in dict.fromkeys(picked["generator"]):
        if generator == baseline:
            continue
        pair = wide[[generator, baseline]].dropna()
        d = (pair[generator] - pair[baseline]).to_numpy()
        low, high = bootstrap_mean_ci(d, confidence=confidence, n_boot=n_boot, seed=seed)
        rows.append({"generator": generator, "metric": metric, "n_pairs": int(d.size),
                     "mean_diff": float(d.mean()) if d.size else math.nan, "ci_low": low, "ci_high": high,
                     "p_value": paired_p_value(d, test), "test": test, "confidence": confidence})
    frame = pd.DataFrame(rows, columns=["generator", "metric", "n_pairs", "mean_diff", "ci_low", "ci_high",
                                        "p_value", "test", "confidence"])
    frame.insert(frame.columns.get_loc("p_value") + 1, "p_holm", holm(frame["p_value"].to_numpy()))
    return frame
