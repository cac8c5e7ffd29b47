"""The list of work a run asks for: judges and cells, each addressed by a hash of its content.

A key hashes everything that determines the numbers it stands for -- the items' ids, content hashes
(the manifest's sha1), labels and speakers per partition, the label set, the log-mel preset, the seed,
the classifier settings, the generator's name, code version and fully resolved config, the protocols,
the synthetic ratio and the cross-corpus test set -- and nothing about where it is written. Equal keys
mean equal inputs, so a stored result is reused exactly when it is valid, whichever run made it.

The :class:`Workload` is what a worker needs to compute any judge or cell of the run besides the specs: the
manifest, the unnormalised features (as an index into the feature cache: a worker reads the rows of the fold
it computes) and the folds. It is shipped to a worker once; it holds no run config (the specs carry the
generator and the classifier, the :class:`~emoaug.config.Execution` stays in the driver).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..config import ClassifierSettings, Experiment
from ..features import ArraysOf, CachedFeatures, MelPreset, Normaliser, build_featureset
from ..featureset import FeatureSet
from ..generators.spec import GeneratorSpec
from ..speaker_norm import reference_statistics
from ..splits import Fold
from ..storage import stable_hash

#: bump when run_cell/run_judge change what they compute or store (invalidates every stored cell)
CELL_FORMAT = 1
#: generator rows kept per emotion with each cell, for listening and spectrogram figures (reports/listen)
EXAMPLES_PER_EMOTION = 3


@dataclass(frozen=True)
class JudgeSpec:
    """The real-only classifier of one (fold, seed): the ``none`` cell and the judge of generated rows."""

    key: str
    fold: int
    seed: int
    classifier: ClassifierSettings


@dataclass(frozen=True)
class CellSpec:
    """One (fold, seed, generator) cell: every arm of that generator on that fold and seed. It carries the
    resolved generator and classifier, so a worker needs nothing else of the run to compute it."""

    key: str
    generator: GeneratorSpec  # with this cell's seed
    classifier: ClassifierSettings
    fold: int
    seed: int
    judge_key: str
    checkpoint_key: str | None  # trainable generators only
    synthetic_ratio: float = 0.0  # synthetic rows per real training row (0 for the real-only cell)
    protocols: tuple[str, ...] = ()  # arms beyond main (and cross): "augment", "clarity"
    curve: bool = False  # a cell of the synthetic-ratio curve only (a ratio the tables do not use)


@dataclass
class FoldData:
    """Everything one (fold, seed) shares across generators, normalised with training-fold statistics."""

    fold: Fold
    seed: int
    train: FeatureSet
    val: FeatureSet
    test: FeatureSet
    normaliser: Normaliser
    cross: FeatureSet | None = None  # --test-corpus items, normalised with this fold's statistics


@dataclass
class Workload:
    """The inputs of every judge and cell of one run (picklable: shipped to process and Ray workers)."""

    preset: MelPreset
    labels: tuple[str, ...]
    items: pd.DataFrame  # the manifest: item_id, path, emotion, speaker, sha1, ...
    folds: list[Fold]
    # item_id -> unnormalised dB [S, n_mels, n_frames]: read from the feature cache as needed (CachedFeatures,
    # which workers receive as an index of files) or, with the cache off, held in memory and shipped whole
    features: dict[str, np.ndarray] | CachedFeatures
    cross_items: pd.DataFrame | None = None
    cross_features: dict[str, np.ndarray] | CachedFeatures | None = None
    device: str = "cpu"
    # item_id -> openSMILE functionals of the classic reference (None: --reference off); used by the driver only
    functionals: dict[str, np.ndarray] | None = None
    # --speaker-norm: speaker -> per-bin {"mean", "std"} in dB of the corpus's speakers (``features`` are then
    # speaker-standardised); a fold's training speakers give its normaliser's way back to dB
    speaker_stats: dict[str, dict[str, np.ndarray]] | None = None
    _fold_cache: dict = field(default_factory=dict, repr=False, compare=False)
    # fold index -> its fitted normaliser: fit once in the driver (the run folder records them) and shipped with
    # the workload, so no worker reads every training row again to refit it
    _normalisers: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fold_cache"] = {}
        state["functionals"] = None  # reference tasks receive their fold's functionals with the task
        return state

    def in_memory(self) -> Workload:
        """A copy whose features are arrays, not an index of this machine's cache files: for workers on other
        machines (a Ray cluster), which cannot read this machine's cache."""
        return replace(self, features=materialise(self.features), _fold_cache={},
                       cross_features=None if self.cross_features is None else materialise(self.cross_features))

    def fold(self, index: int) -> Fold:
        return next(f for f in self.folds if f.index == index)

    def fold_data(self, fold_index: int, seed: int) -> FoldData:
        """The fold's normalised sets (they do not depend on the seed; the last fold's are kept, since a worker
        often gets cells of one fold in a row)."""
        if fold_index not in self._fold_cache:
            self._fold_cache.clear()
            self._fold_cache[fold_index] = self._build_fold_data(self.fold(fold_index), seed)
        return replace(self._fold_cache[fold_index], seed=seed)

    def normaliser(self, fold: Fold) -> Normaliser:
        if fold.index not in self._normalisers:
            self._normalisers[fold.index] = self._fit_normaliser(fold)
        return self._normalisers[fold.index]

    def _fit_normaliser(self, fold: Fold) -> Normaliser:
        normaliser = Normaliser(self.preset.normalisation).fit(ArraysOf(self.features, fold.train))
        if self.speaker_stats is not None:
            speakers = self.items.set_index("item_id").loc[list(fold.train), "speaker"].astype(str)
            normaliser.db_reference = reference_statistics(self.speaker_stats, speakers)
        return normaliser

    def _build_fold_data(self, fold: Fold, seed: int) -> FoldData:
        normaliser = self.normaliser(fold)
        by_id = self.items.set_index("item_id", drop=False)
        # features read from the cache: the fold's normalised rows go to files the worker reads batches from,
        # so no process holds a fold's rows (in memory, features were held anyway: the rows stay in tensors)
        sets = {part: build_featureset(self.features, by_id.loc[getattr(fold, part)], self.labels, normaliser,
                                       stored=isinstance(self.features, CachedFeatures))
                for part in ("train", "val", "test")}
        cross = None
        if self.cross_items is not None:
            cross = build_featureset(self.cross_features, self.cross_items.set_index("item_id", drop=False),
                                     self.labels, normaliser, stored=isinstance(self.cross_features, CachedFeatures))
        return FoldData(fold, seed, sets["train"], sets["val"], sets["test"], normaliser, cross=cross)


