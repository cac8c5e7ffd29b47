"""The orchestrator: inputs -> plan -> store lookup -> executor -> run folder.

1. Load the corpus (and the cross-corpus test corpus), make the folds, extract features (cached).
2. Plan every judge and cell with its content key (:mod:`emoaug.bench.plan`).
3. Take what the cell store already holds; hand the rest to an executor (:mod:`emoaug.bench.executors`),
   which computes it anywhere and returns each result here, where it is stored before the next arrives:
   an interrupted run loses nothing, and a re-run or another run with overlapping cells reuses them.
4. Assemble the run folder: inputs, the cells it used (``cells.json`` and a copy of each), the leakage
   audit gathered from the cells, example rows for listening, and the tidy results
   (:mod:`emoaug.bench.results`). Rendering and MLflow happen afterwards, in the driver only.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from .. import metrics
from .. import storage as io
from ..storage import stable_hash
from ..config import Execution, Experiment, RunConfig
from ..classifiers.classic import ClassicSettings, extract_functionals, settings_for
from ..datasets import load_corpus, skip_entry, split_skipped, summarise_skipped
from ..datasets.base import CorpusScan
from ..errors import BadAudioError, EmoaugError, LeakageError
from ..experiments import experiment_toml
from ..features import FeatureCache, MelPreset, default_cache_root, extract_features, get_preset
from ..near_duplicates import METHOD as NEAR_DUPLICATE_METHOD
from ..near_duplicates import THRESHOLD as NEAR_DUPLICATE_THRESHOLD
from ..near_duplicates import (audit_cross_corpus, audit_near_duplicates, cross_corpus_pairs, leak_message,
                               near_duplicate_pairs)
from ..speaker_norm import mel_statistics, standardise_mels, standardise_vectors, warn_small_speakers
from ..splits import SPEAKER_INDEPENDENT, TooFewTrainingSpeakers, audit_splits, make_splits, save_splits
from .arms import MAIN
from .cells import CellResult, JudgeResult
from .executors import Jobs, make_executor
from .parallelism import Parallelism
from .plan import CellSpec, Plan, Workload, fold_content, plan_run
from .reference import (ReferenceInputs, ReferenceResult, ReferenceSpec, plan_references, reference_inputs,
                        reference_predictions)
from .results import FINISHED, RunResult, assemble_results
from .store import CellStore
from .timings import CellActivity, RunTimings

log = logging.getLogger("emoaug")

#: what the classic reference chose per fold (model by the size rule, C and how it was chosen)
REFERENCE_FOLDS = "reference_folds.json"
#: the experiment this run resolved to, as a file that runs it again (emoaug.experiments)
EXPERIMENT_FILE = "experiment.toml"
#: the one copy of a cell's examples a run keeps (first fold, base seed): reports render audio from it
EXAMPLES_DIR = "examples"


def default_run_dir(config: RunConfig) -> Path:
    """``--out``/``--run-name``, else ``--out``/<corpus>-<profile>-<the experiment's fingerprint>."""
    experiment, execution = config.experiment, config.execution
    name = execution.run_name or f"{experiment.corpus}-{experiment.profile}-{experiment.fingerprint()[:10]}"
    return Path(execution.out_dir) / name


def cache_root(execution: Execution) -> Path | None:
    cache = execution.cache_dir
    return None if cache == "off" else Path(cache) if cache else default_cache_root()


def store_root(execution: Execution, run_dir: Path) -> Path:
    """``--store``, else ``<cache>/store``; with the cache off, a store inside the run folder."""
    if execution.store_dir:
        return Path(execution.store_dir)
    root = cache_root(execution)
    return root / "store" if root is not None else run_dir / "store"


# ------------------------------------------------------------------------------------------------ inputs
def read_corpus(experiment: Experiment, name: str, data_root: str | None, progress: bool) -> CorpusScan:
    return load_corpus(name, data_root, labels=experiment.labels, on_bad_file=experiment.on_bad_file, progress=progress,
                       min_duration=experiment.min_duration, max_duration=experiment.max_duration,
                       follow_links=experiment.follow_links)


