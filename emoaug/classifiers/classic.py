"""The ``classic`` reference: openSMILE functionals + standardisation + an RBF SVM (no torch).

An INTERSPEECH-challenge style baseline every table shows beside the fixed network, on the same items and
folds: if augmentation lifts a network that a 2013 recipe beats, the lift says little. Per fold:

* functionals of each utterance (ComParE_2016: 6,373 values; eGeMAPSv02: 88), from the file's own
  waveform mixed to mono at 16 kHz (no peak normalisation: loudness functionals are features here);
* a ``StandardScaler`` fit on the training speakers only;
* an RBF SVM for each C of a log grid, trained on the training speakers; the C with the best UA on the fold's
  validation speakers is kept (ties: the smaller). A fold without validation speakers (the quick protocol
  trains the network on every training speaker) chooses C by 3-fold cross-validation grouped by training
  speaker instead;
* the kept model predicts the test speakers. It never sees validation or test rows while fitting.

**Which RBF SVM** depends on the number of training rows, by a rule written into every table note and recorded
per fold (``model`` in what :func:`fit_reference` returns): up to :data:`EXACT_MAX_TRAIN_ROWS` rows, the exact
kernel machine ``SVC(kernel="rbf", gamma="scale", class_weight="balanced")`` (libsvm: its fit grows with the
square of the rows or worse, about 13 s for 2,000 rows of ComParE, 53 s for 4,000, per C); above it, the same
kernel approximated by :data:`NYSTROEM_COMPONENTS` Nystroem components fit on the training rows (same gamma,
fixed random state) and a linear SVM on them (``LinearSVC``, primal, balanced class weights), which is linear in
the rows: the reference of a 100,000-utterance corpus takes minutes, not days.

The SVMs are deterministic, so every seed of a fold gets the same predictions.
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
#: the largest training set that gets the exact kernel SVM (EmoDB's and RAVDESS's folds stay below it)
EXACT_MAX_TRAIN_ROWS = 1500
#: Nystroem components of the approximate RBF SVM above that size
NYSTROEM_COMPONENTS = 1000
RBF_EXACT, RBF_NYSTROEM = "rbf-svm", "nystroem-linear-svm"


@dataclass(frozen=True)
class ClassicSettings:
    feature_set: str = "ComParE_2016"
    c_grid: tuple[float, ...] = C_GRID
    class_weight: str | None = "balanced"
    exact_max_train_rows: int = EXACT_MAX_TRAIN_ROWS
    nystroem_components: int = NYSTROEM_COMPONENTS

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return f"openSMILE {self.feature_set} functionals + RBF SVM"

    def model_for(self, n_train_rows: int) -> str:
        """The rule: the exact kernel SVM up to ``exact_max_train_rows`` training rows, else its approximation."""
        return RBF_EXACT if n_train_rows <= self.exact_max_train_rows else RBF_NYSTROEM

    def rule(self) -> str:
        return (f"an exact RBF SVM up to {self.exact_max_train_rows:,} training rows, above that the same kernel "
                f"approximated by {self.nystroem_components:,} Nystroem components + a linear SVM")


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


#: files per task of the parallel extraction, and the fewest misses worth starting worker processes for
CHUNK_FILES = 16
PARALLEL_FROM = 64


def extract_functionals(items: pd.DataFrame, feature_set: str, *, cache_root: Path | None,
                        failures: list[BadAudioError] | None = None, jobs: int = 1,
                        lazy: bool = False) -> dict[str, np.ndarray] | storage.CachedArrays:
    """item_id -> float32 functionals for every row of ``items`` (item_id, path, sha1); files with the same
    sha1 are processed once, cached ones not at all, and the rest by ``jobs`` worker processes (openSMILE runs
    one thread per file: the cores work side by side). With a ``failures`` list, a file openSMILE cannot use
    is appended there. ``lazy`` (with a cache): the vectors stay in the cache and the mapping reads them when
    asked (:class:`emoaug.storage.CachedArrays`), so the driver's memory does not grow with the corpus."""
    if lazy and cache_root is None:
        raise ValueError("extract_functionals: lazy needs a cache")
    cache = FunctionalsCache(cache_root, feature_set) if cache_root is not None else None
    if cache is not None:
        cache.clean()
    by_content: dict[str, np.ndarray | BadAudioError] = {}
    misses: dict[str, str] = {}  # sha1 -> the first path with that content
    for row in items.itertuples(index=False):
        sha1 = str(row.sha1).lower()
        if sha1 in by_content or sha1 in misses:
            continue
        vector = cache.get(sha1) if cache is not None else None
        if vector is None:
            misses[sha1] = str(row.path)
        else:
            by_content[sha1] = str(cache.path_for(sha1)) if lazy else vector
    for sha1, vector in _compute_functionals(list(misses.items()), feature_set, jobs):
        if cache is not None and not isinstance(vector, BadAudioError):
            cache.put(sha1, vector)
            if lazy:
                vector = str(cache.path_for(sha1))
        by_content[sha1] = vector
    out: dict[str, np.ndarray | str] = {}
    for row in items.itertuples(index=False):
        vector = by_content[str(row.sha1).lower()]
        if isinstance(vector, BadAudioError):
            if failures is None:
                raise vector
            if not any(err.path == vector.path for err in failures):
                failures.append(vector)
            continue
        out[str(row.item_id)] = vector
    return storage.CachedArrays(out) if lazy else out


