"""Figures rendered from stored tables (no recomputation)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .. import storage  # noqa: E402


def confusion_heatmap(table: pd.DataFrame, title: str, path: Path) -> Path:
    """Row-normalised confusion matrix in percent (rows true, columns predicted) as a PNG."""
    values = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * values.shape[1], 0.8 + 0.7 * values.shape[0]))
    image = ax.imshow(np.nan_to_num(values), cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(values.shape[1]), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(values.shape[0]), table.index)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if value > 60 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="% of true class")
    return _save(fig, path)


def recall_bars(confusions: dict[str, pd.DataFrame], title: str, path: Path) -> Path:
    """Per-emotion recall (the diagonals of the row-normalised confusions), one bar per generator."""
    if not confusions:
        raise ValueError("recall_bars: no confusion tables given")
    emotions = list(next(iter(confusions.values())).index)
    for generator, table in confusions.items():
        if list(table.index) != emotions or list(table.columns) != emotions:
            raise ValueError(f"recall_bars: confusion of {generator!r} has other labels than {emotions}")
    width = 0.8 / len(confusions)
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(emotions), 3.6))
    for k, (generator, table) in enumerate(confusions.items()):
        recall = np.diag(table.to_numpy(dtype=float))
        ax.bar(np.arange(len(emotions)) + (k - (len(confusions) - 1) / 2) * width, np.nan_to_num(recall),
               width=width, label=generator)
    ax.set_xticks(range(len(emotions)), emotions)
    ax.set_ylim(0, 100)
    ax.set_ylabel("recall (% of true class)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncols=min(len(confusions), 6), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    return _save(fig, path)


def ratio_curve(curve: pd.DataFrame, title: str, path: Path) -> Path:
    """UA vs synthetic ratio per generator (left; `none` as the ratio-0 line) and the paired ΔUA with its 95 %
    CI (right), on a log2 ratio axis; one figure per arm is the caller's choice (``curve``: one arm's rows)."""
    own = curve[curve["generator"] != "none"]
    baseline = curve[curve["generator"] == "none"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    n_generators = own["generator"].nunique()
    for k, (generator, part) in enumerate(own.groupby("generator", sort=False)):
        # a small horizontal dodge (on the log axis) so that overlapping error bars stay readable
        x = part["synthetic_ratio"].to_numpy(dtype=float) * 2 ** (0.04 * (k - (n_generators - 1) / 2))
        line = left.errorbar(x, 100 * part["ua_fold_mean"], yerr=100 * part["ua_fold_std"].fillna(0), marker="o",
                             capsize=3, label=generator)
        color = line[0].get_color()
        diff = 100 * part["ua_paired_diff"].to_numpy(dtype=float)
        low, high = 100 * part["ua_ci_low"].to_numpy(dtype=float), 100 * part["ua_ci_high"].to_numpy(dtype=float)
        right.errorbar(x, diff, yerr=[np.nan_to_num(diff - low), np.nan_to_num(high - diff)], marker="o", capsize=3,
                       color=color, label=generator)
    if not baseline.empty:
        level = 100 * float(baseline["ua_fold_mean"].iloc[0])
        left.axhline(level, color="black", linestyle="--", linewidth=1, label="none (ratio 0)")
    right.axhline(0, color="black", linestyle="--", linewidth=1)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("synthetic rows per real training row")
        ratios = sorted(set(own["synthetic_ratio"]))
        ax.set_xticks(ratios, [f"{r:g}" for r in ratios])
    left.set_ylabel("UA % (mean ± std over cells)")
    right.set_ylabel("paired ΔUA vs none, pp (95 % CI)")
    left.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    return storage.save_figure(fig, path, dpi=110)
