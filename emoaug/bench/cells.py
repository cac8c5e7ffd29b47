"""Computing one judge or one cell: pure functions of their spec, the workload and given states.

Nothing here reads or writes files or shared state: a result comes back as a value, and the driver
stores it (so cells can run in any process or on any machine). Per (fold, seed) :func:`run_judge`
trains the real-only classifier -- the ``none`` cell and the judge of generated rows. Per generator,
:func:`run_cell` fits the generator on the training fold only (or restores given checkpoint weights),
measures the generated set, trains the same classifier on real + synthetic rows and tests it on held-out
real speakers; the protocols add arms to the same cell (see ``emoaug.bench.arms``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..classifiers import SERClassifier, TrainConfig
from ..errors import LeakageError
from ..featureset import FeatureSet, StackedFeatureSet
from ..generators.base import Generator
from ..splits import Fold
from .arms import CLARITY_PREDICTED, CLARITY_SAMPLED, CLARITY_TRUE, CROSS, CROSS_SYNTHETIC_ONLY, MAIN, SYNTHETIC_ONLY
from .plan import EXAMPLES_PER_EMOTION, CellSpec, FoldData, JudgeSpec, Workload
from .timings import peak_rss_mb

log = logging.getLogger("emoaug")

#: seeds of generate() calls beyond the main synthetic set, offset so that they draw new rows
SYNTHETIC_ONLY_SEED_OFFSET = 1_000_003
CLARITY_SEED_OFFSET = 2_000_003


@dataclass
class JudgeResult:
    key: str
    state: dict  # SERClassifier.state_dict()
    seconds: float
    audit: list[dict]  # leakage checks of the normaliser and the judge
    # where the time and memory went in the worker (not stored: the run's timings.json sums them)
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0


@dataclass
class CellResult:
    key: str
    predictions: pd.DataFrame  # generator, arm, seed, fold, item_id, y_true, y_pred, ...
    quality: pd.DataFrame
    meta: dict  # counts, timings, histories, the leakage audit of this cell
    examples: dict | None = None  # a few generated and real rows for listening and figures
    checkpoint: dict | None = None  # newly trained generator weights, for the driver to store
    computed: bool = True  # False when it came from the store


# ------------------------------------------------------------------------------------------------ audit
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


# ------------------------------------------------------------------------------------------------ judge
def make_classifier(spec: JudgeSpec | CellSpec, device: str) -> SERClassifier:
    """The run's classifier, unfitted, with the seed of ``spec``'s (fold, seed)."""
    settings = spec.classifier
    train_config = TrainConfig.from_settings(settings, seed=spec.seed, device=device)
    return SERClassifier(settings.arch, train_config, **settings.arch_kwargs)


def run_judge(spec: JudgeSpec, workload: Workload) -> JudgeResult:
    began = time.perf_counter()
    data = workload.fold_data(spec.fold, spec.seed)
    train_speakers, test_speakers = set(data.train.speakers), set(data.test.speakers)
    audit = [check_scope("normaliser", list(data.fold.train), train_speakers, data.fold, test_speakers),
             check_scope("judge (real-only classifier)", list(data.train.item_ids), train_speakers, data.fold,
                         test_speakers)]
    start = time.perf_counter()
    judge = make_classifier(spec, workload.device).fit(data.train, data.val)
    return JudgeResult(spec.key, judge.state_dict(), time.perf_counter() - start, audit,
                       wall_s=time.perf_counter() - began, peak_rss_mb=peak_rss_mb())


def load_judge(state: dict, workload: Workload) -> SERClassifier:
    return SERClassifier.from_state_dict(state, device=workload.device)


# ------------------------------------------------------------------------------------------------ cells
def run_cell(spec: CellSpec, workload: Workload, judge: JudgeResult, checkpoint: dict | None = None) -> CellResult:
    """Every arm of one (fold, seed, generator); ``checkpoint`` restores trained generator weights."""
    start = time.perf_counter()
    data = workload.fold_data(spec.fold, spec.seed)
    classifier = load_judge(judge.state, workload)
    if spec.generator.produces_nothing:
        result = real_only_cell(spec, data, classifier, judge)
    else:
        result = augmented_cell(spec, workload, data, classifier, checkpoint)
    result.predictions.insert(0, "generator", spec.generator.name)
    result.predictions.insert(2, "seed", spec.seed)
    result.predictions.insert(3, "fold", spec.fold)
    result.meta["torch_threads"] = torch.get_num_threads()
    # where the time and memory went in the worker (the run's timings.json sums these)
    result.meta["worker"] = {"wall_s": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}
    return result


def real_only_cell(spec: CellSpec, data: FoldData, judge: SERClassifier, judged: JudgeResult) -> CellResult:
    meta = cell_meta(spec, data, n_synthetic=0, classifier=judge,
                     seconds={"generator_fit": 0.0, "generate": 0.0, "classifier": judged.seconds})
    meta["leakage_audit"] = list(judged.audit)
    return CellResult(spec.key, scored(judge, data, MAIN, CROSS), pd.DataFrame(), meta)


def fit_generator(spec: CellSpec, workload: Workload, data: FoldData, checkpoint: dict | None
                  ) -> tuple[Generator, float, dict | None]:
    """Fit on the training fold, or restore the given weights (trained on the very same inputs).
    Returns the generator, the seconds it took and new weights to store (``None`` when restored)."""
    gen = spec.generator.build().to(workload.device)
    if gen.domain == "waveform":  # it reads training recordings (emoaug.generators.waveform)
        gen.use_front_end(waveform_front_end(workload, data))
    start = time.perf_counter()
    if checkpoint is not None:
        gen.restore(data.train, checkpoint)
        return gen, time.perf_counter() - start, None
    gen.fit(data.train)
    seconds = time.perf_counter() - start
    return gen, seconds, (gen.state_dict() if spec.checkpoint_key else None)


def waveform_front_end(workload: Workload, data: FoldData):
    """The fold's training recordings for a waveform generator, one at a time, and the way back to rows: the
    preset's log-mel as for real items, standardised with the source speaker's statistics under --speaker-norm,
    then normalised with the fold's statistics."""
    from ..features import front_end_signal, waveform_features
    from ..generators.waveform import WaveformFrontEnd
    from ..speaker_norm import standardise_mels

    paths = workload.items.set_index("item_id")["path"]
    speakers = workload.items.set_index("item_id")["speaker"].astype(str)
    stats = workload.speaker_stats

    def to_rows(waveforms, source_ids) -> list[np.ndarray]:
        rows = []
        for db, source in zip(waveform_features(waveforms, workload.preset, workload.device), source_ids):
            if stats is not None:  # as the source item's own rows were (emoaug.speaker_norm)
                item = pd.DataFrame({"item_id": [source], "speaker": [speakers[source]]})
                db = standardise_mels({source: db}, item, stats)[source]
            rows.append(np.asarray(data.normaliser.transform(db), dtype=np.float32))
        return rows

    return WaveformFrontEnd(sample_rate=workload.preset.sample_rate,
                            read_audio=lambda item_id: front_end_signal(paths[item_id], workload.preset),
                            to_rows=to_rows, allowed=frozenset(data.fold.train))


