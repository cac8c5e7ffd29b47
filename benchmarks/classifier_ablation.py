"""Ablation of the fixed classifier protocol on a real corpus (issue 12): real-only UA of each variant over
the same speaker-independent folds x seeds, with its paired effect against the current protocol and the
``classic`` openSMILE + SVM reference on the same folds.

    python benchmarks/classifier_ablation.py --data-root ../shared/data/emodb [--variants a,b] [--seeds 3]
    # the paper protocol (ResNet-50 on the kim2024 preset), on a GPU:
    python benchmarks/classifier_ablation.py --data-root DIR --profile paper --arch resnet50 --preset kim2024 \
        --device cuda --jobs 1 --variants trainval

Each variant changes one lever of the quick CNN-BLSTM protocol (or combines levers kept earlier). Cells run
in worker processes (``--jobs``, one torch thread each); per-cell UA, WA and seconds go to ``--out`` as CSV,
and the script prints a table: UA mean +- std over (fold, seed) cells, the paired difference to ``base``
with a bootstrap 95 % CI and Wilcoxon p, WA, and seconds per cell.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: lever -> (TrainConfig overrides, arch overrides, split overrides)
VARIANTS: dict[str, tuple[dict, dict, dict]] = {
    "base": ({}, {}, {}),
    "balanced": ({"class_weight": "balanced"}, {}, {}),
    "cosine60": ({"lr_schedule": "cosine", "epochs": 60, "patience": 60}, {}, {}),
    "refit": ({"refit": True}, {}, {}),
    "val1": ({}, {}, {"val_speakers": 1}),
    "cmvn": ({"input_norm": "utterance"}, {}, {}),
    "dropout3": ({}, {"conv_dropout": 0.3, "lstm_dropout": 0.3}, {}),
    "wd1e-3": ({"weight_decay": 1e-3}, {}, {}),
    "wide": ({}, {"channels": 128, "lstm_hidden": 128}, {}),
    "bins": ({"input_norm": "bins"}, {}, {}),
    "statpool": ({}, {"pooling": "mean_std"}, {}),
    "lr3e-4": ({"lr": 3e-4, "epochs": 60, "patience": 15}, {}, {}),
    # no early stopping: a fixed cosine schedule on train + validation speakers (all training speakers)
    "trainval": ({"lr_schedule": "cosine", "epochs": 40, "patience": None}, {}, {"val_speakers": 0}),
    "e60": ({"epochs": 60}, {}, {}),
    "e30": ({"epochs": 30}, {}, {}),
    "e25": ({"epochs": 25}, {}, {}),
    "e20": ({"epochs": 20}, {}, {}),
    "lr2e-3": ({"lr": 2e-3}, {}, {}),
    "bs16": ({"batch_size": 16}, {}, {}),
    "nodropout": ({}, {"conv_dropout": 0.0, "lstm_dropout": 0.0}, {}),
    "narrow": ({}, {"channels": 32, "lstm_hidden": 32}, {}),
    "wd0": ({"weight_decay": 0.0}, {}, {}),
    "pool4": ({}, {"time_pool": 4}, {}),
    "lstm2": ({}, {"lstm_layers": 2}, {}),
    "k3": ({}, {"kernel_size": 3}, {}),
    "ch96": ({}, {"channels": 96, "lstm_hidden": 96}, {}),
    # experiment only (not a TrainConfig lever): first-order time deltas stacked under the mel bins
    "deltas": ({"_deltas": True}, {}, {}),
    # round 5: pooling over time and label smoothing, around the kept protocol
    "attn": ({}, {"pooling": "attention"}, {}),
    "maxpool": ({}, {"pooling": "max"}, {}),
    "ls": ({"label_smoothing": 0.1}, {}, {}),
    # round 6 (script-only experiments): averaging several networks, and per-speaker normalisation
    "ens3": ({"_ensemble": 3}, {}, {}),  # 3 independently seeded networks, probabilities averaged (3x cost)
    "ens3e14": ({"_ensemble": 3, "epochs": 14}, {}, {}),  # the same at about the kept protocol's cost
    "snap2": ({"_snapshots": 2}, {}, {}),  # 2 cosine cycles of epochs/2, the snapshots' probabilities averaged
    "snap4": ({"_snapshots": 4}, {}, {}),
    # flagged, transductive: each speaker's rows standardised per mel bin with that speaker's own statistics
    # (the test speakers' from their unlabelled test rows)
    "spknorm": ({"_speaker_norm": True}, {}, {}),
    # round 7: each row's own mean per bin removed at the input (cepstral-mean-style, no variance)
    "cmn": ({"input_norm": "utterance_mean"}, {}, {}),
    # the per-bin mean and std of the input over time (a functional view) joined to the pooled BLSTM output
    "melstats": ({"_arch": "cnn_blstm_stats"}, {}, {}),
    # a small 2-D CNN (4 blocks of 3x3 conv, 2x2 max pooling; 8-16-32-32 channels) before the BLSTM (a CRNN)
    "crnn2d": ({"_arch": "crnn2d"}, {}, {}),
    # issue 21: bf16 autocast, what the quick profile's precision="auto" picks on a CPU with bf16 in hardware
    "bf16": ({"precision": "bf16"}, {}, {}),
}
#: the protocol the quick profile keeps (emoaug.config), spelled as levers on ``base``
KEPT = "trainval+nodropout+pool4+cmn+bf16"


def base_settings(profile: str, arch: str):
    """What ``base`` means: for the quick CNN-BLSTM, the protocol before issue 12 (the profile now holds the kept
    one); otherwise the profile's current settings."""
    from emoaug.config import ClassifierSettings, get_profile

    if (profile, arch) == ("quick", "cnn_blstm"):
        return ClassifierSettings("cnn_blstm", {"channels": 64, "lstm_hidden": 64, "lstm_layers": 1}, epochs=30,
                                  batch_size=32, lr=1e-3, weight_decay=1e-4, patience=8)
    return get_profile(profile).classifiers[arch]