def _compute_functionals(files: list[tuple[str, str]], feature_set: str, jobs: int):
    """Yield (sha1, vector or the reason the file is unusable) for each (sha1, path), in order."""
    if jobs <= 1 or len(files) < PARALLEL_FROM:
        yield from _functionals_chunk(files, feature_set)
        return
    from ..workers import worker_pool

    chunks = [files[start:start + CHUNK_FILES] for start in range(0, len(files), CHUNK_FILES)]
    with worker_pool(jobs) as pool:  # workers leave Ctrl-C to this process, which stops them
        for done in pool.map(_functionals_chunk, chunks, [feature_set] * len(chunks)):
            yield from done


def _functionals_chunk(files: list[tuple[str, str]], feature_set: str) -> list[tuple[str, np.ndarray | BadAudioError]]:
    from ..audio import load_mono

    if not files:
        return []
    smile = _smile(feature_set)
    out = []
    for sha1, path in files:
        try:
            signal = load_mono(path, SAMPLE_RATE, peak_normalise=False)
            try:
                vector = smile.process_signal(signal, SAMPLE_RATE).to_numpy(dtype=np.float32).reshape(-1)
            except (RuntimeError, ValueError) as err:  # openSMILE's own refusal of a signal
                raise BadAudioError(path, f"openSMILE {feature_set} failed ({err})") from None
            if not np.isfinite(vector).all():
                raise BadAudioError(path, f"non-finite openSMILE {feature_set} functionals")
        except BadAudioError as err:
            vector = err
        out.append((sha1, vector))
    return out