def check_label_set_covered(scan: CorpusScan, experiment: Experiment) -> None:
    """Tables state "UA over [labels]": an emotion without items would make that claim false."""
    missing = scan.missing
    if missing:
        counts = scan.items["emotion"].value_counts()
        found = ", ".join(f"{label} {counts.get(label, 0)}" for label in scan.labels)
        raise EmoaugError(f"--labels {experiment.labels}: corpus {scan.corpus!r} under {scan.root} has no usable "
                          f"{', '.join(missing)} items ({found}); choose a label set it covers, e.g. --labels all")


def warn_skipped(scan: CorpusScan) -> None:
    """A few summary lines (every path is in skipped.json): bad files as warnings, other files as info."""
    notable, other_files = split_skipped(scan.skipped)
    for line in summarise_skipped(notable):
        log.warning("%s: %s", scan.corpus, line)
    for line in summarise_skipped(other_files):
        log.info("%s: %s", scan.corpus, line)


def drop_failed_items(scan: CorpusScan, failures: list[BadAudioError], experiment: Experiment) -> CorpusScan:
    """Files that failed in the front end leave the manifest before any fold is made."""
    if not failures:
        return scan
    if experiment.on_bad_file == "fail":
        raise failures[0]
    failed_paths = {err.path for err in failures}
    items = scan.items[~scan.items["path"].isin(failed_paths)].reset_index(drop=True)
    entries = [skip_entry(err.path, err.reason, "features") for err in failures]
    return replace(scan, items=items, skipped=scan.skipped + entries)


def load_test_corpus(experiment: Experiment, scan: CorpusScan, progress: bool) -> tuple[CorpusScan, CorpusScan]:
    """The cross protocol's test corpus; both corpora are cut to the emotions they share, since the
    classifier can only be tested on classes it was trained on."""
    test = read_corpus(experiment, experiment.test_corpus, experiment.test_data_root, progress)
    overlap = set(scan.items["item_id"]) & set(test.items["item_id"])
    if overlap:  # e.g. the same corpus twice: its training items would be scored as unseen test items
        raise EmoaugError(f"--test-corpus {experiment.test_corpus}: {len(overlap)} item(s) are also in --corpus "
                          f"{experiment.corpus} (e.g. {sorted(overlap)[0]}); cross-corpus testing needs another "
                          "corpus")
    present = set(scan.items["emotion"]) & set(test.items["emotion"])
    shared = tuple(label for label in scan.labels if label in present)
    if len(shared) < 2:
        raise EmoaugError(f"--test-corpus {experiment.test_corpus}: shares {len(shared)} emotion(s) with "
                          f"--corpus {experiment.corpus} under --labels {experiment.labels}; need at least 2")
    dropped = sorted(set(scan.labels) - set(shared))
    if dropped:
        log.warning("cross-corpus: emotions %s are not in both corpora and are left out of training and test",
                    dropped)

    def restrict(corpus: CorpusScan) -> CorpusScan:
        items = corpus.items[corpus.items["emotion"].isin(shared)].reset_index(drop=True)
        return replace(corpus, items=items, labels=shared)

    return restrict(scan), restrict(test)


def features_of(scan: CorpusScan, config: RunConfig, preset: MelPreset,
                progress: bool) -> tuple[CorpusScan, dict]:
    """(the scan without files the front end could not use, item_id -> features)."""
    root = cache_root(config.execution)
    cache = FeatureCache(root, preset) if root else None
    if cache is not None:
        cache.clean()
    failures: list[BadAudioError] = []
    # with the cache on, features stay on disk and are read where and when a fold needs them
    features = extract_features(scan.items, preset, cache=cache, device=config.execution.device,
                                progress=progress, failures=failures, lazy=cache is not None)
    return drop_failed_items(scan, failures, config.experiment), features


def functionals_of(scan: CorpusScan, config: RunConfig) -> tuple[CorpusScan, dict | None]:
    """(the scan without files openSMILE could not use, item_id -> functionals); None with --reference off."""
    settings = settings_for(config.experiment.reference)
    if settings is None:
        return scan, None
    failures: list[BadAudioError] = []
    # spread over as many processes as the executor will run cells in (openSMILE is one thread per file)
    execution = config.execution
    jobs = execution.jobs if execution.executor in ("process", "ray") else 1
    root = cache_root(execution)
    functionals = extract_functionals(scan.items, settings.feature_set, cache_root=root, failures=failures,
                                      jobs=jobs, lazy=root is not None)
    return drop_failed_items(scan, failures, config.experiment), functionals