def audit_audio_read(name: str, gen: Generator, workload: Workload, data: FoldData) -> list[dict]:
    """(waveform generators) every recording the generator read, in all of the cell's arms: training items only."""
    front_end = getattr(gen, "front_end", None)
    if front_end is None:
        return []
    speakers = workload.items.set_index("item_id")["speaker"].astype(str)
    read = sorted(front_end.read_ids)
    return [check_scope(f"generator {name!r}: audio read", read, {speakers[i] for i in read}, data.fold,
                        set(data.test.speakers))]


def audit_generator(name: str, gen: Generator, data: FoldData) -> list[dict]:
    test_speakers = set(data.test.speakers)
    records = [check_scope(f"generator {name!r}", gen.fitted_item_ids, gen.fitted_speakers, data.fold,
                           test_speakers)]
    for part, (ids, speakers) in gen.fitted_parts().items():
        records.append(check_scope(f"generator {name!r}: {part}", ids, speakers, data.fold, test_speakers))
    return records


def augmented_cell(spec: CellSpec, workload: Workload, data: FoldData, judge: SERClassifier,
                   checkpoint: dict | None) -> CellResult:
    from ..quality import assess_generated

    gen, fit_s, new_weights = fit_generator(spec, workload, data, checkpoint)
    audit = audit_generator(spec.generator.name, gen, data)
    counts = data.train.class_counts()
    want = allocate_synthetic(counts, round(spec.synthetic_ratio * len(data.train)))
    start = time.perf_counter()
    synthetic = gen.generate(want, seed=spec.seed)
    generate_s = time.perf_counter() - start

    if len(synthetic):
        quality = assess_generated(judge, synthetic, data.train, data.test, data.normaliser, data.train.labels)
    else:  # ratio 0, or a small ratio of a small fold: nothing generated, nothing to measure
        quality = pd.DataFrame(columns=["emotion", "measure", "value", "n_generated"])
    quality.insert(0, "generator", spec.generator.name)
    quality.insert(1, "seed", spec.seed)
    quality.insert(2, "fold", spec.fold)

    start = time.perf_counter()
    # real and generated rows read as one set, not copied into one (at scale the copy is the largest allocation)
    clf = make_classifier(spec, workload.device).fit(StackedFeatureSet([data.train, synthetic]), data.val)
    parts = [scored(clf, data, MAIN, CROSS)]
    seconds = {"generator_fit": fit_s, "generate": generate_s, "classifier": time.perf_counter() - start}
    if "augment" in spec.protocols:
        start = time.perf_counter()
        syn_clf = make_classifier(spec, workload.device).fit(synthetic_only_set(gen, synthetic, data), data.val)
        parts.append(scored(syn_clf, data, SYNTHETIC_ONLY, CROSS_SYNTHETIC_ONLY))
        seconds["synthetic_only"] = time.perf_counter() - start
    if "clarity" in spec.protocols:
        start = time.perf_counter()
        parts.append(clarity_predictions(gen, judge, data, spec.seed))
        seconds["clarity"] = time.perf_counter() - start
    audit += audit_audio_read(spec.generator.name, gen, workload, data)
    meta = cell_meta(spec, data, n_synthetic=len(synthetic), classifier=clf, seconds=seconds)
    meta.update({"generator_config": gen.get_config(), "generator_version": str(type(gen).version),
                 "generator_restored_from_checkpoint": checkpoint is not None,
                 "generator_fitted_items": len(gen.fitted_item_ids),
                 "synthetic_per_class": want,
                 "emotions_absent_from_training": [label for label, n in counts.items() if n == 0],
                 "items_per_second": len(synthetic) / generate_s if generate_s > 0 else None,
                 "generator_history_tail": list(getattr(gen, "history", []))[-5:],
                 "leakage_audit": audit})
    return CellResult(spec.key, pd.concat(parts, ignore_index=True), quality, meta,
                      examples=example_rows(data, synthetic), checkpoint=new_weights)