def combined(names: str) -> tuple[dict, dict, dict]:
    """``a+b``: the levers of a and b together."""
    train, arch, split = {}, {}, {}
    for name in names.split("+"):
        t, a, s = VARIANTS[name]
        train, arch, split = {**train, **t}, {**arch, **a}, {**split, **s}
    return train, arch, split


def register_experimental_presets() -> None:
    """Script-only presets: the emogen front end cut into non-overlapping segments of 2 s or 3 s (the issue's
    "segment the whole utterance and average segment probabilities" lever; the classifier averages them)."""
    from dataclasses import replace

    from emoaug.presets import PRESET_REGISTRY, get_preset

    for seconds in (2, 3):
        name = f"emogen_seg{seconds}"
        PRESET_REGISTRY.add(name, replace(get_preset("emogen"), name=name, clip_seconds=float(seconds),
                                          length_mode="segment"))


def load(data_root: str, preset_name: str):
    from emoaug.datasets import load_corpus
    from emoaug.features import FeatureCache, default_cache_root, extract_features, get_preset

    register_experimental_presets()

    scan = load_corpus("emodb", data_root)
    preset = get_preset(preset_name)
    features = extract_features(scan.items, preset, cache=FeatureCache(default_cache_root(), preset))
    return scan, preset, features


_WORKER: dict = {}