def by_speaker(items: pd.DataFrame, features: dict, functionals: dict | None) -> tuple[dict, dict | None, dict]:
    """(--speaker-norm) the log-mel rows and functionals standardised per speaker, and each speaker's statistics."""
    warn_small_speakers(items)
    stats = mel_statistics(features, items)
    standardised = standardise_mels(features, items, stats)
    return standardised, None if functionals is None else standardise_vectors(functionals, items), stats


def prepare_workload(config: RunConfig, run_dir: Path, progress: bool = False,
                     timings: RunTimings | None = None) -> tuple[Workload, CorpusScan, RunConfig]:
    """Corpus, features and folds, with the run folder's input records written on the way. Every file
    that fails, at any stage, is skipped before the folds are made. Returns the config the folds were made
    with (:func:`splits_for` may hold out fewer validation speakers)."""
    timings = timings or RunTimings()
    experiment = config.experiment
    with timings.phase("scan"):
        scan, test_scan = read_corpus(experiment, experiment.corpus, experiment.data_root, progress), None
        check_label_set_covered(scan, experiment)
        if experiment.test_corpus:
            scan, test_scan = load_test_corpus(experiment, scan, progress)
    timings.counts["items"] = len(scan.items)
    preset = get_preset(experiment.preset)
    with timings.phase("features"):
        scan, features = features_of(scan, config, preset, progress)
    with timings.phase("functionals"):
        scan, functionals = functionals_of(scan, config)
    with timings.phase("splits"):
        check_label_set_covered(scan, experiment)
        warn_skipped(scan)
        speaker_stats = None
        raw_features = features  # the near-duplicate audits read unnormalised rows
        copies = near_duplicates_of(scan.items, features, preset, config)
        if experiment.speaker_norm:
            features, functionals, speaker_stats = by_speaker(scan.items, features, functionals)
        folds, experiment = splits_for(scan.items, experiment)
        config = replace(config, experiment=experiment)
        audit = audit_splits(scan.items, folds, experiment.split)
        audit["near_duplicates"] = check_near_duplicates(copies, scan.items, folds, preset, experiment, audit,
                                                         run_dir)
        if experiment.split not in SPEAKER_INDEPENDENT:
            log.warning("split %r is SPEAKER-DEPENDENT: test speakers also appear in training", experiment.split)
        warn_absent_emotions(scan.items, audit)
    workload = Workload(preset=preset, labels=scan.labels, items=scan.items, folds=folds, features=features,
                        device=config.execution.device, functionals=functionals, speaker_stats=speaker_stats)
    if test_scan is not None:
        with timings.phase("features"):
            test_scan, workload.cross_features = features_of(test_scan, config, preset, progress)
        warn_skipped(test_scan)
        with timings.phase("splits"):
            check_cross_corpus_copies(scan.items, raw_features, test_scan, workload.cross_features, preset,
                                      experiment, audit, run_dir)
        if experiment.speaker_norm:  # the test corpus's speakers standardised with their own statistics
            workload.cross_features, _, _ = by_speaker(test_scan.items, workload.cross_features, None)
        workload.cross_items = test_scan.items
    with timings.phase("splits"):
        write_inputs(run_dir, config, workload, scan, test_scan, audit)
    return workload, scan, config


