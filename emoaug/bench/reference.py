"""The classic real-only reference row (openSMILE functionals + SVM) on the run's own folds.

Each fold's reference is a unit of work like a cell: it has a content key (the fold's items, labels, speakers
and audio content, the label set, ``--speaker-norm``, the reference settings and the model the size rule picks,
the openSMILE and scikit-learn versions), it is computed by the run's executor beside the cells (a task on a
worker, not driver work after the last cell) and stored, so a re-run reuses it. The SVMs are deterministic,
so each seed of a fold repeats the fold's predictions: pairing with ``none`` then runs over the same
(seed, fold) cells as every generator.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..classifiers.classic import REFERENCE_NAME, ClassicSettings, fit_predict, fold_rows
from ..splits import Fold
from ..storage import CachedArrays, stable_hash
from .arms import MAIN
from .timings import peak_rss_mb

log = logging.getLogger("emoaug")

#: bump when what a stored reference fold holds, or how it is computed, changes
#: 2: the exact SVM reads a precomputed kernel (the same SVM; stored folds of format 1 are recomputed, not trusted)
REFERENCE_FORMAT = 2


@dataclass(frozen=True)
class ReferenceSpec:
    key: str
    fold: int
    model: str  # which SVM the size rule picks for this fold's training rows


@dataclass
class ReferenceInputs:
    """What one fold's reference needs, shipped to a worker: the fold, its items and their functionals -- as an
    index of cache files when the cache is on (the worker reads the rows itself, so neither the driver nor the
    task queue holds the fold's matrices), else the vectors themselves."""

    spec: ReferenceSpec
    labels: tuple[str, ...]
    settings: ClassicSettings
    fold: Fold
    items: pd.DataFrame  # item_id, emotion, speaker of the fold's items
    functionals: Mapping[str, np.ndarray]  # item_id -> vector (or a CachedArrays index)


@dataclass
class ReferenceResult:
    key: str
    fold: int
    predictions: pd.DataFrame  # item_id, y_true, y_pred of the fold's test items
    chosen: dict  # c, val_ua, chosen_by, model
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    computed: bool = True

    def to_dict(self) -> dict:
        return {"key": self.key, "fold": self.fold, "chosen": self.chosen, "wall_s": self.wall_s,
                "predictions": {column: self.predictions[column].astype(str).tolist()
                                for column in ("item_id", "y_true", "y_pred")}}

    @classmethod
    def from_dict(cls, data: Mapping) -> ReferenceResult:
        predictions = pd.DataFrame({column: list(map(str, data["predictions"][column]))
                                    for column in ("item_id", "y_true", "y_pred")})
        return cls(str(data["key"]), int(data["fold"]), predictions, dict(data["chosen"]),
                   float(data.get("wall_s", 0.0)), computed=False)


# ------------------------------------------------------------------------------------------------ plan
def reference_key(fold_content: dict, labels: Sequence[str], settings: ClassicSettings, model: str,
                  speaker_norm: bool) -> str:
    """``fold_content``: :func:`emoaug.bench.plan.fold_content` of the fold (items, audio content, labels and
    speakers of each partition)."""
    import opensmile
    import sklearn

    return stable_hash({"kind": "reference", "format": REFERENCE_FORMAT, "fold": fold_content,
                        "labels": list(labels), "speaker_norm": bool(speaker_norm), "settings": settings.to_dict(),
                        "model": model, "opensmile": opensmile.__version__, "sklearn": sklearn.__version__})


def plan_references(folds: Sequence[Fold], contents: Mapping[int, dict], labels: Sequence[str],
                    settings: ClassicSettings, speaker_norm: bool) -> list[ReferenceSpec]:
    """One spec per fold (``contents``: fold index -> its fold content)."""
    specs = []
    for fold in folds:
        model = settings.model_for(len(fold.train))
        specs.append(ReferenceSpec(reference_key(contents[fold.index], labels, settings, model, speaker_norm),
                                   fold.index, model))
    return specs


def reference_inputs(spec: ReferenceSpec, fold: Fold, items: pd.DataFrame, functionals: Mapping[str, np.ndarray],
                     labels: Sequence[str], settings: ClassicSettings) -> ReferenceInputs:
    ids = [*fold.train, *fold.val, *fold.test]
    if isinstance(functionals, CachedArrays):
        subset: Mapping[str, np.ndarray] = CachedArrays({i: functionals.paths[i] for i in ids})
    else:
        subset = {i: functionals[i] for i in ids}
    rows = items.loc[items["item_id"].isin(ids), ["item_id", "emotion", "speaker"]].reset_index(drop=True)
    return ReferenceInputs(spec, tuple(labels), settings, fold, rows, subset)


# ------------------------------------------------------------------------------------------------ compute
def run_reference(inputs: ReferenceInputs, threads: int = 1) -> ReferenceResult:
    """One fold's reference, on ``threads`` BLAS/OpenMP threads (a worker shares the machine with others)."""
    import time

    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    rows = fold_rows(inputs.fold, inputs.items, inputs.functionals)
    with threadpool_limits(limits=threads):
        predicted, chosen = fit_predict(rows["train"], rows["val"], rows["test"][0], inputs.labels, inputs.settings,
                                        groups=rows["train_speakers"])
    if chosen["model"] != inputs.spec.model:  # the rule is applied in the plan and here: they must agree
        raise RuntimeError(f"classic reference fold {inputs.spec.fold}: planned {inputs.spec.model}, "
                           f"fitted {chosen['model']}")
    frame = pd.DataFrame({"item_id": list(inputs.fold.test), "y_true": rows["test"][1], "y_pred": predicted})
    chosen = {**chosen, "c": float(chosen["c"]), "val_ua": float(chosen["val_ua"])}
    return ReferenceResult(inputs.spec.key, inputs.spec.fold, frame, chosen, time.perf_counter() - start,
                           peak_rss_mb())


# ------------------------------------------------------------------------------------------------ rows
def reference_predictions(results: Sequence[ReferenceResult], settings: ClassicSettings,
                          seeds: Sequence[int]) -> pd.DataFrame:
    """Rows like a cell's predictions (``generator`` = ``classic``, the main arm) for every (seed, fold)."""
    parts, chosen = [], []
    for result in sorted(results, key=lambda r: r.fold):
        picked = result.chosen
        chosen.append(f"fold {result.fold}: {picked['model']}, C={picked['c']:g} by {picked['chosen_by']} "
                      f"(UA there {100 * picked['val_ua']:.1f} %)")
        for seed in seeds:
            part = result.predictions.copy()
            part.insert(0, "generator", REFERENCE_NAME)
            part.insert(1, "arm", MAIN)
            part.insert(2, "seed", seed)
            part.insert(3, "fold", result.fold)
            parts.append(part)
    log.info("classic reference (%s): %s", settings.describe(), "; ".join(chosen))
    return pd.concat(parts, ignore_index=True)
