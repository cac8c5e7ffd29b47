"""One row per generator: classification results, generated-set quality and cost, side by side.

Aggregation only (means over cells of values computed elsewhere); renderers read this frame as is.
"""

from __future__ import annotations

import pandas as pd

from .. import metrics as metric_functions
from .. import stats
from .arms import CROSS, CROSS_SYNTHETIC_ONLY, MAIN

QUALITY_MEASURES = ("mad", "fd", "fd_real", "judge_wa", "judge_ua", "nn_ratio_emb", "copy_fraction_emb",
                    "diversity_mel")
CLASSIFICATION_METRICS = ("wa", "ua", "macro_f1", "weighted_f1")
BASELINE = "none"


def generator_summary(summary: pd.DataFrame, quality: pd.DataFrame, timings: pd.DataFrame,
                      fold_metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """``delta_<m>_vs_none``: pooled difference; with ``fold_metrics``, also the paired (seed, fold)
    comparison of UA with ``none`` (:func:`emoaug.stats.paired_comparison`): ``ua_paired_diff``,
    ``ua_ci_low``/``ua_ci_high`` (bootstrap 95 %), ``ua_p`` (Wilcoxon), ``ua_p_holm`` and ``ua_mde`` (the
    minimum detectable effect at 80 % power and alpha 0.05; infinite where Wilcoxon cannot reach alpha)."""
    order = list(dict.fromkeys(summary["generator"]))
    picked = summary[summary["metric"].isin(CLASSIFICATION_METRICS)]
    wide = picked.pivot(index="generator", columns="metric", values=["pooled", "fold_mean", "fold_std"])
    wide.columns = [metric if stat == "pooled" else f"{metric}_{stat}" for stat, metric in wide.columns]
    frame = wide.reindex(order)
    if BASELINE in frame.index:
        for metric in ("wa", "ua", "macro_f1"):
            frame[f"delta_{metric}_vs_{BASELINE}"] = frame[metric] - frame.loc[BASELINE, metric]
        if fold_metrics is not None and len(order) > 1:
            paired = stats.paired_comparison(fold_metrics, BASELINE, metric="ua").set_index("generator")
            columns = ["mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "n_pairs", "mde"]
            frame = frame.join(paired[columns].rename(
                columns={"mean_diff": "ua_paired_diff", "ci_low": "ua_ci_low", "ci_high": "ua_ci_high",
                         "p_value": "ua_p", "p_holm": "ua_p_holm", "n_pairs": "ua_pairs", "mde": "ua_mde"}))
    overall = quality[(quality["emotion"] == "overall") & quality["measure"].isin(QUALITY_MEASURES)]
    if not overall.empty:
        means = overall.groupby(["generator", "measure"])["value"].mean().unstack("measure")
        frame = frame.join(means[[m for m in QUALITY_MEASURES if m in means.columns]])
    cost = timings.groupby("generator")[["generator_fit_s", "generate_s", "classifier_s", "n_synthetic_rows"]].mean()
    frame = frame.join(cost)
    frame["items_per_s"] = frame["n_synthetic_rows"] / frame["generate_s"].where(frame["generate_s"] > 0)
    return frame.reset_index(names="generator")


#: the arm of ``none`` each arm is paired with: in-corpus arms with the real-only classifier on the same test
#: fold (for clarity arms that is the same judge on the original utterances), cross arms with its cross arm
REFERENCE_ARM = {CROSS: CROSS, CROSS_SYNTHETIC_ONLY: CROSS}
COMPARED_METRICS = ("ua", "wa")


def arm_comparisons(fold_metrics: pd.DataFrame, metrics: tuple[str, ...] = COMPARED_METRICS) -> pd.DataFrame:
    """Every (generator, arm) against ``none``'s reference arm, paired by (seed, fold)
    (:func:`emoaug.stats.paired_comparison`); Holm's correction runs across generators within each
    (arm, metric). Columns: ``generator, arm, reference_arm, metric, n_pairs, mean_diff, ci_low, ci_high,
    p_value, p_holm, sd_diff, mde, test, confidence, alpha, power``."""
    parts = []
    for arm in dict.fromkeys(fold_metrics["arm"]):
        reference_arm = REFERENCE_ARM.get(arm, MAIN)
        reference = fold_metrics[(fold_metrics["generator"] == BASELINE) & (fold_metrics["arm"] == reference_arm)]
        own = fold_metrics[(fold_metrics["generator"] != BASELINE) & (fold_metrics["arm"] == arm)]
        if reference.empty or own.empty:
            continue
        for metric in metrics:
            table = stats.paired_comparison(pd.concat([reference, own]), BASELINE, metric=metric)
            table.insert(1, "arm", arm)
            table.insert(2, "reference_arm", reference_arm)
            parts.append(table)
    columns = ["generator", "arm", "reference_arm", "metric", "n_pairs", "mean_diff", "ci_low", "ci_high", "p_value",
               "p_holm", "sd_diff", "mde", "test", "confidence", "alpha", "power"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def fold_level_metrics(predictions: pd.DataFrame, labels: tuple[str, ...]) -> pd.DataFrame:
    """One row per (generator, arm, seed, fold, metric) from per-item predictions."""
    rows = []
    keys = ["generator", "arm", "seed", "fold"]
    for (generator, arm, seed, fold), part in predictions.groupby(keys, sort=False):
        values = metric_functions.classification_metrics(part["y_true"], part["y_pred"], labels)
        rows += [{"generator": generator, "arm": arm, "seed": seed, "fold": fold, "metric": k, "value": v}
                 for k, v in values.items()]
    return pd.DataFrame(rows)