def near_duplicates_of(items: pd.DataFrame, features, preset: MelPreset, config: RunConfig) -> pd.DataFrame:
    """Near-duplicate pairs of the corpus (emoaug.near_duplicates); under a speaker-independent split only
    pairs of different speakers can straddle a partition, so only those are compared. Kept in the feature
    cache, keyed by the items' content and speakers, so that a re-run does not search again."""
    separate = config.experiment.split in SPEAKER_INDEPENDENT
    root = cache_root(config.execution)
    identity = sorted(map(list, items.reindex(columns=["item_id", "sha1", "speaker"]).astype(str).to_numpy()))
    key = stable_hash({"method": NEAR_DUPLICATE_METHOD, "threshold": NEAR_DUPLICATE_THRESHOLD, "separate": separate,
                       "preset": preset.fingerprint(), "items": identity})
    path = None if root is None else root / "near_duplicates" / f"{key}.json"
    if path is not None and path.is_file():
        try:
            stored = io.read_json(path)
            pairs = pd.DataFrame(stored["pairs"], columns=["item_a", "item_b", "similarity"])
            pairs.attrs["too_short"] = int(stored["too_short"])
            return pairs
        except (OSError, ValueError, KeyError, TypeError):
            pass  # damaged: searched again and rewritten
    pairs = near_duplicate_pairs(features, items, preset, separate_speakers=separate)
    if path is not None:
        io.write_json(path, {"pairs": pairs.to_dict("records"), "too_short": pairs.attrs.get("too_short", 0)})
    return pairs


def check_near_duplicates(pairs: pd.DataFrame, items: pd.DataFrame, folds: list, preset: MelPreset,
                          experiment: Experiment, audit: dict, run_dir: Path) -> dict:
    """The split audit's near-duplicate section; a run whose test items have near-copies in training stops
    as leakage (split_audit.json written first, with every pair) unless --allow-near-duplicates."""
    section = audit_near_duplicates(pairs, items, folds, preset=preset, separate_speakers=experiment.split in
                                    SPEAKER_INDEPENDENT, allowed=experiment.allow_near_duplicates)
    if section["test_items_with_copies"] and not experiment.allow_near_duplicates:
        io.write_json(run_dir / "split_audit.json", {**audit, "near_duplicates": section})
        raise LeakageError(leak_message(section))
    if section["test_items_with_copies"]:
        log.warning("--allow-near-duplicates: %s test item(s) have near-copies in training or validation "
                    "(split_audit.json); every table is flagged", section["test_items_with_copies"])
    return section


def check_cross_corpus_copies(train_items: pd.DataFrame, train_features, test_scan: CorpusScan, test_features,
                              preset: MelPreset, experiment: Experiment, audit: dict, run_dir: Path) -> None:
    """(cross protocol) test-corpus items with a near-copy in the training corpus: added to the audit's
    near-duplicate section; the run stops on any unless --allow-near-duplicates."""
    pairs = cross_corpus_pairs(train_features, train_items, test_features, test_scan.items, preset)
    section = audit["near_duplicates"]
    section["cross_corpus"] = audit_cross_corpus(pairs, train_items, test_scan.items)
    section["test_items_with_copies"] += section["cross_corpus"]["test_items_with_copies"]
    if section["cross_corpus"]["test_items_with_copies"] and not experiment.allow_near_duplicates:
        io.write_json(run_dir / "split_audit.json", audit)
        raise LeakageError(leak_message(section))


def splits_for(items: pd.DataFrame, experiment: Experiment) -> tuple[list, Experiment]:
    """The folds, and the experiment they were made with. When the validation-speaker count is the split's
    default (no --val-speakers) and a fold of this corpus has too few training speakers for it, fewer are held
    out (down to 0), said in one line; the returned experiment carries that count, so that the cells' keys,
    config.json and the tables all name the settings that were trained. An explicit --val-speakers is never
    changed."""
    settings = experiment.classifier
    asked = settings.val_speakers if settings else None
    try:
        return folds_of(items, experiment, asked), experiment
    except TooFewTrainingSpeakers as err:
        if settings is None or asked is not None or err.train_speakers < 1:
            raise
        train_speakers = err.train_speakers
    fewer = train_speakers - 1
    log.info("validation speakers: %d per fold (a fold of this corpus has only %d training speaker(s), too few for "
             "the %s profile's default; --val-speakers N sets it)", fewer, train_speakers, experiment.profile)
    experiment = replace(experiment, classifier=replace(settings, val_speakers=fewer))
    return folds_of(items, experiment, fewer), experiment


def folds_of(items: pd.DataFrame, experiment: Experiment, val_speakers: int | None) -> list:
    return make_splits(items, experiment.split, n_folds=experiment.n_folds, seed=experiment.seed,
                       val_speakers=val_speakers)