def materialise(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """key -> array in memory (a :class:`emoaug.storage.CachedArrays` index read whole; a dict as it is)."""
    if isinstance(arrays, dict):
        return arrays
    return {key: np.array(arrays[key]) for key in arrays}


# ------------------------------------------------------------------------------------------------ keys
def content_of(items: pd.DataFrame, ids: list[str] | None = None) -> str:
    """Hash of items' ids, audio content (sha1), labels and speakers: changes when any file changes."""
    rows = items if ids is None else items.set_index("item_id", drop=False).loc[list(ids)]
    columns = [c for c in ("item_id", "sha1", "emotion", "speaker") if c in rows.columns]
    return stable_hash(sorted(map(list, rows[columns].astype(str).itertuples(index=False, name=None))))


def data_key(workload: Workload) -> dict:
    """What the rows of every fold are made of: label set, front end and normalisation (``speaker_norm`` only
    when set, so that the keys of runs without it stay what they were)."""
    key = {"labels": list(workload.labels), "preset": workload.preset.fingerprint(),
           "normalisation": workload.preset.normalisation}
    if workload.speaker_stats is not None:
        key["speaker_norm"] = True
    return key


def fold_content(workload: Workload, fold: Fold) -> dict:
    return {"train": content_of(workload.items, fold.train), "val": content_of(workload.items, fold.val),
            "test": content_of(workload.items, fold.test), "speaker_independent": fold.speaker_independent}


def judge_key(workload: Workload, content: dict, seed: int, classifier: ClassifierSettings) -> str:
    """``content``: :func:`fold_content` of the judge's fold."""
    return stable_hash({"kind": "judge", "format": CELL_FORMAT, "data": data_key(workload), "fold": content,
                        "seed": seed, "classifier": classifier.identity()})


def checkpoint_key(workload: Workload, train_content: str, seed: int, generator: GeneratorSpec) -> str:
    """A trained generator depends on its training rows (``train_content``: their :func:`content_of`), seed
    and config only (not on the classifier)."""
    return stable_hash({"kind": "checkpoint", "data": data_key(workload), "train": train_content, "seed": seed,
                        "generator": generator.identity()})


def cross_content(workload: Workload) -> str | None:
    return None if workload.cross_items is None else content_of(workload.cross_items)


def cell_key(judge: str, cross: str | None, generator: GeneratorSpec, synthetic_ratio: float,
             protocols: tuple[str, ...]) -> str:
    """``cross``: :func:`cross_content` of the run; ``protocols``: the cell's arms beyond main and cross."""
    payload = {"kind": "cell", "format": CELL_FORMAT, "judge": judge, "cross": cross,
               "generator": generator.identity()}
    if not generator.produces_nothing:  # the real-only cell has no protocol arms
        payload.update({"protocols": sorted(protocols), "synthetic_ratio": synthetic_ratio})
    return stable_hash(payload)


# ------------------------------------------------------------------------------------------------ plan
@dataclass
class Plan:
    judges: list[JudgeSpec]
    cells: list[CellSpec]  # the tables' cells, in the order results are assembled: fold, seed, generator
    # the synthetic-ratio curve's other ratios: one cell per (fold, seed, generator that produces rows, ratio),
    # main (and cross) arm only; the curve's point at the tables' ratio is the table cell itself
    curve_cells: list[CellSpec] = field(default_factory=list)

    @property
    def all_cells(self) -> list[CellSpec]:
        return [*self.cells, *self.curve_cells]


def plan_run(workload: Workload, experiment: Experiment) -> Plan:
    """Every judge and cell of ``experiment`` on ``workload``'s folds, with its key; each generator is resolved
    once per seed into the spec its cells carry."""
    if experiment.classifier is None:
        raise ValueError("plan_run needs a resolved classifier (emoaug.bench.resolve)")
    classifier = experiment.classifier
    seeds = [experiment.seed + k for k in range(experiment.n_seeds)]
    generators = {(name, seed): GeneratorSpec.resolve(name, experiment.generator_configs.get(name, {}), seed)
                  for name in experiment.generators for seed in seeds}
    cross = cross_content(workload)
    table_protocols = tuple(sorted(p for p in experiment.protocols if p != "cross"))
    judges, cells, curve_cells = [], [], []
    for fold in workload.folds:
        content = fold_content(workload, fold)
        for seed in seeds:
            jkey = judge_key(workload, content, seed, classifier)
            judges.append(JudgeSpec(jkey, fold.index, seed, classifier))
            for name in experiment.generators:
                generator = generators[name, seed]
                ckpt = checkpoint_key(workload, content["train"], seed, generator) if generator.trainable else None

                def spec(ratio: float, protocols: tuple[str, ...], curve: bool) -> CellSpec:
                    key = cell_key(jkey, cross, generator, ratio, protocols)
                    return CellSpec(key, generator, classifier, fold.index, seed, jkey, ckpt, ratio, protocols, curve)

                if generator.produces_nothing:
                    cells.append(spec(0.0, (), False))
                    continue
                cells.append(spec(experiment.synthetic_ratio, table_protocols, False))
                curve_cells += [spec(ratio, (), True) for ratio in experiment.curve_ratios
                                if ratio != experiment.synthetic_ratio]
    return Plan(judges, cells, curve_cells)
