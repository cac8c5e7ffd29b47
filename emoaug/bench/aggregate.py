"""One row per generator: classification results, generated-set quality and cost, side by side.

Aggregation only (means over cells of values computed elsewhere); renderers read this frame as is.
"""

from __future__ import annotations

import pandas as pd

QUALITY_MEASURES = ("mad", "fd", "fd_real", "judge_wa", "judge_ua", "nn_ratio_emb", "copy_fraction_emb",
                    "diversity_mel")
CLASSIFICATION_METRICS = ("wa", "ua", "macro_f1", "weighted_f1")
BASELINE = "none"


def generator_summary(summary: pd.DataFrame, quality: pd.DataFrame, timings: pd.DataFrame) -> pd.DataFrame:
    order = list(dict.fromkeys(summary["generator"]))
    picked = summary[summary["metric"].isin(CLASSIFICATION_METRICS)]
    wide = picked.pivot(index="generator", columns="metric", values=["pooled", "fold_mean", "fold_std"])
    wide.columns = [metric if stat == "pooled" else f"{metric}_{stat}" for stat, metric in wide.columns]
    frame = wide.reindex(order)
    if BASELINE in frame.index:
        for metric in ("wa", "ua", "macro_f1"):
            frame[f"delta_{metric}_vs_{BASELINE}"] = frame[metric] - frame.loc[BASELINE, metric]
    overall = quality[(quality["emotion"] == "overall") & quality["measure"].isin(QUALITY_MEASURES)]
    if not overall.empty:
        means = overall.groupby(["generator", "measure"])["value"].mean().unstack("measure")
        frame = frame.join(means[[m for m in QUALITY_MEASURES if m in means.columns]])
    cost = timings.groupby("generator")[["generator_fit_s", "generate_s", "classifier_s", "n_synthetic_rows"]].mean()
    frame = frame.join(cost)
    frame["items_per_s"] = frame["n_synthetic_rows"] / frame["generate_s"].where(frame["generate_s"] > 0)
    return frame.reset_index(names="generator")
