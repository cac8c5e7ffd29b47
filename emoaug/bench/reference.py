"""The classic real-only reference row (openSMILE functionals + SVM) on the run's own folds.

Computed in the driver: the functionals are cached per audio content like the log-mel features, and an SVM
per fold takes seconds. The SVM is deterministic, so each seed of a fold repeats the fold's predictions:
pairing with ``none`` then runs over the same (seed, fold) cells as every generator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..classifiers.classic import REFERENCE_NAME, ClassicSettings, predict_fold
from ..splits import Fold
from .arms import MAIN

log = logging.getLogger("emoaug")


def reference_predictions(folds: Sequence[Fold], items: pd.DataFrame, functionals: dict[str, np.ndarray],
                          labels: Sequence[str], settings: ClassicSettings, seeds: Sequence[int]) -> pd.DataFrame:
    """Rows like a cell's predictions (``generator`` = ``classic``, the main arm) for every (seed, fold)."""
    parts, chosen = [], []
    for fold in folds:
        predicted, picked = predict_fold(fold, items, functionals, labels, settings)
        chosen.append(f"fold {fold.index}: C={picked['c']:g} by {picked['chosen_by']} (UA there "
                      f"{100 * picked['val_ua']:.1f} %)")
        for seed in seeds:
            part = predicted.copy()
            part.insert(0, "generator", REFERENCE_NAME)
            part.insert(1, "arm", MAIN)
            part.insert(2, "seed", seed)
            part.insert(3, "fold", fold.index)
            parts.append(part)
    log.info("classic reference (%s): %s", settings.describe(), "; ".join(chosen))
    return pd.concat(parts, ignore_index=True)
