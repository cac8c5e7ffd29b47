"""The synthetic-ratio curve: how a generator's UA moves with the amount of synthetic data it adds.

``--synthetic-ratio 0.25,0.5,1,2,4`` plans one cell per (fold, seed, generator, ratio) (:mod:`emoaug.bench.plan`);
the point at the tables' ratio is the table cell itself, and ratio 0 is ``none``, the real-only classifier of
the same (fold, seed). Each point is paired with ``none`` on the same (seed, fold) cells, and Holm's correction
runs over every (generator, ratio) point of an arm: reading a curve is looking at all of them at once.

Aggregation only, from the cells' predictions; renderers read the frames written here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stats
from .aggregate import BASELINE, REFERENCE_ARM, fold_level_metrics
from .arms import CROSS, MAIN

#: the arms a curve is drawn for (the others -- synthetic-only, clarity -- do not depend on the ratio's meaning
#: of "rows added to real training data", so curve cells do not compute them)
CURVE_ARMS = (MAIN, CROSS)
CURVE_COLUMNS = ["generator", "arm", "synthetic_ratio", "n_synthetic_rows", "n_cells", "ua_fold_mean",
                 "ua_fold_std", "wa_fold_mean", "ua_paired_diff", "ua_ci_low", "ua_ci_high", "ua_p", "ua_p_holm",
                 "ua_pairs", "ua_mde"]


def curve_fold_metrics(fold_metrics: pd.DataFrame, timings: pd.DataFrame, table_ratio: float,
                       curve_cells: list[tuple[float, object]], labels: tuple[str, ...]) -> pd.DataFrame:
    """Tidy ``generator, arm, synthetic_ratio, seed, fold, metric, value, n_synthetic_rows`` rows of every point:
    the table cells at ``table_ratio`` (``none`` at 0) from the run's ``fold_metrics``/``timings``, and
    ``curve_cells`` (ratio, CellResult) of the other ratios."""
    table = fold_metrics[fold_metrics["arm"].isin(CURVE_ARMS)].copy()
    rows = timings.set_index(["generator", "seed", "fold"])["n_synthetic_rows"]
    table["synthetic_ratio"] = np.where(table["generator"] == BASELINE, 0.0, table_ratio)
    table["n_synthetic_rows"] = [rows.get((g, s, f), 0) for g, s, f in
                                 zip(table["generator"], table["seed"], table["fold"])]
    parts = [table]
    for ratio, cell in curve_cells:
        predictions = cell.predictions[cell.predictions["arm"].isin(CURVE_ARMS)]
        part = fold_level_metrics(predictions, labels)
        part["synthetic_ratio"] = ratio
        part["n_synthetic_rows"] = cell.meta["n_synthetic_rows"]
        parts.append(part)
    columns = ["generator", "arm", "synthetic_ratio", "seed", "fold", "metric", "value", "n_synthetic_rows"]
    frame = pd.concat(parts, ignore_index=True)[columns]
    # generators in the run's order, each one's ratios ascending
    order = {name: k for k, name in enumerate(dict.fromkeys(frame["generator"]))}
    rank = frame["generator"].map(order)
    return (frame.assign(_rank=rank).sort_values(["_rank", "synthetic_ratio", "seed", "fold"], kind="stable")
            .drop(columns="_rank").reset_index(drop=True))


def ratio_curve(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (generator, arm, ratio), ``none`` first at ratio 0: UA and WA over (seed, fold) cells and
    the paired UA difference with ``none`` (bootstrap CI, Wilcoxon p, Holm over the arm's whole curve, and the
    minimum detectable effect ``ua_mde`` at 80 % power and alpha 0.05, before Holm)."""
    rows = []
    for arm in dict.fromkeys(points["arm"]):
        reference = points[(points["generator"] == BASELINE) & (points["arm"] == REFERENCE_ARM.get(arm, MAIN))]
        own = points[(points["arm"] == arm) & (points["generator"] != BASELINE)]
        if reference.empty or own.empty:  # e.g. --gen none: no generator adds rows, so there is no curve
            continue
        arm_rows = [summary_row(reference, BASELINE, arm, 0.0)]
        for (generator, ratio), part in own.groupby(["generator", "synthetic_ratio"], sort=False):
            row = summary_row(part, generator, arm, ratio)
            paired = stats.paired_comparison(pd.concat([reference, part]), BASELINE, metric="ua").iloc[0]
            row.update({"ua_paired_diff": paired["mean_diff"], "ua_ci_low": paired["ci_low"],
                        "ua_ci_high": paired["ci_high"], "ua_p": paired["p_value"], "ua_pairs": paired["n_pairs"],
                        "ua_mde": paired["mde"]})
            arm_rows.append(row)
        frame = pd.DataFrame(arm_rows, columns=CURVE_COLUMNS)
        frame["ua_p_holm"] = stats.holm(frame["ua_p"].to_numpy(dtype=float))
        rows.append(frame)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=CURVE_COLUMNS)


def summary_row(part: pd.DataFrame, generator: str, arm: str, ratio: float) -> dict:
    cells = part.loc[part["metric"] == "ua"]  # one row per (seed, fold) cell
    ua, wa = cells["value"], part.loc[part["metric"] == "wa", "value"]
    return {"generator": generator, "arm": arm, "synthetic_ratio": float(ratio),
            "n_synthetic_rows": float(cells["n_synthetic_rows"].mean()), "n_cells": int(len(cells)),
            "ua_fold_mean": float(ua.mean()), "ua_fold_std": float(ua.std(ddof=1)) if len(ua) > 1 else np.nan,
            "wa_fold_mean": float(wa.mean())}