def example_rows(data: FoldData, synthetic: FeatureSet) -> dict:
    """The first generated rows of each emotion and one real training row per emotion, with the fold's
    normaliser, so that reports can render wavs and a real-vs-generated grid without the cell's models."""
    def first_per_emotion(fs: FeatureSet, n: int) -> FeatureSet:
        names = fs.label_names()
        keep = [i for label in fs.labels for i in [k for k, h in enumerate(names) if h == label][:n]]
        return fs.subset(keep)

    def plain(fs: FeatureSet) -> dict:
        return {"x": fs.x.to(torch.float32).contiguous(), "y": fs.y.clone(), "labels": list(fs.labels),
                "item_ids": list(fs.item_ids)}

    return {"generated": plain(first_per_emotion(synthetic, EXAMPLES_PER_EMOTION)),
            "real": plain(first_per_emotion(data.train, 1)), "normaliser": data.normaliser.to_dict()}


def allocate_synthetic(class_counts: dict[str, int], n_total: int) -> dict[str, int]:
    """Share ``n_total`` synthetic rows among the classes present, topping up the smallest first.

    Water-filling: each new row goes to the class with the fewest real+synthetic rows so far (ties
    broken by label order), so augmentation first balances the training set. A class absent from the
    training fold (small corpora, LOSO) gets none: a generator fit on the fold cannot know it.
    """
    labels = [label for label, count in class_counts.items() if count > 0]
    have = np.array([class_counts[label] for label in labels], dtype=np.int64)
    give = np.zeros_like(have)
    for _ in range(max(0, int(n_total)) if labels else 0):
        k = int(np.argmin(have + give))
        give[k] += 1
    given = {label: int(g) for label, g in zip(labels, give)}
    return {label: given.get(label, 0) for label in class_counts}


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


