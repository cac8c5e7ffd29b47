"""Classification metrics for SER; pure functions that never print.

Conventions (the ones a SER reader expects):

* **WA** (weighted accuracy) = overall accuracy, correct / n.
* **UA** (unweighted accuracy) = the unweighted mean of per-class recall over the classes of
  ``labels`` that **occur in ``y_true``**. The label set is passed explicitly so a class that is
  predicted but absent from ``y_true`` still counts as a wrong prediction (it lowers the recall of
  the true class); a class absent from ``y_true`` has no recall and is left out of the mean instead
  of counting as 0, so a fold that happens to lack a class is not penalised for it.
* The ``macro_*`` metrics average over the same present classes, so ``macro_recall == ua``.
  A present class that is never predicted has precision 0 (not NaN).
* The ``weighted_*`` metrics weight each class by its support in ``y_true``.

Inputs may be label strings or class indices, as long as every value is an element of ``labels``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

METRIC_NAMES = (
    "wa",
    "ua",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_precision",
    "weighted_recall",
    "weighted_f1",
    "n",
)


def _as_indices(y_true: Sequence, y_pred: Sequence, labels: Sequence) -> tuple[np.ndarray, np.ndarray, list]:
    """Validate and map both label sequences to positions in ``labels`` (sklearn then sees plain ints)."""
    true, pred, labels = list(y_true), list(y_pred), list(labels)
    if len(true) != len(pred):
        raise ValueError(f"y_true and y_pred differ in length ({len(true)} vs {len(pred)})")
    if len(true) == 0:
        raise ValueError("metrics need at least one prediction")
    position = {label: i for i, label in enumerate(labels)}
    if len(position) != len(labels):
        raise ValueError(f"labels contain duplicates: {labels}")
    unknown = (set(true) | set(pred)) - set(position)
    if unknown:
        raise ValueError(f"values not in labels {labels}: {sorted(map(str, unknown))}")
    as_index = np.vectorize(position.__getitem__, otypes=[np.int64])
    return as_index(true), as_index(pred), labels


def classification_metrics(y_true: Sequence, y_pred: Sequence, labels: Sequence) -> dict[str, float]:
    """WA, UA, macro and weighted precision/recall/F1 (all in [0, 1]) and ``n`` (module docstring)."""
    true, pred, _ = _as_indices(y_true, y_pred, labels)
    present = np.unique(true)
    result: dict[str, float] = {"wa": float(np.mean(true == pred))}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            true, pred, labels=present, average=average, zero_division=0
        )
        result[f"{average}_precision"] = float(precision)
        result[f"{average}_recall"] = float(recall)
        result[f"{average}_f1"] = float(f1)
    result["ua"] = result["macro_recall"]
    result["n"] = float(len(true))
    return {name: result[name] for name in METRIC_NAMES}


def per_class_recall(y_true: Sequence, y_pred: Sequence, labels: Sequence) -> dict[str, float]:
    """Recall of each label, in ``labels`` order; NaN for a label absent from ``y_true``."""
    true, pred, labels = _as_indices(y_true, y_pred, labels)
    recalls = {}
    for index, label in enumerate(labels):
        is_true = true == index
        recalls[label] = float(np.mean(pred[is_true] == index)) if is_true.any() else float("nan")
    return recalls


def confusion_percent(y_true: Sequence, y_pred: Sequence, labels: Sequence) -> pd.DataFrame:
    """Rows = true label, columns = predicted label, each row in percent of that row's items.

    Rows of labels absent from ``y_true`` are NaN (there is nothing to normalise by).
    """
    true, pred, labels = _as_indices(y_true, y_pred, labels)
    counts = confusion_matrix(true, pred, labels=np.arange(len(labels))).astype(np.float64)
    row_totals = counts.sum(axis=1, keepdims=True)
    percent = np.full_like(counts, np.nan)
    np.divide(100.0 * counts, row_totals, out=percent, where=row_totals > 0)
    index = pd.Index(labels, name="true")
    columns = pd.Index(labels, name="predicted")
    return pd.DataFrame(percent, index=index, columns=columns)


def _metrics_frame(predictions: pd.DataFrame, labels: Sequence) -> pd.Series:
    return pd.Series(classification_metrics(predictions["y_true"], predictions["y_pred"], labels))


def _summarise_group(group: pd.DataFrame, labels: Sequence) -> pd.DataFrame:
    pooled = _metrics_frame(group, labels)
    per_run = pd.DataFrame([_metrics_frame(run, labels) for _, run in group.groupby(["fold", "seed"], sort=True)])
    n_runs = len(per_run)
    return pd.DataFrame(
        {
            "metric": list(METRIC_NAMES),
            "pooled": pooled[list(METRIC_NAMES)].to_numpy(),
            "fold_mean": per_run[list(METRIC_NAMES)].mean(axis=0).to_numpy(),
            # a single run has no spread; NaN says so instead of a misleading 0
            "fold_std": per_run[list(METRIC_NAMES)].std(axis=0, ddof=1).to_numpy()
            if n_runs > 1
            else np.full(len(METRIC_NAMES), np.nan),
            "n_folds": n_runs,
        }
    )


def summarise(predictions: pd.DataFrame, labels: Sequence, by: Sequence[str] = ("generator",)) -> pd.DataFrame:
    """Tidy metrics table: one row per (group of ``by``, metric).

    ``predictions`` has one row per test item and run, with columns ``fold``, ``seed``, ``y_true``,
    ``y_pred`` and the ``by`` columns. ``pooled`` is the metric over all rows of the group together
    (every fold and seed); ``fold_mean``/``fold_std`` (ddof=1, NaN for one run) summarise the metric
    computed separately per (fold, seed) run; ``n_folds`` counts those runs. ``n`` is reported
    like any other metric (rows pooled, mean rows per run).
    """
    by = list(by)
    missing = [c for c in [*by, "fold", "seed", "y_true", "y_pred"] if c not in predictions.columns]
    if missing:
        raise ValueError(f"summarise: predictions lack columns {missing}")
    if predictions.empty:
        raise ValueError("summarise: predictions are empty")
    if not by:
        return _summarise_group(predictions, labels)[["metric", "pooled", "fold_mean", "fold_std", "n_folds"]]
    parts = []
    for key, group in predictions.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        part = _summarise_group(group, labels)
        for column, value in zip(by, key):
            part[column] = value
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    return table[[*by, "metric", "pooled", "fold_mean", "fold_std", "n_folds"]]