def start_worker(data_root: str, preset: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["data"] = load(data_root, preset)


def run_cell(task: dict) -> dict:
    from emoaug.classifiers.training import SERClassifier, TrainConfig, aggregate_items
    from emoaug.devices import resolve_device
    from emoaug.features import Normaliser, build_featureset
    from emoaug.metrics import classification_metrics
    from emoaug.speaker_norm import mel_statistics, standardise_mels
    from emoaug.splits import make_splits

    scan, preset, features = _WORKER["data"]
    train_over, arch_over, split_over = combined(task["variant"])
    deltas = train_over.pop("_deltas", False)
    members, snapshots = train_over.pop("_ensemble", 1), train_over.pop("_snapshots", 1)
    speaker_norm = train_over.pop("_speaker_norm", False)
    arch = train_over.pop("_arch", task["arch"])
    register_experimental_architectures()
    folds = make_splits(scan.items, "kfold", n_folds=5, seed=0, **split_over)
    fold = folds[task["fold"]]
    settings = base_settings(task["profile"], task["arch"])
    config = TrainConfig(**{"epochs": settings.epochs, "batch_size": settings.batch_size, "lr": settings.lr,
                            "weight_decay": settings.weight_decay, "patience": settings.patience,
                            "seed": task["seed"], "device": task["device"], **train_over})
    if speaker_norm:  # as --speaker-norm does it: before the preset's normalisation
        features = standardise_mels(features, scan.items, mel_statistics(features, scan.items))
    normaliser = Normaliser(preset.normalisation).fit([features[i] for i in fold.train])
    by_id = scan.items.set_index("item_id", drop=False)
    sets = {part: build_featureset({i: features[i] for i in getattr(fold, part)}, by_id.loc[getattr(fold, part)],
                                   scan.labels, normaliser) for part in ("train", "val", "test")}
    if deltas:
        sets = {part: with_deltas(fs) for part, fs in sets.items()}
    if snapshots > 1:
        config.epochs = config.epochs // snapshots
    start = time.perf_counter()
    probabilities = []
    for member in range(members):
        member_config = TrainConfig(**{**config.to_dict(), "seed": task["seed"] + 1000 * member})
        clf = SERClassifier(arch, member_config, **{**settings.arch_kwargs, **arch_over})
        clf.fit(sets["train"], sets["val"])
        probabilities.append(clf.predict_proba(sets["test"]))
        for _ in range(snapshots - 1):  # a warm restart: a fresh optimiser and cosine cycle from these weights
            clf._train_epochs(sets["train"], None, resolve_device(config.device), False)
            probabilities.append(clf.predict_proba(sets["test"]))
    predicted = aggregate_items(np.mean(probabilities, axis=0), sets["test"].item_ids, sets["test"].y, scan.labels)
    scores = classification_metrics(predicted["y_true"], predicted["y_pred"], list(scan.labels))
    return {"variant": task["variant"], "fold": task["fold"], "seed": task["seed"], "ua": scores["ua"],
            "wa": scores["wa"], "seconds": time.perf_counter() - start, "best_epoch": clf.best_epoch}


def register_experimental_architectures() -> None:
    """Script-only architectures for round 6 (registered in each worker, not in the library)."""
    import torch
    from torch import nn

    from emoaug.classifiers import CLASSIFIERS
    from emoaug.classifiers.cnn_blstm import CNNBLSTM

    class WithMelStats(CNNBLSTM):
        def __init__(self, n_mels, n_classes, **kwargs):
            super().__init__(n_mels, n_classes, **kwargs)
            self.embedding_dim += 2 * n_mels
            self.classifier = nn.Linear(self.embedding_dim, n_classes)

        def embed(self, x):
            return torch.cat([super().embed(x), x.mean(dim=-1), x.std(dim=-1)], dim=1)

    class CRNN2D(nn.Module):
        def __init__(self, n_mels, n_classes, *, lstm_hidden=64, widths=(8, 16, 32, 32), **_ignored):
            super().__init__()
            layers, previous = [], 1
            for width in widths:
                layers += [nn.Conv2d(previous, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                           nn.MaxPool2d(2, ceil_mode=True)]
                previous = width
            self.conv = nn.Sequential(*layers)
            reduced = n_mels
            for _ in widths:
                reduced = -(-reduced // 2)
            self.project = nn.Linear(previous * reduced, lstm_hidden)
            self.lstm = nn.LSTM(lstm_hidden, lstm_hidden, batch_first=True, bidirectional=True)
            self.embedding_dim = 2 * lstm_hidden
            self.classifier = nn.Linear(self.embedding_dim, n_classes)

        def embed(self, x):
            maps = self.conv(x[:, None])  # [B, C, F', T']
            steps = maps.flatten(1, 2).transpose(1, 2)  # [B, T', C * F']
            sequence, _ = self.lstm(torch.relu(self.project(steps)))
            return sequence.mean(dim=1)

        def forward(self, x):
            return self.classifier(self.embed(x))

    def with_mel_stats(n_mels, n_classes, *, channels=64, kernel_size=5, conv_dropout=0.0, lstm_hidden=64,
                       lstm_layers=1, lstm_dropout=0.0, time_pool=4, pooling="mean"):
        return WithMelStats(n_mels, n_classes, channels=channels, kernel_size=kernel_size, conv_dropout=conv_dropout,
                            lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, lstm_dropout=lstm_dropout,
                            time_pool=time_pool, pooling=pooling)

    def crnn2d(n_mels, n_classes, *, channels=64, kernel_size=5, conv_dropout=0.0, lstm_hidden=64, lstm_layers=1,
               lstm_dropout=0.0, time_pool=4, pooling="mean"):  # the CNN-BLSTM's options are accepted and unused
        return CRNN2D(n_mels, n_classes, lstm_hidden=lstm_hidden)

    CLASSIFIERS.add("cnn_blstm_stats", with_mel_stats)
    CLASSIFIERS.add("crnn2d", crnn2d)


def with_deltas(fs):
    import torch

    from emoaug.featureset import FeatureSet

    delta = torch.diff(fs.x, dim=-1, prepend=fs.x[..., :1])
    return FeatureSet(torch.cat([fs.x, delta], dim=1), fs.y, fs.labels, fs.item_ids, fs.speakers)


def classic_reference(data_root: str, feature_set: str, val_speakers: int | None = 0,
                      speaker_norm: bool = False) -> pd.DataFrame:
    """The classic reference on the same test folds; with ``val_speakers=0`` (as the kept protocol) it trains on
    every training speaker and picks C by speaker-grouped cross-validation among them; ``speaker_norm``: each
    speaker's functionals standardised first (as ``--speaker-norm`` does)."""
    from emoaug.classifiers.classic import ClassicSettings, extract_functionals, predict_fold
    from emoaug.datasets import load_corpus
    from emoaug.features import default_cache_root
    from emoaug.metrics import classification_metrics
    from emoaug.splits import make_splits

    scan = load_corpus("emodb", data_root)
    functionals = extract_functionals(scan.items, feature_set, cache_root=default_cache_root())
    if speaker_norm:
        from emoaug.speaker_norm import standardise_vectors

        functionals = standardise_vectors(functionals, scan.items)
    rows = []
    for fold in make_splits(scan.items, "kfold", n_folds=5, seed=0, val_speakers=val_speakers):
        predicted, chosen = predict_fold(fold, scan.items, functionals, scan.labels,
                                         ClassicSettings(feature_set=feature_set))
        scores = classification_metrics(predicted["y_true"], predicted["y_pred"], list(scan.labels))
        rows.append({"fold": fold.index, "ua": scores["ua"], "wa": scores["wa"], "c": chosen["c"]})
    return pd.DataFrame(rows)


def report(cells: pd.DataFrame, classic: pd.DataFrame, classic_by_speaker: pd.DataFrame,
           baseline: str = "base") -> pd.DataFrame:
    """Each variant against ``baseline`` (paired on (fold, seed); the "vs base" column) and against the classic
    reference on equal footing: speaker-normalised variants against the speaker-normalised classic."""
    from emoaug.stats import bootstrap_mean_ci, paired_p_value

    base = cells[cells["variant"] == baseline].set_index(["fold", "seed"])["ua"]
    rows = []
    for variant, part in cells.groupby("variant", sort=False):
        ua = part.set_index(["fold", "seed"])["ua"]
        ref = (classic_by_speaker if "spknorm" in variant.split("+") else classic).set_index("fold")["ua"]
        row = {"variant": variant, "cells": len(part), "UA %": f"{100 * ua.mean():.1f} ± {100 * ua.std():.1f}",
               "WA %": f"{100 * part['wa'].mean():.1f}", "s/cell": f"{part['seconds'].mean():.0f}",
               "best epoch": f"{part['best_epoch'].mean():.0f}"}
        for name, other in (("vs base", base), ("vs classic", None)):
            if other is None:
                diff = (ua - ref.reindex(ua.index.get_level_values("fold")).to_numpy()).to_numpy()
            else:
                shared = ua.index.intersection(other.index)
                diff = (ua.loc[shared] - other.loc[shared]).to_numpy()
            if variant == baseline and name == "vs base" or len(diff) < 2:
                row[f"Δ {name} pp [95% CI], p"] = ""
                continue
            low, high = bootstrap_mean_ci(diff)
            row[f"Δ {name} pp [95% CI], p"] = (f"{100 * diff.mean():+.1f} [{100 * low:+.1f}, {100 * high:+.1f}], "
                                               f"{paired_p_value(diff):.3g}")
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--baseline", default="base",
                        help=f"the variant the others are paired with, e.g. the kept protocol {KEPT!r}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--preset", default="emogen")
    parser.add_argument("--profile", default="quick", help="whose classifier settings the variants start from")
    parser.add_argument("--arch", default="cnn_blstm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--reference", default="ComParE_2016")
    parser.add_argument("--out", default="ablation_cells.csv", help="per-cell CSV (appended to, reused)")
    args = parser.parse_args()
    variants = [args.baseline, *[v for v in args.variants.split(",") if v != args.baseline]]
    load(args.data_root, args.preset)  # fill the feature cache once, before the workers read it
    done = pd.read_csv(args.out) if Path(args.out).exists() else pd.DataFrame(columns=["variant", "fold", "seed"])
    finished = set(zip(done["variant"], done["fold"], done["seed"]))
    tasks = [{"variant": v, "fold": f, "seed": s, "profile": args.profile, "arch": args.arch, "device": args.device}
             for v in variants for s in range(args.seeds) for f in range(5) if (v, f, s) not in finished]
    with ProcessPoolExecutor(max_workers=args.jobs, initializer=start_worker,
                             initargs=(args.data_root, args.preset, args.threads)) as pool:
        for row in pool.map(run_cell, tasks):
            done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
            done.to_csv(args.out, index=False)
            print(f"{row['variant']:<24} fold {row['fold']} seed {row['seed']}: UA {100 * row['ua']:.1f} "
                  f"({row['seconds']:.0f} s, best epoch {row['best_epoch']})", flush=True)
    cells = done[done["variant"].isin(variants)]
    classic = classic_reference(args.data_root, args.reference)
    with_val = classic_reference(args.data_root, args.reference, val_speakers=None)
    by_speaker = classic_reference(args.data_root, args.reference, speaker_norm=True)
    for name, frame in (("trained on every training speaker, C by grouped CV", classic),
                        ("trained without the validation speakers, C on them", with_val),
                        ("speaker-normalised functionals, every training speaker (vs spknorm variants)", by_speaker)):
        print(f"classic ({args.reference} + SVM, {name}): UA {100 * frame['ua'].mean():.1f} ± "
              f"{100 * frame['ua'].std():.1f} over {len(frame)} folds, WA {100 * frame['wa'].mean():.1f}")
    print(f"Δ vs base = paired with {args.baseline}")
    print(report(cells, classic, by_speaker, args.baseline).to_markdown(index=False))


if __name__ == "__main__":
    main()