def write_inputs(run_dir: Path, config: RunConfig, workload: Workload, scan: CorpusScan,
                 test_scan: CorpusScan | None, audit: dict) -> None:
    io.write_json(run_dir / "config.json", {"fingerprint": config.fingerprint(), **config.to_dict(),
                                            "preset_settings": workload.preset.to_dict(),
                                            # float summation order, hence trained weights, depend on it
                                            "torch_threads": config.execution.threads,
                                            "labels_resolved": list(scan.labels)})
    io.write_text(run_dir / EXPERIMENT_FILE, experiment_toml(config))
    io.write_csv(run_dir / "manifest.csv", scan.items)
    io.write_json(run_dir / "skipped.json", scan.skipped)
    save_splits(workload.folds, run_dir / "split.json")
    io.write_json(run_dir / "split_audit.json", audit)
    for fold in workload.folds:
        normaliser = workload.normaliser(fold)
        io.write_json(run_dir / "normalisers" / f"fold{fold.index}.json",
                      {"fit_on_items": len(fold.train), **normaliser.to_dict()})
    if test_scan is not None:
        io.write_csv(run_dir / "test_manifest.csv", test_scan.items)
        io.write_json(run_dir / "test_skipped.json", test_scan.skipped)


# ------------------------------------------------------------------------------------------------ run
class Progress:
    """One log line per finished cell: ``[k/n] fold f seed s generator UA (seconds)``."""

    def __init__(self, total: int, labels: tuple[str, ...]):
        self.total, self.labels, self.done, self.start = total, labels, 0, time.perf_counter()

    def cell(self, result: CellResult) -> None:
        self.done += 1
        main = result.predictions[result.predictions["arm"] == MAIN]
        ua = metrics.classification_metrics(main["y_true"], main["y_pred"], self.labels)["ua"]
        meta = result.meta
        log.info("[%d/%d] fold %d seed %d %-12s UA %.3f (%.0f s elapsed)", self.done, self.total, meta["fold"],
                 meta["seed"], meta["generator"], ua, time.perf_counter() - self.start)


def run_benchmark(config: RunConfig, *, progress: bool = False, timings: RunTimings | None = None) -> RunResult:
    """Run (or resume, or assemble from stored cells) the benchmark of ``config``; returns its results.
    ``timings`` receives the wall time of each phase (see :mod:`emoaug.bench.timings`)."""
    timings = timings or RunTimings()
    run_dir = default_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FINISHED).unlink(missing_ok=True)  # a run into this folder again: unfinished until it ends
    io.remove_stale_temporaries(run_dir)
    execution = config.execution
    store = CellStore(store_root(execution, run_dir))
    store.clean()
    workload, scan, config = prepare_workload(config, run_dir, progress, timings)
    experiment = config.experiment
    with timings.phase("planning"):
        plan = plan_run(workload, experiment)
        wanted = plan.all_cells
        results = {} if execution.fresh else {spec.key: found for spec in wanted
                                              if (found := store.load_cell(spec.key)) is not None}
        todo = [spec for spec in wanted if spec.key not in results]
        references = plan_reference(workload, experiment, store, fresh=execution.fresh)
    curve_text = f" + {len(plan.curve_cells)} synthetic-ratio curve cells" if plan.curve_cells else ""
    log.info("run directory %s: %d items, %d speakers, %d folds x %d seeds x %d generators = %d cells%s "
             "(%d stored, %d to compute) with %s", run_dir, len(scan.items), scan.n_speakers, len(workload.folds),
             experiment.n_seeds, len(experiment.generators), len(plan.cells), curve_text, len(results), len(todo),
             executor_text(execution))
    timings.counts.update(cells_stored=len(results), cells_to_compute=len(todo),
                          reference_folds_stored=len(references.found), reference_folds_to_compute=len(references.todo))
    if todo or references.todo:
        with timings.phase("cells"):
            compute(todo, plan, workload, store, results, execution, timings.cells, references)
    reference = None
    (run_dir / REFERENCE_FOLDS).unlink(missing_ok=True)  # an earlier run into this folder may have had one
    if references.specs:
        with timings.phase("reference"):
            seeds = sorted({spec.seed for spec in plan.cells})
            folds = [references.found[spec.key] for spec in references.specs]
            reference = reference_predictions(folds, references.settings, seeds)
            io.write_json(run_dir / REFERENCE_FOLDS, {
                "rule": references.settings.rule(), "settings": references.settings.to_dict(),
                "folds": [{"fold": f.fold, "key": f.key, "computed_by_this_run": f.computed, **f.chosen}
                          for f in folds]})
    with timings.phase("results"):
        cells = [results[spec.key] for spec in plan.cells]
        record_cells(run_dir, plan, results, store)
        curve = [(spec.synthetic_ratio, results[spec.key]) for spec in plan.curve_cells]
        return assemble_results(run_dir, config, cells, scan.labels, reference, curve)


