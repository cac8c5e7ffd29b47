"""The benchmark loop: corpus -> features -> folds -> (generator, classifier) cells -> tidy results.

Per (fold, seed) the runner trains one real-only classifier, the *judge*: it is the ``none`` cell and
also the fixed embedding in which generated sets are measured. Per generator it then fits (or restores
from a checkpoint) the generator on the training fold only, measures the generated set, trains the
same classifier on real + synthetic rows and tests it on held-out real speakers. Every prediction row
carries an ``arm`` (see ARMS): the protocols add arms to the same cells -- ``augment`` a classifier on
synthetic rows only, ``clarity`` the judge on generated versions of the test utterances, ``cross`` every
classifier tested on a second corpus as well.

Every finished (seed, fold, generator) cell is written atomically under ``<run_dir>/cells`` before the
next one starts, so an interrupted run loses nothing and a re-run with the same arguments reuses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import metrics
from ..classifiers import SERClassifier, TrainConfig
from ..config import ClassifierSettings, RunConfig, get_profile
from ..datasets import load_corpus
from ..datasets.base import CorpusScan
from ..devices import resolve_device
from ..errors import EmoaugError, LeakageError
from ..features import FeatureCache, Normaliser, build_featureset, default_cache_root, extract_features, get_preset
from ..featureset import FeatureSet
from ..generators import get_generator_class, make_generator
from ..generators.base import Generator
from ..splits import SPEAKER_INDEPENDENT, Fold, audit_splits, make_splits, save_splits
from . import io
from .aggregate import arm_comparisons, generator_summary
from .arms import (ARMS, CLARITY_PREDICTED, CLARITY_SAMPLED, CLARITY_TRUE, CROSS, CROSS_SYNTHETIC_ONLY, MAIN,
                   SYNTHETIC_ONLY)

log = logging.getLogger("emoaug")

#: seeds of generate() calls beyond the main synthetic set, offset so that they draw new rows
SYNTHETIC_ONLY_SEED_OFFSET = 1_000_003
CLARITY_SEED_OFFSET = 2_000_003


@dataclass
class RunResult:
    run_dir: Path
    config: RunConfig
    labels: tuple[str, ...]
    predictions: pd.DataFrame  # one row per (generator, arm, seed, fold, test item)
    fold_metrics: pd.DataFrame  # one row per (generator, arm, seed, fold, metric)
    summary: pd.DataFrame  # one row per (generator, arm, metric): pooled, fold_mean, fold_std
    confusions: dict[str, pd.DataFrame]  # generator -> row-normalised percent of the main arm
    quality: pd.DataFrame  # one row per (generator, seed, fold, emotion, measure)
    timings: pd.DataFrame  # one row per (generator, seed, fold)
    generators: pd.DataFrame  # one row per generator: metrics, quality, cost (emoaug.bench.aggregate)
    arm_confusions: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)  # (generator, arm), not main
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)  # paired vs none (emoaug.bench.aggregate)


@dataclass
class FoldData:
    """Everything one (fold, seed) pair shares across generators."""

    fold: Fold
    seed: int
    train: FeatureSet
    val: FeatureSet
    test: FeatureSet
    normaliser: Normaliser
    cross: FeatureSet | None = None  # --test-corpus items, normalised with this fold's statistics
    judge: SERClassifier | None = None
    judge_seconds: float = float("nan")  # NaN when the judge was loaded from an earlier, interrupted run
    exported: set[str] = field(default_factory=set)


@dataclass
class Cell:
    predictions: pd.DataFrame
    quality: pd.DataFrame
    meta: dict


def default_run_dir(config: RunConfig) -> Path:
    name = config.run_name or f"{config.corpus}-{config.profile}-{config.fingerprint()[:10]}"
    return Path(config.out_dir) / name


def allocate_synthetic(class_counts: dict[str, int], n_total: int) -> dict[str, int]:
    """Share ``n_total`` synthetic rows among classes, topping up the smallest classes first.

    Water-filling: each new row goes to the class with the fewest real+synthetic rows so far
    (ties broken by label order), so augmentation first balances the training set.
    """
    labels = list(class_counts)
    have = np.array([class_counts[label] for label in labels], dtype=np.int64)
    give = np.zeros_like(have)
    for _ in range(max(0, int(n_total))):
        k = int(np.argmin(have + give))
        give[k] += 1
    return {label: int(g) for label, g in zip(labels, give)}


def check_scope(what: str, seen_ids: list[str], seen_speakers: set[str], fold: Fold,
                test_speakers: set[str]) -> dict:
    """Fail the run if ``what`` saw anything but training-fold items; return the audit record."""
    held_out = set(fold.val) | set(fold.test)
    leaked = sorted(set(seen_ids) & held_out)
    if leaked:
        raise LeakageError(f"{what} was fit on {len(leaked)} validation/test items of fold {fold.index} "
                           f"(e.g. {leaked[0]})")
    outside = sorted(set(seen_ids) - set(fold.train))
    if outside:
        raise LeakageError(f"{what} saw items outside fold {fold.index}'s training set (e.g. {outside[0]})")
    speakers = sorted(seen_speakers & test_speakers) if fold.speaker_independent else []
    if speakers:
        raise LeakageError(f"{what} saw test speaker(s) {speakers} of fold {fold.index}")
    return {"what": what, "fold": fold.index, "n_items": len(set(seen_ids)), "n_speakers": len(seen_speakers),
            "held_out_items_seen": 0, "test_speakers_seen": 0}


def checkpoint_key(*, corpus: str, preset: str, fold: int, seed: int, train_ids: list[str], generator: str,
                   config: dict) -> str:
    """Generators are reused only for the same data, fold, seed and configuration."""
    ids_hash = hashlib.sha1("\n".join(sorted(set(train_ids))).encode()).hexdigest()
    payload = json.dumps({"corpus": corpus, "preset": preset, "fold": fold, "seed": seed, "train_ids": ids_hash,
                          "generator": generator, "config": config}, sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()


class Benchmark:
    """One run of the benchmark with a resolved configuration."""

    def __init__(self, config: RunConfig, *, progress: bool = False):
        self.config = config
        self.progress = progress
        self.run_dir = default_run_dir(config)
        self.device = resolve_device(config.device)
        self.preset = get_preset(config.preset)
        # Resolve every generator name before any heavy work, so a typo fails in a second.
        self.generator_classes = {name: get_generator_class(name) for name in config.generators}
        cache = config.cache_dir
        self.cache_root = None if cache == "off" else Path(cache) if cache else default_cache_root()
        self.leakage_audit: list[dict] = []

    # ---------------------------------------------------------------- stages
    def load(self) -> CorpusScan:
        cfg = self.config
        scan = load_corpus(cfg.corpus, cfg.data_root, labels=cfg.labels, on_bad_file=cfg.on_bad_file,
                           progress=self.progress)
        if scan.items.empty:
            raise EmoaugError(f"corpus {cfg.corpus!r}: no usable items for label set {cfg.labels!r}")
        for entry in scan.skipped:
            log.warning("skipped %s: %s", entry["path"], entry["reason"])
        return scan

    def load_test_corpus(self, scan: CorpusScan) -> tuple[CorpusScan, CorpusScan]:
        """The cross protocol's test corpus; both corpora are cut to the emotions they share, since the
        classifier can only be tested on classes it was trained on."""
        cfg = self.config
        test = load_corpus(cfg.test_corpus, cfg.test_data_root, labels=cfg.labels, on_bad_file=cfg.on_bad_file,
                           progress=self.progress)
        for entry in test.skipped:
            log.warning("skipped %s: %s", entry["path"], entry["reason"])
        overlap = set(scan.items["item_id"]) & set(test.items["item_id"])
        if overlap:  # e.g. the same corpus twice: its training items would be scored as unseen test items
            raise EmoaugError(f"--test-corpus {cfg.test_corpus}: {len(overlap)} item(s) are also in --corpus "
                              f"{cfg.corpus} (e.g. {sorted(overlap)[0]}); cross-corpus testing needs another corpus")
        present = set(scan.items["emotion"]) & set(test.items["emotion"])
        shared = tuple(label for label in scan.labels if label in present)
        if len(shared) < 2:
            raise EmoaugError(f"--test-corpus {cfg.test_corpus}: shares {len(shared)} emotion(s) with "
                              f"--corpus {cfg.corpus} under --labels {cfg.labels}; need at least 2")
        dropped = sorted(set(scan.labels) - set(shared))
        if dropped:
            log.warning("cross-corpus: emotions %s are not in both corpora and are left out of training and test",
                        dropped)

        def restrict(corpus: CorpusScan) -> CorpusScan:
            items = corpus.items[corpus.items["emotion"].isin(shared)].reset_index(drop=True)
            return replace(corpus, items=items, labels=shared)

        return restrict(scan), restrict(test)

    def write_inputs(self, scan: CorpusScan, folds: list[Fold], audit: dict) -> None:
        run = self.run_dir
        io.write_json(run / "config.json", {"fingerprint": self.config.fingerprint(), **self.config.to_dict(),
                                            "preset_settings": self.preset.to_dict(),
                                            # float summation order, hence trained weights, depend on it
                                            "torch_threads": torch.get_num_threads(),
                                            "labels_resolved": list(scan.labels)})
        io.write_csv(run / "manifest.csv", scan.items)
        io.write_json(run / "skipped.json", scan.skipped)
        save_splits(folds, run / "split.json")
        io.write_json(run / "split_audit.json", audit)

    def features(self, scan: CorpusScan) -> dict[str, np.ndarray]:
        cache = FeatureCache(self.cache_root, self.preset) if self.cache_root else None
        return extract_features(scan.items, self.preset, cache=cache, device=self.device, progress=self.progress)

    def fold_data(self, fold: Fold, seed: int, feats: dict[str, np.ndarray], items: pd.DataFrame,
                  labels: tuple[str, ...], cross: tuple[pd.DataFrame, dict[str, np.ndarray]] | None = None
                  ) -> FoldData:
        """Normalise with statistics of the training fold only, then build the three sets (and the
        cross-corpus test set, normalised the same way)."""
        normaliser = Normaliser(self.preset.normalisation).fit([feats[i] for i in fold.train])
        by_id = items.set_index("item_id", drop=False)
        sets = {part: build_featureset({i: feats[i] for i in getattr(fold, part)}, by_id.loc[getattr(fold, part)],
                                       labels, normaliser)
                for part in ("train", "val", "test")}
        test_speakers = set(by_id.loc[fold.test, "speaker"])
        train_speakers = set(by_id.loc[fold.train, "speaker"])
        self.leakage_audit.append(check_scope("normaliser", list(fold.train), train_speakers, fold, test_speakers))
        io.write_json(self.run_dir / "normalisers" / f"fold{fold.index}.json",
                      {"fit_on_items": len(fold.train), **normaliser.to_dict()})
        cross_set = None
        if cross is not None:
            cross_items, cross_feats = cross
            cross_set = build_featureset(cross_feats, cross_items.set_index("item_id", drop=False), labels,
                                         normaliser)
        return FoldData(fold, seed, sets["train"], sets["val"], sets["test"], normaliser, cross=cross_set)

    # ---------------------------------------------------------------- judge (= the real-only classifier)
    def make_classifier(self, seed: int) -> SERClassifier:
        settings = self.config.classifier
        train_config = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                                   weight_decay=settings.weight_decay, patience=settings.patience, seed=seed,
                                   device=str(self.device))
        return SERClassifier(settings.arch, train_config, **settings.arch_kwargs)

    def judge(self, data: FoldData) -> SERClassifier:
        """The real-only classifier of this fold and seed, trained once and kept with the run."""
        if data.judge is None:
            path = self.run_dir / "judges" / f"fold{data.fold.index}_seed{data.seed}.pt"
            if path.exists():
                state = torch.load(path, map_location="cpu", weights_only=True)
                data.judge = SERClassifier.from_state_dict(state, device=str(self.device))
            else:
                start = time.perf_counter()
                data.judge = self.make_classifier(data.seed).fit(data.train, data.val)
                data.judge_seconds = time.perf_counter() - start
                save_torch(path, data.judge.state_dict())
        return data.judge

    # ---------------------------------------------------------------- generators
    def fit_generator(self, name: str, data: FoldData) -> tuple[Generator, float, bool]:
        """Fit on the training fold, or restore a checkpoint made from the very same inputs."""
        cls = self.generator_classes[name]
        config = dict(self.config.generator_configs.get(name, {}))  # profile defaults + user options
        if cls.accepts_seed:
            config["seed"] = data.seed
        gen = make_generator(name, **config).to(self.device)
        path = self.checkpoint_path(name, data, config) if cls.trainable else None
        start = time.perf_counter()
        if path is not None and path.exists():
            gen.restore(data.train, torch.load(path, map_location="cpu", weights_only=True))
            return gen, time.perf_counter() - start, True
        gen.fit(data.train)
        seconds = time.perf_counter() - start
        if path is not None:
            save_torch(path, gen.state_dict())
        return gen, seconds, False

    def checkpoint_path(self, name: str, data: FoldData, config: dict) -> Path | None:
        if self.cache_root is None:
            return None
        key = checkpoint_key(corpus=self.config.corpus, preset=self.preset.fingerprint(), fold=data.fold.index,
                             seed=data.seed, train_ids=data.fold.train, generator=name, config=config)
        return self.cache_root / "checkpoints" / io.safe_name(name) / f"{key}.pt"

    # ---------------------------------------------------------------- cells
    def cell_stem(self, generator: str, fold: Fold, seed: int) -> Path:
        return self.run_dir / "cells" / io.safe_name(generator) / f"fold{fold.index}_seed{seed}"

    def load_cell(self, stem: Path) -> Cell | None:
        meta_path = stem.with_suffix(".json")
        if not meta_path.exists():  # meta is written last: without it the cell is unfinished
            return None
        quality_path = stem.with_name(stem.name + "_quality.csv")
        quality = pd.read_csv(quality_path) if quality_path.exists() else pd.DataFrame()
        return Cell(pd.read_csv(stem.with_suffix(".csv"), dtype={"item_id": str}), quality, io.read_json(meta_path))

    def run_cell(self, generator: str, data: FoldData) -> Cell:
        stem = self.cell_stem(generator, data.fold, data.seed)
        done = self.load_cell(stem)
        if done is not None:
            return done
        judge = self.judge(data)
        gen_cls = self.generator_classes[generator]
        if gen_cls.produces_nothing:
            cell = self.real_only_cell(generator, data, judge)
        else:
            cell = self.augmented_cell(generator, data, judge)
        cell.predictions.insert(0, "generator", generator)
        cell.predictions.insert(2, "seed", data.seed)
        cell.predictions.insert(3, "fold", data.fold.index)
        # Predictions and quality first, meta last: a cell counts as finished only once meta exists.
        io.write_csv(stem.with_suffix(".csv"), cell.predictions)
        if not cell.quality.empty:
            io.write_csv(stem.with_name(stem.name + "_quality.csv"), cell.quality)
        io.write_json(stem.with_suffix(".json"), cell.meta)
        return cell

    def real_only_cell(self, generator: str, data: FoldData, judge: SERClassifier) -> Cell:
        meta = self.cell_meta(generator, data, n_synthetic=0, classifier=judge,
                              seconds={"generator_fit": 0.0, "generate": 0.0,
                                       "classifier": data.judge_seconds})
        return Cell(self.scored(judge, data, MAIN, CROSS), pd.DataFrame(), meta)

    @staticmethod
    def scored(classifier: SERClassifier, data: FoldData, arm: str, cross_arm: str) -> pd.DataFrame:
        """``classifier`` on the test fold (``arm``) and, with a test corpus, on all of it (``cross_arm``)."""
        parts = [with_arm(classifier.predict_items(data.test), arm)]
        if data.cross is not None:
            parts.append(with_arm(classifier.predict_items(data.cross), cross_arm))
        return pd.concat(parts, ignore_index=True)

    def augmented_cell(self, generator: str, data: FoldData, judge: SERClassifier) -> Cell:
        from ..quality import assess_generated

        gen, fit_s, restored = self.fit_generator(generator, data)
        test_speakers = set(data.test.speakers)
        self.leakage_audit.append(check_scope(f"generator {generator!r}", gen.fitted_item_ids, gen.fitted_speakers,
                                              data.fold, test_speakers))
        for part, (ids, speakers) in gen.fitted_parts().items():
            self.leakage_audit.append(check_scope(f"generator {generator!r}: {part}", ids, speakers, data.fold,
                                                  test_speakers))
        want = allocate_synthetic(data.train.class_counts(), round(self.config.synthetic_ratio * len(data.train)))
        start = time.perf_counter()
        synthetic = gen.generate(want, seed=data.seed)
        generate_s = time.perf_counter() - start

        quality = assess_generated(judge, synthetic, data.train, data.test, data.normaliser, data.train.labels)
        quality.insert(0, "generator", generator)
        quality.insert(1, "seed", data.seed)
        quality.insert(2, "fold", data.fold.index)
        self.export_examples(generator, data, synthetic)

        start = time.perf_counter()
        clf = self.make_classifier(data.seed).fit(FeatureSet.concat([data.train, synthetic]), data.val)
        parts = [self.scored(clf, data, MAIN, CROSS)]
        seconds = {"generator_fit": fit_s, "generate": generate_s, "classifier": time.perf_counter() - start}
        if "augment" in self.config.protocols:
            start = time.perf_counter()
            syn_only = self.synthetic_only_set(gen, synthetic, data)
            syn_clf = self.make_classifier(data.seed).fit(syn_only, data.val)
            parts.append(self.scored(syn_clf, data, SYNTHETIC_ONLY, CROSS_SYNTHETIC_ONLY))
            seconds["synthetic_only"] = time.perf_counter() - start
        if "clarity" in self.config.protocols:
            start = time.perf_counter()
            parts.append(clarity_predictions(gen, judge, data))
            seconds["clarity"] = time.perf_counter() - start
        predictions = pd.concat(parts, ignore_index=True)
        meta = self.cell_meta(generator, data, n_synthetic=len(synthetic), classifier=clf, seconds=seconds)
        meta.update({"generator_config": gen.get_config(), "generator_restored_from_checkpoint": restored,
                     "generator_fitted_items": len(gen.fitted_item_ids),
                     "synthetic_per_class": want,
                     "items_per_second": len(synthetic) / generate_s if generate_s > 0 else None,
                     "generator_history_tail": list(getattr(gen, "history", []))[-5:]})
        return Cell(predictions, quality, meta)

    @staticmethod
    def synthetic_only_set(gen: Generator, synthetic: FeatureSet, data: FoldData) -> FeatureSet:
        """Synthetic rows in the real training fold's class proportions and size (Malik et al.'s synthetic-only
        arm). The augmentation set fills the smallest classes first and may lack the largest, so rows are
        taken from it per class and any shortfall is generated anew."""
        want = data.train.class_counts()
        have = synthetic.label_names()
        keep = [i for label in synthetic.labels for i in [k for k, h in enumerate(have) if h == label][:want[label]]]
        short = {label: want[label] - min(want[label], have.count(label)) for label in want}
        parts = [synthetic.subset(keep)] if keep else []
        if sum(short.values()):
            parts.append(gen.generate(short, seed=data.seed + SYNTHETIC_ONLY_SEED_OFFSET))
        return FeatureSet.concat(parts)

    def cell_meta(self, generator: str, data: FoldData, *, n_synthetic: int, classifier: SERClassifier,
                  seconds: dict) -> dict:
        return {"generator": generator, "seed": data.seed, "fold": data.fold.index,
                "n_train_rows": len(data.train), "n_synthetic_rows": n_synthetic, "n_val_rows": len(data.val),
                "n_test_rows": len(data.test), "seconds": seconds, "classifier_history": classifier.history}

    def export_examples(self, generator: str, data: FoldData, synthetic: FeatureSet) -> None:
        """Listenable wavs and a real-vs-generated grid, for the first fold and seed only."""
        if data.fold.index != 0 or data.seed != self.config.seed or generator in data.exported:
            return
        from ..reports.listen import export_audio, spectrogram_grid

        data.exported.add(generator)
        name = io.safe_name(generator)
        profile = get_profile(self.config.profile)
        export_audio(synthetic, data.normaliser, self.preset, self.run_dir / "audio" / name,
                     n_per_emotion=profile.export_per_emotion, n_iter=profile.griffin_lim_iters)
        spectrogram_grid(data.train, synthetic, self.run_dir / "figures" / f"real_vs_{name}.png",
                         n_per_emotion=1, title=f"{self.config.corpus}: real (train fold) vs {generator}")

    # ---------------------------------------------------------------- main
    def run(self) -> RunResult:
        cfg = self.config
        scan = self.load()
        test_scan = None
        if cfg.test_corpus:
            scan, test_scan = self.load_test_corpus(scan)
        folds = make_splits(scan.items, cfg.split, n_folds=cfg.n_folds, seed=cfg.seed)
        audit = audit_splits(scan.items, folds, cfg.split)
        self.write_inputs(scan, folds, audit)
        if cfg.split not in SPEAKER_INDEPENDENT:
            log.warning("split %r is SPEAKER-DEPENDENT: test speakers also appear in training", cfg.split)
        feats = self.features(scan)
        cross = None
        if test_scan is not None:
            io.write_csv(self.run_dir / "test_manifest.csv", test_scan.items)
            io.write_json(self.run_dir / "test_skipped.json", test_scan.skipped)
            cross = (test_scan.items, self.features(test_scan))

        seeds = [cfg.seed + k for k in range(cfg.n_seeds)]
        n_cells = len(seeds) * len(folds) * len(cfg.generators)
        log.info("run directory %s: %d items, %d speakers, %d folds x %d seeds x %d generators = %d cells",
                 self.run_dir, len(scan.items), scan.n_speakers, len(folds), len(seeds), len(cfg.generators),
                 n_cells)
        cells: list[Cell] = []
        for fold in folds:
            for seed in seeds:
                data = self.fold_data(fold, seed, feats, scan.items, scan.labels, cross)
                for generator in cfg.generators:
                    start = time.perf_counter()
                    cell = self.run_cell(generator, data)
                    cells.append(cell)
                    main = cell.predictions[cell.predictions["arm"] == MAIN]
                    ua = metrics.classification_metrics(main["y_true"], main["y_pred"], scan.labels)["ua"]
                    log.info("[%d/%d] fold %d seed %d %-12s UA %.3f (%.1fs)", len(cells), n_cells, fold.index,
                             seed, generator, ua, time.perf_counter() - start)
        io.write_json(self.run_dir / "leakage_audit.json", {"checks": self.leakage_audit, "passed": True})
        return self.finish(cells, scan.labels)

    def finish(self, cells: list[Cell], labels: tuple[str, ...]) -> RunResult:
        """Turn stored cells into tidy metric tables and write them next to the cells."""
        predictions = pd.concat([c.predictions for c in cells], ignore_index=True)
        quality_parts = [c.quality for c in cells if not c.quality.empty]
        quality = pd.concat(quality_parts, ignore_index=True) if quality_parts else pd.DataFrame(
            columns=["generator", "seed", "fold", "emotion", "measure", "value"])
        timings = pd.DataFrame([{"generator": c.meta["generator"], "seed": c.meta["seed"], "fold": c.meta["fold"],
                                 **{f"{k}_s": v for k, v in c.meta["seconds"].items()},
                                 "n_synthetic_rows": c.meta["n_synthetic_rows"]} for c in cells])
        fold_metrics = fold_level_metrics(predictions, labels)
        summary = metrics.summarise(predictions, labels, by=("generator", "arm"))
        all_confusions = {key: metrics.confusion_percent(p["y_true"], p["y_pred"], labels)
                          for key, p in predictions.groupby(["generator", "arm"], sort=False)}
        confusions = {g: table for (g, arm), table in all_confusions.items() if arm == MAIN}
        arm_confusions = {key: table for key, table in all_confusions.items() if key[1] != MAIN}
        run = self.run_dir
        io.write_csv(run / "predictions.csv", predictions)
        io.write_csv(run / "fold_metrics.csv", fold_metrics)
        io.write_csv(run / "summary.csv", summary)
        io.write_csv(run / "quality.csv", quality)
        io.write_csv(run / "timings.csv", timings)
        generators = generator_summary(summary[summary["arm"] == MAIN], quality, timings,
                                       fold_metrics[fold_metrics["arm"] == MAIN])
        io.write_csv(run / "generators.csv", generators)
        comparisons = arm_comparisons(fold_metrics)
        io.write_csv(run / "comparisons.csv", comparisons)
        for generator, table in confusions.items():
            io.write_csv(run / "confusion" / f"{io.safe_name(generator)}.csv", table.reset_index(names="true"))
        for (generator, arm), table in arm_confusions.items():
            io.write_csv(run / "confusion" / arm / f"{io.safe_name(generator)}.csv", table.reset_index(names="true"))
        return RunResult(run, self.config, labels, predictions, fold_metrics, summary, confusions, quality, timings,
                         generators, arm_confusions, comparisons)


STORED_RESULTS = ("predictions.csv", "fold_metrics.csv", "summary.csv", "quality.csv", "timings.csv", "generators.csv")


def load_result(run_dir: Path) -> RunResult:
    """A finished run's results from its folder alone (what ``report`` re-renders; nothing is recomputed)."""
    run_dir = Path(run_dir)
    missing = [name for name in ("config.json", *STORED_RESULTS) if not (run_dir / name).exists()]
    if missing:
        raise EmoaugError(f"{run_dir}: no stored results ({', '.join(missing)} missing); "
                          "run the benchmark to the end first")
    stored = io.read_json(run_dir / "config.json")
    config = run_config_from_dict(stored)
    labels = tuple(stored["labels_resolved"])
    frames = {name: pd.read_csv(run_dir / name, dtype={"item_id": str}) for name in STORED_RESULTS}
    for name in ("predictions.csv", "fold_metrics.csv", "summary.csv"):
        if "arm" not in frames[name].columns:  # runs stored before arms existed had the main arm only
            frames[name].insert(1, "arm", MAIN)

    def confusion(path: Path) -> pd.DataFrame:
        return pd.read_csv(path).set_index("true").rename_axis(columns="predicted")

    confusions, arm_confusions = {}, {}
    for generator in frames["generators.csv"]["generator"]:
        confusions[generator] = confusion(run_dir / "confusion" / f"{io.safe_name(generator)}.csv")
        for arm in ARMS[1:]:
            path = run_dir / "confusion" / arm / f"{io.safe_name(generator)}.csv"
            if path.exists():
                arm_confusions[(generator, arm)] = confusion(path)
    comparisons_path = run_dir / "comparisons.csv"  # absent from runs stored before it existed
    comparisons = pd.read_csv(comparisons_path) if comparisons_path.exists() else pd.DataFrame()
    return RunResult(run_dir, config, labels, frames["predictions.csv"], frames["fold_metrics.csv"],
                     frames["summary.csv"], confusions, frames["quality.csv"], frames["timings.csv"],
                     frames["generators.csv"], arm_confusions, comparisons)


