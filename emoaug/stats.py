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

What a non-significant comparison rules out: each row also carries the minimum detectable effect (MDE), the
smallest true mean difference that the paired t-test would call significant at ``alpha`` with probability
``power``, for the observed standard deviation of the differences and the number of pairs
(:func:`minimum_detectable_effect`). "No significant difference" with an MDE of 3 pp rules out true effects
larger than about 3 pp (at that power), not effects in general.

Functions only compute; nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats
from scipy.optimize import brentq

TESTS = ("wilcoxon", "ttest")
#: the significance level and power every comparison's MDE is given for (no run option changes them)
DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.80


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


def paired_t_power(effect_size: float, n: int, *, alpha: float = DEFAULT_ALPHA) -> float:
    """Power of the two-sided one-sample (paired) t-test with ``n`` pairs when the true mean difference is
    ``effect_size`` standard deviations: both tails of the noncentral t beyond the critical value."""
    df = n - 1
    critical = scipy_stats.t.ppf(1 - alpha / 2, df)
    noncentrality = effect_size * math.sqrt(n)
    # the lower tail as sf(., -nc): scipy's nct.cdf returns NaN far in the tail for large nc
    return float(scipy_stats.nct.sf(critical, df, noncentrality) + scipy_stats.nct.sf(critical, df, -noncentrality))


def minimum_detectable_effect(sd: float, n: int, *, alpha: float = DEFAULT_ALPHA,
                              power: float = DEFAULT_POWER) -> float:
    """Smallest true mean difference that the two-sided paired t-test on ``n`` pairs detects at ``alpha`` with
    probability ``power``, when the differences have standard deviation ``sd`` (same unit as ``sd``).

    Solved exactly with the noncentral t distribution, not the normal approximation
    ``(z_{1-alpha/2} + z_power) * sd / sqrt(n)``, which is 25 % too small at 5 pairs. NaN for fewer than 2
    pairs or a non-finite ``sd``; 0 for ``sd == 0`` (a constant shift has no noise to hide in).

    It is given for the t-test, although the tables' p-values are Wilcoxon's, because the t-test's power has
    this closed form while Wilcoxon's depends on the shape of the differences; for normal differences
    Wilcoxon's asymptotic relative efficiency is 3/pi ~ 0.955, so from about 10 pairs on its power at this
    effect is a few points lower (about 0.77 instead of 0.80 at 10 to 15 pairs, simulated). Below that the
    exact Wilcoxon test is coarser still (about 0.63 at 6 pairs), and with 5 or fewer pairs it cannot reach
    0.05 at all (:func:`detectable_effect` says so).
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"minimum_detectable_effect: alpha and power must be in (0, 1), got {alpha}, {power}")
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    if power <= alpha:  # a zero effect is already "detected" with probability alpha
        return 0.0
    upper = 1.0
    while paired_t_power(upper, n, alpha=alpha) < power:  # bracket the root (power rises with the effect)
        upper *= 2
    effect_size = brentq(lambda e: paired_t_power(e, n, alpha=alpha) - power, 0.0, upper, xtol=1e-10)
    return float(effect_size * abs(sd))


def smallest_wilcoxon_p(n: int) -> float:
    """Smallest two-sided p-value of the exact Wilcoxon signed-rank test on ``n`` non-zero differences: every
    difference on the same side, probability 2 / 2**n under the null (scipy computes small samples exactly)."""
    return min(1.0, 2.0 / 2.0**n) if n >= 1 else 1.0


def detectable_effect(differences: Sequence[float], test: str = "wilcoxon", *, alpha: float = DEFAULT_ALPHA,
                      power: float = DEFAULT_POWER) -> float:
    """The MDE of one comparison: :func:`minimum_detectable_effect` of the differences' sample standard
    deviation, or infinity when ``test`` is Wilcoxon and its smallest possible p-value with this many pairs is
    above ``alpha`` -- then no effect, however large, can be significant, and a non-significant result rules
    nothing out (5 folds x 1 seed at alpha 0.05)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        return math.nan
    if test == "wilcoxon" and smallest_wilcoxon_p(d.size) > alpha:
        return math.inf
    return minimum_detectable_effect(float(d.std(ddof=1)), int(d.size), alpha=alpha, power=power)


def paired_comparison(values: pd.DataFrame, baseline: str, *, metric: str, test: str = "wilcoxon",
                      confidence: float = 0.95, n_boot: int = 10_000, seed: int = 0, alpha: float = DEFAULT_ALPHA,
                      power: float = DEFAULT_POWER) -> pd.DataFrame:
    """Compare every generator with ``baseline`` on ``metric``, paired by (seed, fold).

    ``values``: tidy rows ``generator, seed, fold, metric, value`` (the runner's ``fold_metrics``). Only
    cells present for both the generator and the baseline are paired. Returns one row per generator
    (baseline excluded): ``generator, metric, n_pairs, mean_diff, ci_low, ci_high, p_value, p_holm,
    sd_diff, mde, test, confidence, alpha, power``; differences, their standard deviation and the MDE
    (:func:`detectable_effect`, at ``alpha`` before Holm's correction) are in the metric's own unit
    (fractions for WA/UA).
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
                     "p_value": paired_p_value(d, test),
                     "sd_diff": float(d.std(ddof=1)) if d.size > 1 else math.nan,
                     "mde": detectable_effect(d, test, alpha=alpha, power=power), "test": test,
                     "confidence": confidence, "alpha": alpha, "power": power})
    frame = pd.DataFrame(rows, columns=["generator", "metric", "n_pairs", "mean_diff", "ci_low", "ci_high",
                                        "p_value", "sd_diff", "mde", "test", "confidence", "alpha", "power"])
    frame.insert(frame.columns.get_loc("p_value") + 1, "p_holm", holm(frame["p_value"].to_numpy()))
    return frame
