"""Figures rendered from stored tables (no recomputation)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