@dataclass
class ReferenceWork:
    """The classic reference's folds: all of them, those stored and those to compute (beside the cells)."""

    settings: ClassicSettings | None = None
    specs: list[ReferenceSpec] = field(default_factory=list)
    found: dict[str, ReferenceResult] = field(default_factory=dict)  # key -> result (stored, then computed)

    @property
    def todo(self) -> list[ReferenceSpec]:
        return [spec for spec in self.specs if spec.key not in self.found]


def plan_reference(workload: Workload, experiment: Experiment, store: CellStore, *, fresh: bool) -> ReferenceWork:
    settings = settings_for(experiment.reference)
    if workload.functionals is None or settings is None:
        return ReferenceWork()
    contents = {fold.index: fold_content(workload, fold) for fold in workload.folds}
    specs = plan_references(workload.folds, contents, workload.labels, settings, experiment.speaker_norm)
    found = {} if fresh else {spec.key: stored for spec in specs
                              if (stored := store.load_reference(spec.key)) is not None}
    return ReferenceWork(settings, specs, found)


def warn_absent_emotions(items: pd.DataFrame, audit: dict) -> None:
    """Once per run, before training: an emotion whose every item the held-out speakers hold (e.g. under
    LOSO, a class one speaker holds alone) is never seen in that fold's training, never generated and
    never predicted there: its recall there is 0 by construction (cell metadata lists it too)."""
    absent = []
    for fold in audit["folds"]:
        for label in fold["labels_missing"]["train"]:
            holders = sorted(set(items.loc[items["emotion"] == label, "speaker"]))
            absent.append(f"{label} (fold {fold['index']}: every item is spoken by {', '.join(holders)})")
    if absent:
        log.warning("emotions absent from a training fold: %s; such folds train without them and get no "
                    "synthetic rows of them", "; ".join(absent))


def executor_text(execution: Execution) -> str:
    where = f" at {execution.ray_address}" if execution.ray_address else ""
    return (f"executor {execution.executor}{where}, {execution.jobs} worker(s) x {execution.threads} torch "
            "thread(s)")