# ------------------------------------------------------------------------------------------------ the SVM
def _unweighted_recall(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> float:
    from sklearn.metrics import recall_score

    present = [label for label in labels if (y_true == label).any()]
    return float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def _svm(c: float, settings: ClassicSettings, model: str = RBF_EXACT):
    """An unfitted classifier of kind ``model`` for rows already mapped by :func:`_kernel_map`."""
    if model == RBF_EXACT:  # on the kernel's columns (:class:`_ExactKernel`)
        from sklearn.svm import SVC

        return SVC(C=c, kernel="precomputed", class_weight=settings.class_weight)
    from sklearn.svm import LinearSVC

    # primal (dual=False): rows outnumber the components here, and the primal solver is deterministic
    return LinearSVC(C=c, class_weight=settings.class_weight, dual=False, max_iter=5000)


def _kernel_map(train_z: np.ndarray, settings: ClassicSettings, model: str):
    """The map from standardised rows to what the SVM reads, fit on the training rows: the exact kernel's columns
    (:class:`_ExactKernel`) or the Nystroem approximation. Either way gamma is SVC's ``"scale"``:
    1 / (n_features x variance of the training rows)."""
    if model == RBF_EXACT:
        return _ExactKernel(train_z)
    from sklearn.kernel_approximation import Nystroem

    variance = float(train_z.var()) or 1.0
    components = min(settings.nystroem_components, len(train_z))
    return Nystroem(kernel="rbf", gamma=1.0 / (train_z.shape[1] * variance), n_components=components,
                    random_state=0).fit(train_z)


class _ExactKernel:
    """Rows -> their RBF kernel values against every training row, for ``SVC(kernel="precomputed")``.

    The same SVM as ``SVC(kernel="rbf", gamma="scale")``, but the kernel is computed once per set of training rows
    with BLAS (float64, as libsvm), instead of inside libsvm for every C of the grid and every inner fold. On real
    EmoDB's 5 folds (C by grouped CV): 2.6 s instead of 30.7 s, with identical predictions and choices of C."""

    def __init__(self, train_z: np.ndarray):
        self.train = np.asarray(train_z, dtype=np.float64)
        variance = float(self.train.var())
        self.gamma = 1.0 / (self.train.shape[1] * variance) if variance != 0 else 1.0  # as sklearn's "scale"

    def transform(self, z: np.ndarray) -> np.ndarray:
        from sklearn.metrics.pairwise import rbf_kernel

        return rbf_kernel(np.asarray(z, dtype=np.float64), self.train, gamma=self.gamma)


class _Fitted:
    """A scaler, the kernel map and the classifier of one model, as one ``predict``."""

    def __init__(self, scaler, mapping, classifier):
        self.scaler, self.mapping, self.classifier = scaler, mapping, classifier

    def rows(self, x: np.ndarray) -> np.ndarray:
        return self.mapping.transform(np.nan_to_num(self.scaler.transform(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classifier.predict(self.rows(x))


def _fit(x: np.ndarray, y: np.ndarray, settings: ClassicSettings, model: str, grid: Sequence[float]) -> list[_Fitted]:
    """One fitted model per C of ``grid``, sharing the scaler and kernel map fit on ``x`` alone."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    z = np.nan_to_num(scaler.transform(x))
    mapping = _kernel_map(z, settings, model)
    mapped = mapping.transform(z)
    return [_Fitted(scaler, mapping, _svm(c, settings, model).fit(mapped, y)) for c in grid]


def fit_reference(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], labels: Sequence[str],
                  settings: ClassicSettings, groups: Sequence[str] | None = None):
    """(scaler, model, {"c": chosen C, "val_ua": its UA on the data that chose it, "chosen_by": how, "model": which
    SVM}): all fit on the training rows only; ``model.predict`` takes standardised rows. C is chosen on the
    validation rows; without validation speakers, by cross-validation over the training speakers (``groups``,
    one per row: no speaker on both sides of an inner split)."""
    (train_x, train_y), (val_x, val_y) = train, val
    model = settings.model_for(len(train_y))
    grid = sorted(settings.c_grid)
    if len(val_y):
        fitted = _fit(train_x, train_y, settings, model, grid)
        scores = {c: _unweighted_recall(val_y, f.predict(val_x), labels) for c, f in zip(grid, fitted)}
        chosen_by = "validation speakers"
    elif groups is not None and len(set(groups)) >= 2:
        scores = _grouped_cv_ua(train_x, train_y, np.asarray(groups), grid, labels, settings, model)
        chosen_by = f"{INNER_FOLDS}-fold CV grouped by training speaker"
    else:
        scores = {1.0: float("nan")}  # nothing to choose on: sklearn's default C
        chosen_by = "default (nothing to choose on)"
    c = max(scores, key=lambda value: (scores[value], -value))  # ties keep the smaller C
    kept = fitted[grid.index(c)] if chosen_by == "validation speakers" else _fit(train_x, train_y, settings,
                                                                                   model, [c])[0]
    standardised = _MappedClassifier(kept.mapping, kept.classifier)
    return kept.scaler, standardised, {"c": c, "val_ua": scores[c], "chosen_by": chosen_by, "model": model}


class _MappedClassifier:
    """The model as one estimator on standardised rows: the kernel map, then the SVM."""

    def __init__(self, mapping, classifier):
        self.mapping, self.classifier = mapping, classifier

    def predict(self, z: np.ndarray) -> np.ndarray:
        return self.classifier.predict(self.mapping.transform(z))


def _grouped_cv_ua(x: np.ndarray, y: np.ndarray, groups: np.ndarray, grid: Sequence[float], labels: Sequence[str],
                   settings: ClassicSettings, model: str) -> dict[float, float]:
    """C -> mean UA over speaker-grouped inner folds, each with its own scaler (and kernel map) fit on its
    training part."""
    from sklearn.model_selection import GroupKFold

    scores: dict[float, list[float]] = {c: [] for c in grid}
    for inner_train, inner_test in GroupKFold(n_splits=min(INNER_FOLDS, len(set(groups)))).split(x, y, groups):
        if len(set(y[inner_train])) < 2:
            continue
        for c, fitted in zip(grid, _fit(x[inner_train], y[inner_train], settings, model, grid)):
            scores[c].append(_unweighted_recall(y[inner_test], fitted.predict(x[inner_test]), labels))
    return {c: float(np.mean(values)) if values else float("nan") for c, values in scores.items()}


def fit_predict(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], test_x: np.ndarray,
                labels: Sequence[str], settings: ClassicSettings,
                groups: Sequence[str] | None = None) -> tuple[np.ndarray, dict]:
    """(test predictions, what :func:`fit_reference` chose)."""
    scaler, model, chosen = fit_reference(train, val, labels, settings, groups)
    return model.predict(np.nan_to_num(scaler.transform(test_x))), chosen


def fold_rows(fold, items: pd.DataFrame, functionals: Mapping[str, np.ndarray]) -> dict:
    """The functionals of one fold's partitions: {"train": (x, y), "val": (x, y), "test": (x, y),
    "train_speakers": one speaker per training row}."""
    by_id = items.set_index("item_id")
    emotion = by_id["emotion"]
    width = len(next(iter(functionals.values())))

    def rows(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        ids = list(ids)
        x = np.empty((len(ids), width), dtype=np.float32)
        for k, item_id in enumerate(ids):  # one at a time: the mapping may read each from the cache
            x[k] = functionals[item_id]
        return x, emotion.loc[ids].astype(str).to_numpy()

    train = rows(fold.train)
    if len(set(train[1])) < 2:
        raise EmoaugError(f"classic reference: fold {fold.index} trains on fewer than 2 emotions")
    return {"train": train, "val": rows(fold.val), "test": rows(fold.test),
            "train_speakers": by_id.loc[list(fold.train), "speaker"].astype(str).to_numpy()}


def predict_fold(fold, items: pd.DataFrame, functionals: Mapping[str, np.ndarray], labels: Sequence[str],
                 settings: ClassicSettings) -> tuple[pd.DataFrame, dict]:
    """Test-item predictions of one fold (columns item_id, y_true, y_pred) and what was chosen."""
    rows = fold_rows(fold, items, functionals)
    predicted, chosen = fit_predict(rows["train"], rows["val"], rows["test"][0], labels, settings,
                                    groups=rows["train_speakers"])
    frame = pd.DataFrame({"item_id": list(fold.test), "y_true": rows["test"][1], "y_pred": predicted})
    return frame, {"fold": fold.index, **chosen}
