"""The benchmark loop: corpus -> features -> folds -> (generator, classifier) cells -> tidy results.

Every finished (seed, fold, generator) cell is written atomically under ``<run_dir>/cells`` before the
next one starts, so an interrupted run loses nothing and a re-run with the same arguments reuses them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import metrics
from ..classifiers import SERClassifier, TrainConfig
from ..config import RunConfig
from ..datasets import load_corpus
from ..datasets.base import CorpusScan
from ..devices import resolve_device
from ..errors import EmoaugError, LeakageError
from ..features import FeatureCache, Normaliser, build_featureset, extract_features, get_preset
from ..featureset import FeatureSet
from ..generators import get_generator_class, make_generator
from ..splits import SPEAKER_INDEPENDENT, Fold, audit_splits, make_splits, save_splits
from . import io

log = logging.getLogger("emoaug")

RESULT_FILES = ("predictions.csv", "fold_metrics.csv", "summary.csv")


@dataclass
class RunResult:
    run_dir: Path
    config: RunConfig
    labels: tuple[str, ...]
    predictions: pd.DataFrame  # one row per (generator, seed, fold, test item)
    fold_metrics: pd.DataFrame  # one row per (generator, seed, fold, metric)
    summary: pd.DataFrame  # one row per (generator, metric): pooled, fold_mean, fold_std
    confusions: dict[str, pd.DataFrame]  # generator -> row-normalised percent


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


def check_generator_scope(name: str, seen_ids: list[str], fold: Fold) -> None:
    """Fail the run if a generator saw anything but training-fold items."""
    held_out = set(fold.val) | set(fold.test)
    leaked = sorted(set(seen_ids) & held_out)
    if leaked:
        raise LeakageError(
            f"generator {name!r} was fit on {len(leaked)} validation/test items of fold {fold.index} "
            f"(e.g. {leaked[0]})"
        )
    unknown = sorted(set(seen_ids) - set(fold.train))
    if unknown:
        raise LeakageError(f"generator {name!r} saw items outside fold {fold.index}'s training set (e.g. {unknown[0]})")


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

    def write_inputs(self, scan: CorpusScan, folds: list[Fold], audit: dict) -> None:
        run = self.run_dir
        io.write_json(run / "config.json", {"fingerprint": self.config.fingerprint(), **self.config.to_dict(),
                                            "preset_settings": self.preset.to_dict(),
                                            "labels_resolved": list(scan.labels)})
        io.write_csv(run / "manifest.csv", scan.items)
        io.write_json(run / "skipped.json", scan.skipped)
        save_splits(folds, run / "split.json")
        io.write_json(run / "split_audit.json", audit)

    def features(self, scan: CorpusScan) -> dict[str, np.ndarray]:
        cache_root = self.config.cache_dir
        cache = FeatureCache(cache_root, self.preset) if cache_root != "off" else None
        return extract_features(scan.items, self.preset, cache=cache, device=str(self.device),
                                progress=self.progress)

    # ---------------------------------------------------------------- cells
    def cell_paths(self, generator: str, fold: Fold, seed: int) -> tuple[Path, Path]:
        stem = self.run_dir / "cells" / io.safe_name(generator) / f"fold{fold.index}_seed{seed}"
        return stem.with_suffix(".csv"), stem.with_suffix(".json")

    def run_cell(self, generator: str, fold: Fold, seed: int, data: dict[str, FeatureSet]) -> pd.DataFrame:
        pred_path, meta_path = self.cell_paths(generator, fold, seed)
        if pred_path.exists() and meta_path.exists():
            return pd.read_csv(pred_path, dtype={"item_id": str})
        train, val, test = data["train"], data["val"], data["test"]
        torch.manual_seed(seed)
        np.random.seed(seed)

        start = time.perf_counter()
        gen = make_generator(generator, **self.config.generator_configs.get(generator, {}))
        gen.fit(train)
        fit_s = time.perf_counter() - start
        check_generator_scope(generator, gen.fitted_item_ids, fold)

        start = time.perf_counter()
        n_synthetic = 0
        fit_set = train
        if not gen.produces_nothing and self.config.synthetic_ratio > 0:
            want = allocate_synthetic(train.class_counts(), round(self.config.synthetic_ratio * len(train)))
            synthetic = gen.generate(want, seed=seed)
            n_synthetic = len(synthetic)
            fit_set = FeatureSet.concat([train, synthetic])
        generate_s = time.perf_counter() - start

        start = time.perf_counter()
        clf = self.make_classifier(seed).fit(fit_set, val)
        items = clf.predict_items(test)
        train_s = time.perf_counter() - start

        items.insert(0, "generator", generator)
        items.insert(1, "seed", seed)
        items.insert(2, "fold", fold.index)
        meta = {
            "generator": generator, "seed": seed, "fold": fold.index,
            "generator_config": gen.get_config(),
            "generator_fitted_items": len(gen.fitted_item_ids),
            "n_train_rows": len(train), "n_synthetic_rows": n_synthetic, "n_val_rows": len(val),
            "n_test_items": int(items.shape[0]),
            "seconds": {"generator_fit": fit_s, "generate": generate_s, "classifier": train_s},
            "history": clf.history,
        }
        # Predictions first, meta last: a cell counts as finished only once both exist.
        io.write_csv(pred_path, items)
        io.write_json(meta_path, meta)
        return items

    def make_classifier(self, seed: int) -> SERClassifier:
        settings = self.config.classifier
        train_config = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                                   weight_decay=settings.weight_decay, patience=settings.patience, seed=seed,
                                   device=str(self.device))
        return SERClassifier(settings.arch, train_config, **settings.arch_kwargs)

    def fold_data(self, fold: Fold, feats: dict[str, np.ndarray], items: pd.DataFrame,
                  labels: tuple[str, ...]) -> tuple[dict[str, FeatureSet], Normaliser]:
        """Normalise with statistics of the training fold only, then build the three sets."""
        normaliser = Normaliser(self.preset.normalisation).fit([feats[i] for i in fold.train])
        by_id = items.set_index("item_id", drop=False)
        data = {}
        for part in ("train", "val", "test"):
            ids = getattr(fold, part)
            data[part] = build_featureset({i: feats[i] for i in ids}, by_id.loc[ids], labels, normaliser)
        return data, normaliser

    # ---------------------------------------------------------------- main
    def run(self) -> RunResult:
        cfg = self.config
        scan = self.load()
        folds = make_splits(scan.items, cfg.split, n_folds=cfg.n_folds, seed=cfg.seed)
        audit = audit_splits(scan.items, folds, cfg.split)
        self.write_inputs(scan, folds, audit)
        if cfg.split not in SPEAKER_INDEPENDENT:
            log.warning("split %r is SPEAKER-DEPENDENT: test speakers also appear in training", cfg.split)
        feats = self.features(scan)

        seeds = [cfg.seed + k for k in range(cfg.n_seeds)]
        n_cells = len(seeds) * len(folds) * len(cfg.generators)
        log.info("run directory %s: %d items, %d speakers, %d folds x %d seeds x %d generators = %d cells",
                 self.run_dir, len(scan.items), scan.n_speakers, len(folds), len(seeds), len(cfg.generators),
                 n_cells)
        parts = []
        done = 0
        for fold in folds:
            data, normaliser = self.fold_data(fold, feats, scan.items, scan.labels)
            io.write_json(self.run_dir / "normalisers" / f"fold{fold.index}.json",
                          {"fit_on_items": len(fold.train), **normaliser.to_dict()})
            for seed in seeds:
                for generator in cfg.generators:
                    start = time.perf_counter()
                    cell = self.run_cell(generator, fold, seed, data)
                    done += 1
                    ua = metrics.classification_metrics(cell["y_true"], cell["y_pred"], scan.labels)["ua"]
                    log.info("[%d/%d] fold %d seed %d %-12s UA %.3f (%.1fs)", done, n_cells, fold.index, seed,
                             generator, ua, time.perf_counter() - start)
                    parts.append(cell)
        return self.finish(pd.concat(parts, ignore_index=True), scan.labels)

    def finish(self, predictions: pd.DataFrame, labels: tuple[str, ...]) -> RunResult:
        """Turn stored predictions into tidy metric tables and write them next to the cells."""
        fold_metrics = fold_level_metrics(predictions, labels)
        summary = metrics.summarise(predictions, labels, by=("generator",))
        confusions = {g: metrics.confusion_percent(p["y_true"], p["y_pred"], labels)
                      for g, p in predictions.groupby("generator", sort=False)}
        run = self.run_dir
        io.write_csv(run / "predictions.csv", predictions)
        io.write_csv(run / "fold_metrics.csv", fold_metrics)
        io.write_csv(run / "summary.csv", summary)
        for generator, table in confusions.items():
            io.write_csv(run / "confusion" / f"{io.safe_name(generator)}.csv", table.reset_index(names="true"))
        return RunResult(run, self.config, labels, predictions, fold_metrics, summary, confusions)


def fold_level_metrics(predictions: pd.DataFrame, labels: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for (generator, seed, fold), part in predictions.groupby(["generator", "seed", "fold"], sort=False):
        values = metrics.classification_metrics(part["y_true"], part["y_pred"], labels)
        rows += [{"generator": generator, "seed": seed, "fold": fold, "metric": k, "value": v}
                 for k, v in values.items()]
    return pd.DataFrame(rows)
