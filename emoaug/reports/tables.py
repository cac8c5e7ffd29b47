"""Paper-style tables from tidy result frames (Markdown, CSV, LaTeX)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from tabulate import tabulate

METRIC_TITLES = {
    "wa": "WA %",
    "ua": "UA %",
    "macro_f1": "macro-F1 %",
    "weighted_f1": "weighted-F1 %",
    "macro_precision": "macro-P %",
    "macro_recall": "macro-R %",
}

SPLIT_DESCRIPTIONS = {
    "kfold": "speaker-independent grouped stratified {n_folds}-fold (no speaker in both train and test)",
    "loso": "speaker-independent leave-one-speaker-out",
    "paper": "SPEAKER-DEPENDENT random 8:2 split as in the paper (test speakers also seen in training)",
}


def definitions_note(labels: Sequence[str], split: str, n_folds: int, n_seeds: int) -> str:
    """The sentence every table carries: what WA and UA mean and how the split was made."""
    split_text = SPLIT_DESCRIPTIONS.get(split, split).format(n_folds=n_folds)
    return (
        "WA = overall accuracy (weighted accuracy); UA = unweighted mean of per-class recall over the "
        f"label set [{', '.join(labels)}]. Cells: pooled over all test folds (fold mean ± std over "
        f"{n_folds} fold(s) x {n_seeds} seed(s)). Split: {split_text}."
    )


def _cell(row: pd.Series) -> str:
    pooled = 100 * row["pooled"]
    if pd.isna(row["fold_std"]):
        return f"{pooled:.1f}"
    return f"{pooled:.1f} ({100 * row['fold_mean']:.1f} ± {100 * row['fold_std']:.1f})"


def generator_table(summary: pd.DataFrame, metrics: Sequence[str] = ("wa", "ua", "macro_f1")) -> pd.DataFrame:
    """Wide table: one row per generator, one column per metric, in the order generators were run."""
    order = list(dict.fromkeys(summary["generator"]))
    picked = summary[summary["metric"].isin(metrics)].copy()
    picked["text"] = picked.apply(_cell, axis=1)
    wide = picked.pivot(index="generator", columns="metric", values="text").reindex(order)
    wide = wide[[m for m in metrics if m in wide.columns]].rename(columns=METRIC_TITLES)
    return wide.reset_index()


def to_markdown(table: pd.DataFrame, title: str, note: str) -> str:
    body = tabulate(table, headers="keys", tablefmt="github", showindex=False)
    return f"### {title}\n\n{body}\n\n{note}\n"


def to_text(table: pd.DataFrame, title: str, note: str) -> str:
    body = tabulate(table, headers="keys", tablefmt="simple", showindex=False)
    return f"{title}\n{body}\n{note}\n"


def to_latex(table: pd.DataFrame, title: str, note: str) -> str:
    body = tabulate(table, headers="keys", tablefmt="latex_booktabs", showindex=False)
    return f"% {title}\n% {note}\n{body}\n"