def cell_meta(spec: CellSpec, data: FoldData, *, n_synthetic: int, classifier: SERClassifier,
              seconds: dict) -> dict:
    return {"key": spec.key, "judge_key": spec.judge_key, "checkpoint_key": spec.checkpoint_key,
            "generator": spec.generator.name, "seed": spec.seed, "fold": spec.fold,
            "synthetic_ratio": spec.synthetic_ratio, "curve": spec.curve,
            "n_train_rows": len(data.train), "n_synthetic_rows": n_synthetic, "n_val_rows": len(data.val),
            "n_test_rows": len(data.test), "n_test_items": len(set(data.test.item_ids)),  # rows: segments
            "seconds": seconds, "classifier_history": classifier.history}


def scored(classifier: SERClassifier, data: FoldData, arm: str, cross_arm: str) -> pd.DataFrame:
    """``classifier`` on the test fold (``arm``) and, with a test corpus, on all of it (``cross_arm``)."""
    parts = [with_arm(classifier.predict_items(data.test), arm)]
    if data.cross is not None:
        parts.append(with_arm(classifier.predict_items(data.cross), cross_arm))
    return pd.concat(parts, ignore_index=True)


def with_arm(predictions: pd.DataFrame, arm: str) -> pd.DataFrame:
    predictions.insert(0, "arm", arm)
    return predictions


def clarity_predictions(gen: Generator, judge: SERClassifier, data: FoldData, seed: int) -> pd.DataFrame:
    """The real-only judge on generated versions of the test fold (Kim & Lee's "generated" condition).

    A generator that can transform rows enhances each test utterance twice: under its true emotion (the
    paper's protocol; the label then reaches the judge through the input) and under the judge's own
    prediction for the original utterance (no label enters). Both are scored against the true label. A
    generator that only samples is scored on class-conditional samples, as many per class as the test fold.
    """
    test = data.test
    if not gen.transforms_rows:
        trained = data.train.class_counts()  # an emotion absent from training cannot be sampled
        wanted = {label: n if trained[label] else 0 for label, n in test.class_counts().items()}
        sampled = gen.generate(wanted, seed=seed + CLARITY_SEED_OFFSET)
        return with_arm(judge.predict_items(sampled), CLARITY_SAMPLED)
    original = judge.predict_items(test).set_index("item_id")["y_pred"]
    conditions = {CLARITY_TRUE: test.label_names(), CLARITY_PREDICTED: [original[i] for i in test.item_ids]}
    parts = []
    for arm, condition in conditions.items():
        enhanced = gen.transform(test, condition, seed=seed + CLARITY_SEED_OFFSET)
        # scored per source utterance against its true label: same ids, segments and labels as the test fold
        scored_rows = FeatureSet(x=enhanced.x, y=test.y, labels=test.labels, item_ids=test.item_ids,
                                 speakers=test.speakers)
        parts.append(with_arm(judge.predict_items(scored_rows), arm))
    return pd.concat(parts, ignore_index=True)
