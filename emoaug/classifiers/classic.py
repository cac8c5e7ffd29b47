"""The ``classic`` reference: openSMILE functionals + standardisation + an RBF SVM (no torch).

An INTERSPEECH-challenge style baseline every table shows beside the fixed network, on the same items and
folds: if augmentation lifts a network that a 2013 recipe beats, the lift says little. Per fold:

* functionals of each utterance (ComParE_2016: 6,373 values; eGeMAPSv02: 88), from the file's own
  waveform mixed to mono at 16 kHz (no peak normalisation: loudness functionals are features here);
* a ``StandardScaler`` fit on the training speakers only;
* ``SVC(kernel="rbf", gamma="scale", class_weight="balanced")`` for each C of a log grid, trained on the
  training speakers; the C with the best UA on the fold's validation speakers is kept (ties: the smaller).
  A fold without validation speakers (the quick protocol trains the network on every training speaker)
  chooses C by 3-fold cross-validation grouped by training speaker instead;
* the kept model predicts the test speakers. It never sees validation or test rows while fitting.

The SVM is deterministic, so every seed of a fold gets the same predictions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import storage
from ..errors import BadAudioError, EmoaugError

log = logging.getLogger("emoaug")

#: --reference values -> openSMILE feature set names (``off`` skips the reference)
FEATURE_SETS = {"compare": "ComParE_2016", "egemaps": "eGeMAPSv02"}
REFERENCE_OFF = "off"
REFERENCE_CHOICES = (*FEATURE_SETS, REFERENCE_OFF)
#: the name of the reference in result tables (never a generator: the registry refuses it)
REFERENCE_NAME = "classic"
SAMPLE_RATE = 16000
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
INNER_FOLDS = 3  # speaker-grouped folds that choose C when a fold has no validation speakers


@dataclass(frozen=True)
class ClassicSettings:
    feature_set: str = "ComParE_2016"
    c_grid: tuple[float, ...] = C_GRID
    class_weight: str | None = "balanced"

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return f"openSMILE {self.feature_set} functionals + RBF SVM"


def settings_for(reference: str) -> ClassicSettings | None:
    if reference == REFERENCE_OFF:
        return None
    if reference not in FEATURE_SETS:
        raise EmoaugError(f"--reference: unknown value {reference!r} (choose from {', '.join(REFERENCE_CHOICES)})")
    return ClassicSettings(feature_set=FEATURE_SETS[reference])


# ------------------------------------------------------------------------------------------------ features
class FunctionalsCache:
    """``<root>/classic/<feature set>-<opensmile version>/<sha[:2]>/<sha>.npy``: one vector per audio content."""

    def __init__(self, root: Path, feature_set: str):
        import opensmile

        self.feature_set = feature_set
        self.directory = Path(root) / "classic" / f"{feature_set}-{opensmile.__version__}"

    def path_for(self, sha1: str) -> Path:
        return storage.content_path(self.directory, sha1)

    def get(self, sha1: str) -> np.ndarray | None:
        path = self.path_for(sha1)
        vector = storage.read_npy(path, "functionals cache")
        if vector is not None and not (vector.ndim == 1 and np.isfinite(vector).all()):
            log.warning("functionals cache: %s is not one finite vector; recomputing", path)
            return None
        return vector

    def put(self, sha1: str, vector: np.ndarray) -> None:
        storage.write_npy(self.path_for(sha1), np.ascontiguousarray(vector, dtype=np.float32))

    def clean(self) -> int:
        return storage.remove_stale_temporaries(self.directory)


def _smile(feature_set: str):
    import opensmile

    return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                           feature_level=opensmile.FeatureLevel.Functionals)


def extract_functionals(items: pd.DataFrame, feature_set: str, *, cache_root: Path | None,
                        failures: list[BadAudioError] | None = None) -> dict[str, np.ndarray]:
    """item_id -> float32 functionals for every row of ``items`` (item_id, path, sha1); files with the same
    sha1 are processed once. With a ``failures`` list, a file openSMILE cannot use is appended there."""
    from ..audio import load_mono

    cache = FunctionalsCache(cache_root, feature_set) if cache_root is not None else None
    if cache is not None:
        cache.clean()
    smile = None
    by_content: dict[str, np.ndarray] = {}
    out: dict[str, np.ndarray] = {}
    for row in items.itertuples(index=False):
        sha1 = str(row.sha1).lower()
        vector = by_content.get(sha1)
        if vector is None and cache is not None:
            vector = cache.get(sha1)
        if vector is None:
            smile = smile or _smile(feature_set)
            try:
                signal = load_mono(row.path, SAMPLE_RATE, peak_normalise=False)
                try:
                    vector = smile.process_signal(signal, SAMPLE_RATE).to_numpy(dtype=np.float32).reshape(-1)
                except (RuntimeError, ValueError) as err:  # openSMILE's own refusal of a signal
                    raise BadAudioError(row.path, f"openSMILE {feature_set} failed ({err})") from None
                if not np.isfinite(vector).all():
                    raise BadAudioError(row.path, f"non-finite openSMILE {feature_set} functionals")
            except BadAudioError as err:
                if failures is None:
                    raise
                failures.append(err)
                continue
            if cache is not None:
                cache.put(sha1, vector)
        by_content[sha1] = vector
        out[str(row.item_id)] = vector
    return out


# ------------------------------------------------------------------------------------------------ the SVM
def _unweighted_recall(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> float:
    from sklearn.metrics import recall_score

    present = [label for label in labels if (y_true == label).any()]
    return float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def _svm(c: float, settings: ClassicSettings):
    from sklearn.svm import SVC

    return SVC(C=c, kernel="rbf", gamma="scale", class_weight=settings.class_weight)


def fit_reference(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], labels: Sequence[str],
                  settings: ClassicSettings, groups: Sequence[str] | None = None):
    """(scaler, SVM, {"c": chosen C, "val_ua": its UA on the data that chose it, "chosen_by": how}): both fit on
    the training rows
    only. C is chosen on the validation rows; without validation speakers, by cross-validation over the
    training speakers (``groups``, one per row: no speaker on both sides of an inner split)."""
    from sklearn.preprocessing import StandardScaler

    (train_x, train_y), (val_x, val_y) = train, val
    scaler = StandardScaler().fit(train_x)
    train_z = np.nan_to_num(scaler.transform(train_x))
    if len(val_y):
        val_z = np.nan_to_num(scaler.transform(val_x))
        scores = {c: _unweighted_recall(val_y, _svm(c, settings).fit(train_z, train_y).predict(val_z), labels)
                  for c in sorted(settings.c_grid)}
        chosen_by = "validation speakers"
    elif groups is not None and len(set(groups)) >= 2:
        scores = {c: _grouped_cv_ua(train_x, train_y, np.asarray(groups), c, labels, settings)
                  for c in sorted(settings.c_grid)}
        chosen_by = f"{INNER_FOLDS}-fold CV grouped by training speaker"
    else:
        scores = {1.0: float("nan")}  # nothing to choose on: sklearn's default C
        chosen_by = "default (nothing to choose on)"
    c = max(scores, key=lambda value: (scores[value], -value))  # ties keep the smaller C
    return scaler, _svm(c, settings).fit(train_z, train_y), {"c": c, "val_ua": scores[c], "chosen_by": chosen_by}


def _grouped_cv_ua(x: np.ndarray, y: np.ndarray, groups: np.ndarray, c: float, labels: Sequence[str],
                   settings: ClassicSettings) -> float:
    """Mean UA over speaker-grouped inner folds, each with its own scaler fit on its training part."""
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    scores = []
    for inner_train, inner_test in GroupKFold(n_splits=min(INNER_FOLDS, len(set(groups)))).split(x, y, groups):
        if len(set(y[inner_train])) < 2:
            continue
        scaler = StandardScaler().fit(x[inner_train])
        model = _svm(c, settings).fit(np.nan_to_num(scaler.transform(x[inner_train])), y[inner_train])
        predicted = model.predict(np.nan_to_num(scaler.transform(x[inner_test])))
        scores.append(_unweighted_recall(y[inner_test], predicted, labels))
    return float(np.mean(scores)) if scores else float("nan")


def fit_predict(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], test_x: np.ndarray,
                labels: Sequence[str], settings: ClassicSettings,
                groups: Sequence[str] | None = None) -> tuple[np.ndarray, dict]:
    """(test predictions, what :func:`fit_reference` chose)."""
    scaler, model, chosen = fit_reference(train, val, labels, settings, groups)
    return model.predict(np.nan_to_num(scaler.transform(test_x))), chosen


def predict_fold(fold, items: pd.DataFrame, functionals: Mapping[str, np.ndarray], labels: Sequence[str],
                 settings: ClassicSettings) -> tuple[pd.DataFrame, dict]:
    """Test-item predictions of one fold (columns item_id, y_true, y_pred) and what was chosen."""
    by_id = items.set_index("item_id")
    emotion = by_id["emotion"]

    width = len(next(iter(functionals.values())))

    def rows(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        ids = list(ids)
        x = np.stack([functionals[i] for i in ids]) if ids else np.zeros((0, width), dtype=np.float32)
        return x, emotion.loc[ids].to_numpy()

    if len(set(rows(fold.train)[1])) < 2:
        raise EmoaugError(f"classic reference: fold {fold.index} trains on fewer than 2 emotions")
    test_x, test_y = rows(fold.test)
    predicted, chosen = fit_predict(rows(fold.train), rows(fold.val), test_x, labels, settings,
                                    groups=by_id.loc[list(fold.train), "speaker"].to_numpy())
    frame = pd.DataFrame({"item_id": list(fold.test), "y_true": test_y, "y_pred": predicted})
    return frame, {"fold": fold.index, **chosen}