def compute(todo: list[CellSpec], plan: Plan, workload: Workload, store: CellStore, results: dict,
            execution: Execution, activity: CellActivity | None = None,
            references: ReferenceWork | None = None) -> None:
    needed = {spec.judge_key for spec in todo}
    known: dict[str, JudgeResult] = {}
    to_train = []
    for judge in plan.judges:
        if judge.key not in needed:
            continue
        stored = None if execution.fresh else store.load_judge(judge.key)
        if stored is not None:
            known[judge.key] = stored
        else:
            to_train.append(judge)
    meter = Progress(len(todo), workload.labels)
    parallelism = Parallelism(execution.executor, execution.jobs, execution.threads)
    activity = activity or CellActivity()
    activity.workers, activity.threads, activity.executor = parallelism.jobs, parallelism.threads, parallelism.executor
    specs = {spec.key: spec for spec in todo}
    trained_now: set[str] = set()  # checkpoints this run stored: --fresh reuses these (other synthetic ratios)

    def on_cell(result: CellResult) -> None:
        spec = specs[result.key]
        if result.checkpoint is not None and spec.checkpoint_key:
            store.save_checkpoint(spec.checkpoint_key, result.checkpoint)
            trained_now.add(spec.checkpoint_key)
        result.checkpoint = None  # stored; no need to keep weights in memory
        worker = result.meta.get("worker", {})
        activity.finished("cell", worker.get("wall_s", 0.0), worker.get("peak_rss_mb"))
        store.save_cell(result)
        result.examples = None
        results[result.key] = result
        meter.cell(result)

    def checkpoint(spec: CellSpec) -> dict | None:
        if spec.checkpoint_key is None or (execution.fresh and spec.checkpoint_key not in trained_now):
            return None
        return store.load_checkpoint(spec.checkpoint_key)

    def on_judge(result: JudgeResult) -> None:
        activity.finished("judge", result.wall_s, result.peak_rss_mb)
        store.save_judge(result)

    references = references or ReferenceWork()
    folds = {fold.index: fold for fold in workload.folds}

    def inputs(spec: ReferenceSpec) -> ReferenceInputs:
        return reference_inputs(spec, folds[spec.fold], workload.items, workload.functionals, workload.labels,
                                references.settings)

    def on_reference(result: ReferenceResult) -> None:
        activity.finished("reference", result.wall_s, result.peak_rss_mb)
        store.save_reference(result)
        references.found[result.key] = result

    jobs = Jobs(workload=workload, judges=to_train, cells=todo, known_judges=known, checkpoint=checkpoint,
                on_judge=on_judge, on_cell=on_cell, references=references.todo, reference_inputs=inputs,
                on_reference=on_reference)
    make_executor(parallelism, ray_address=execution.ray_address, device=execution.device).execute(jobs)


def record_cells(run_dir: Path, plan: Plan, results: dict[str, CellResult], store: CellStore) -> None:
    """What this run used, so that its folder stands alone: keys, a copy of every cell's files (the curve's
    under ``cells/ratio<r>/``), the leakage audit gathered from them and the example rows of the first fold
    and base seed."""
    copies = run_dir / "cells"
    for stale in (copies, run_dir / EXAMPLES_DIR):  # an earlier run into this folder may have had other inputs
        shutil.rmtree(stale, ignore_errors=True)
    index, audit = [], []
    first_fold = min(spec.fold for spec in plan.cells)
    base_seed = min(spec.seed for spec in plan.cells)
    for spec in plan.all_cells:
        cell = results[spec.key]
        folder = copies / f"ratio{spec.synthetic_ratio:g}" if spec.curve else copies
        stem = folder / io.safe_name(spec.generator.name) / f"fold{spec.fold}_seed{spec.seed}"
        io.write_csv(stem.with_suffix(".csv"), cell.predictions)
        if not cell.quality.empty:
            io.write_csv(stem.with_name(stem.name + "_quality.csv"), cell.quality)
        io.write_json(stem.with_suffix(".json"), cell.meta)
        index.append({"generator": spec.generator.name, "fold": spec.fold, "seed": spec.seed,
                      "synthetic_ratio": spec.synthetic_ratio, "curve": spec.curve, "key": spec.key,
                      "judge_key": spec.judge_key, "checkpoint_key": spec.checkpoint_key,
                      "computed_by_this_run": cell.computed})
        audit += [{**record, "generator": spec.generator.name, "seed": spec.seed, "synthetic_ratio": spec.synthetic_ratio}
                  for record in cell.meta.get("leakage_audit", [])]
        if spec.fold == first_fold and spec.seed == base_seed and not spec.curve:
            examples = store.load_examples(spec.key)
            if examples is not None:
                io.write_torch(run_dir / EXAMPLES_DIR / f"{io.safe_name(spec.generator.name)}.pt", examples)
    io.write_json(run_dir / "cells.json", {"store": str(store.root.resolve()), "cells": index,
                                           "computed": sum(c["computed_by_this_run"] for c in index),
                                           "reused": sum(not c["computed_by_this_run"] for c in index)})
    io.write_json(run_dir / "leakage_audit.json", {"checks": audit, "passed": True})


def cells_frame(run_dir: Path) -> pd.DataFrame:
    """``cells.json`` of a run folder as a frame (generator, fold, seed, key, computed_by_this_run)."""
    return pd.DataFrame(io.read_json(Path(run_dir) / "cells.json")["cells"])