def run_config_from_dict(stored: dict) -> RunConfig:
    values = {f.name: stored[f.name] for f in fields(RunConfig) if f.name in stored}
    if values.get("classifier") is not None:
        values["classifier"] = ClassifierSettings(**values["classifier"])
    return RunConfig(**values)


def save_torch(path: Path, state: dict) -> None:
    """Atomic ``torch.save`` of plain tensors and primitives (loadable with ``weights_only=True``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def fold_level_metrics(predictions: pd.DataFrame, labels: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    keys = ["generator", "arm", "seed", "fold"]
    for (generator, arm, seed, fold), part in predictions.groupby(keys, sort=False):
        values = metrics.classification_metrics(part["y_true"], part["y_pred"], labels)
        rows += [{"generator": generator, "arm": arm, "seed": seed, "fold": fold, "metric": k, "value": v}
                 for k, v in values.items()]
    return pd.DataFrame(rows)


def with_arm(predictions: pd.DataFrame, arm: str) -> pd.DataFrame:
    predictions.insert(0, "arm", arm)
    return predictions


def clarity_predictions(gen: Generator, judge: SERClassifier, data: FoldData) -> pd.DataFrame:
    """The real-only judge on generated versions of the test fold (Kim & Lee's "generated" condition).

    A generator that can transform rows enhances each test utterance twice: under its true emotion (the
    paper's protocol; the label then reaches the judge through the input) and under the judge's own
    prediction for the original utterance (no label enters). Both are scored against the true label. A
    generator that only samples is scored on class-conditional samples, as many per class as the test fold.
    """
    test = data.test
    if not gen.transforms_rows:
        sampled = gen.generate(test.class_counts(), seed=data.seed + CLARITY_SEED_OFFSET)
        return with_arm(judge.predict_items(sampled), CLARITY_SAMPLED)
    original = judge.predict_items(test).set_index("item_id")["y_pred"]
    conditions = {CLARITY_TRUE: test.label_names(), CLARITY_PREDICTED: [original[i] for i in test.item_ids]}
    parts = []
    for arm, condition in conditions.items():
        enhanced = gen.transform(test, condition, seed=data.seed + CLARITY_SEED_OFFSET)
        # scored per source utterance against its true label: same ids, segments and labels as the test fold
        scored = FeatureSet(x=enhanced.x, y=test.y, labels=test.labels, item_ids=test.item_ids,
                            speakers=test.speakers)
        parts.append(with_arm(judge.predict_items(scored), arm))
    return pd.concat(parts, ignore_index=True)
