"""Train/validation/test folds over a corpus manifest, and an audit that proves what they are.

Protocols
---------
``kfold``  speaker-independent grouped stratified k-fold (groups = speaker, strata = emotion). The
           validation subset is carved out of each fold's *training speakers*: whole speakers, so the
           early-stopping signal is speaker-independent too.
``loso``   leave-one-speaker-out: one fold per speaker; one other speaker (rotating) validates.
``paper``  Kim & Lee's random 8:2 item split (stratified), validation = 10 % of the training items.
           Speaker-DEPENDENT: the same voices appear in train and test. It exists only to reproduce
           the paper's numbers and is flagged as such in every fold and in the audit.
``standard`` each corpus's community protocol, read from the manifest (the audit's ``standard`` field says
           which one applied):
           - a non-empty ``session`` column (IEMOCAP Ses01..Ses05, MSP-IMPROV session1..6):
             leave-one-session-out, one fold per session; every speaker of the test session is held out
             with it (IEMOCAP's two speakers act the same dialogs). ``val_speakers`` whole speakers
             (default 1) of the training sessions validate, picked as ``kfold`` picks them.
           - else a ``split_set`` column (MSP-Podcast): one fold from the release's partitions: train =
             ``Train``, validation = ``Development`` (``Validation`` in older copies), test = ``Test1``.
             Items of other partitions (``Test2``, ``Test3``) are in no partition of the fold: they are
             left out, not tested (the audit counts them under ``left_out``). Without a Development
             partition, ``val_speakers`` whole speakers (default: a tenth of the training speakers, at
             least 1) are carved out of Train. ``val_speakers=0`` means no validation subset: Development
             is then left out too, so training stays the release's Train. The partitions are
             speaker-independent by design, and each ``Unknown`` speaker is its segment's own; a known
             speaker found in two of them anyway keeps only its Test1 items (with Test1) or its Train
             items (Train and Development), the rest left out, so no speaker straddles the fold.
           - otherwise: speaker-grouped stratified k-fold, exactly the folds of ``kfold``.

All protocols are deterministic for a seed and independent of the manifest's row order.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from . import storage

from .errors import EmoaugError, LeakageError

PROTOCOLS = ("kfold", "loso", "paper", "standard")
SPEAKER_INDEPENDENT = ("kfold", "loso", "standard")
REQUIRED_COLUMNS = ("item_id", "speaker", "emotion", "text_id")

SPLITS_FORMAT = "emoaug-splits/1"
PAPER_WARNING = (
    "protocol 'paper' is a random item split: the same speakers appear in train and test, "
    "so its scores are speaker-dependent and not comparable with speaker-independent results"
)
# Manifest columns that ``standard`` reads, and the release partitions (lower case) of each role.
SESSION_COLUMN = "session"
PARTITION_COLUMN = "split_set"
RELEASE_PARTITIONS = {"train": ("train",), "val": ("development", "validation"), "test": ("test1", "test")}
# Above this many candidate speaker sets the validation picker samples instead of enumerating.
_MAX_VAL_CANDIDATES = 256
# Seeded speaker orders tried by the k-fold assigner; the best-stratified one wins.
_KFOLD_ATTEMPTS = 16


class TooFewTrainingSpeakers(EmoaugError):
    """A fold has too few training speakers to hold out the asked validation speakers and still train. A
    run whose count was the split's default retries with fewer (``train_speakers - 1``, down to 0)."""

    def __init__(self, message: str, train_speakers: int):
        super().__init__(message)
        self.train_speakers = train_speakers


@dataclass
class Fold:
    """Item ids of one fold; each list is sorted."""

    index: int
    train: list[str]
    val: list[str]
    test: list[str]
    protocol: str = "kfold"
    speaker_independent: bool = True

    def __post_init__(self):
        self.train = sorted(self.train)
        self.val = sorted(self.val)
        self.test = sorted(self.test)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Fold:
        return cls(
            index=int(data["index"]),
            train=list(data["train"]),
            val=list(data.get("val", [])),
            test=list(data["test"]),
            protocol=str(data.get("protocol", "kfold")),
            speaker_independent=bool(data.get("speaker_independent", True)),
        )


# --------------------------------------------------------------------------------------------------
# make_splits
# --------------------------------------------------------------------------------------------------


def make_splits(
    items: pd.DataFrame,
    protocol: str = "kfold",
    *,
    n_folds: int = 5,
    seed: int = 0,
    val_speakers: int | None = None,
    val_fraction: float = 0.1,
) -> list[Fold]:
    """Folds for ``protocol``.

    ``val_speakers``: number of whole validation speakers per fold for ``kfold`` (default: about
    1/(n_folds-1) of the fold's training speakers, at least 1) and ``loso`` (default 1); 0 means no
    validation subset. ``val_fraction``: share of training items that validate under ``paper``.
    ``n_folds`` is ignored by ``loso`` (one fold per speaker) and ``paper`` (one fold), and by ``standard``
    unless it falls back to k-fold (see the module docstring for what ``standard`` does with each corpus).
    """
    _check_protocol(protocol)
    manifest = _clean_manifest(items)
    if protocol == "kfold":
        return _kfold(manifest, n_folds, seed, val_speakers)
    if protocol == "loso":
        return _loso(manifest, seed, val_speakers)
    if protocol == "standard":
        return _standard(manifest, n_folds, seed, val_speakers)
    return [_paper(manifest, seed, val_fraction)]


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise EmoaugError(f"--split: unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")


def _clean_manifest(items: pd.DataFrame) -> pd.DataFrame:
    """Validated copy sorted by item id, so the row order of the input never changes the folds."""
    missing = [c for c in REQUIRED_COLUMNS if c not in items.columns]
    if missing:
        raise EmoaugError(f"manifest: missing column(s) {', '.join(missing)}")
    if len(items) == 0:
        raise EmoaugError("manifest: no items to split")
    manifest = items.copy()
    for column in ("item_id", "speaker", "emotion", "text_id"):
        manifest[column] = manifest[column].fillna("").astype(str)
    duplicated = manifest["item_id"][manifest["item_id"].duplicated()]
    if len(duplicated):
        raise EmoaugError(f"manifest: duplicate item_id {duplicated.iloc[0]!r}")
    if (manifest["speaker"] == "").any():
        first = manifest.loc[manifest["speaker"] == "", "item_id"].iloc[0]
        raise EmoaugError(f"manifest: item {first!r} has no speaker")
    return manifest.sort_values("item_id", kind="stable").reset_index(drop=True)


def _ids(manifest: pd.DataFrame, mask: np.ndarray | pd.Series) -> list[str]:
    return manifest.loc[np.asarray(mask), "item_id"].tolist()


# ----- kfold ---------------------------------------------------------------------------------------


def _kfold(manifest: pd.DataFrame, n_folds: int, seed: int, val_speakers: int | None) -> list[Fold]:
    _check_kfold_feasible(manifest, n_folds)
    speakers = manifest["speaker"].to_numpy()
    test_groups = _stratified_speaker_folds(manifest, n_folds, np.random.default_rng(seed))
    folds = []
    for index, test_speakers in enumerate(test_groups):
        is_test = np.isin(speakers, test_speakers)
        train_speakers = sorted(set(speakers[~is_test]))
        n_val = _default_val_count(len(train_speakers), n_folds) if val_speakers is None else val_speakers
        _check_val_count(n_val, len(train_speakers), "--folds")
        rng = np.random.default_rng([seed, index])  # per-fold stream: folds pick independently
        val = _pick_val_speakers(manifest[~is_test], train_speakers, n_val, rng)
        is_val = np.isin(speakers, val)
        folds.append(
            Fold(
                index=index,
                train=_ids(manifest, ~is_test & ~is_val),
                val=_ids(manifest, is_val),
                test=_ids(manifest, is_test),
                protocol="kfold",
            )
        )
    return folds


def _stratified_speaker_folds(manifest: pd.DataFrame, n_folds: int, rng: np.random.Generator) -> list[list[str]]:
    """Speakers of each test fold: whole speakers, emotion proportions as even as the speakers allow.

    Same greedy criterion as sklearn's ``StratifiedGroupKFold`` (put each speaker where the per-class
    share of every fold stays most even; ties go to the smaller fold), but the speakers are visited
    in seeded random orders and the best-stratified of ``_KFOLD_ATTEMPTS`` orders is kept. sklearn is
    not used directly because its ``shuffle`` only breaks ties between speakers with identical class
    distributions since scikit-learn PR #32540 (2025; before it, ``shuffle=True`` silently ignored the
    stratification): EmoDB's folds would not change with the seed and would depend on the sklearn
    version.
    """
    counts = pd.crosstab(manifest["speaker"], manifest["emotion"]).sort_index()
    speakers = counts.index.to_numpy()
    per_speaker = counts.to_numpy(dtype=float)
    class_totals = per_speaker.sum(axis=0)
    best_score, best = np.inf, None
    for _ in range(_KFOLD_ATTEMPTS):
        assignment, per_fold = _greedy_assign(per_speaker, class_totals, n_folds, rng.permutation(len(speakers)))
        if (per_fold.sum(axis=1) == 0).any():
            continue
        score = _stratification_spread(per_fold, class_totals)
        if score < best_score - 1e-12:
            best_score, best = score, assignment
    if best is None:
        raise EmoaugError(f"--folds: could not give each of {n_folds} folds a test speaker; use fewer folds")
    return [sorted(speakers[best == k].tolist()) for k in range(n_folds)]


def _greedy_assign(
    per_speaker: np.ndarray, class_totals: np.ndarray, n_folds: int, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    assignment = np.full(len(per_speaker), -1)
    per_fold = np.zeros((n_folds, per_speaker.shape[1]))
    for speaker in order:
        trials = []  # (spread if the speaker joins fold k, fold k's current size, k): min = best, ties -> smaller
        for k in range(n_folds):
            size = per_fold[k].sum()
            per_fold[k] += per_speaker[speaker]
            trials.append((round(_stratification_spread(per_fold, class_totals), 12), size, k))
            per_fold[k] -= per_speaker[speaker]
        best_fold = min(trials)[2]
        per_fold[best_fold] += per_speaker[speaker]
        assignment[speaker] = best_fold
    return assignment, per_fold


def _stratification_spread(per_fold: np.ndarray, class_totals: np.ndarray) -> float:
    """Mean over classes of the std across folds of each fold's share of that class (0 = perfect)."""
    return float(np.mean(np.std(per_fold / class_totals, axis=0)))


def _check_kfold_feasible(manifest: pd.DataFrame, n_folds: int) -> None:
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise EmoaugError(f"--folds: need an integer >= 2, got {n_folds!r}")
    n_speakers = manifest["speaker"].nunique()
    if n_speakers < n_folds:
        raise EmoaugError(f"--folds: {n_folds} folds need at least {n_folds} speakers, the manifest has {n_speakers}")
    counts = manifest["emotion"].value_counts()
    rare = counts[counts < n_folds]
    if len(rare):
        label, count = rare.index[0], int(rare.iloc[0])
        raise EmoaugError(f"--folds: class {label!r} has {count} item(s), fewer than {n_folds} folds")


def _default_val_count(n_train_speakers: int, n_folds: int) -> int:
    """About 1/(k-1) of the training speakers, so validation is roughly as large as a test fold."""
    share = round(n_train_speakers / (n_folds - 1))
    return max(1, min(share, n_train_speakers // 2))


def _check_val_count(n_val: int, n_train_speakers: int, option: str) -> None:
    if not isinstance(n_val, (int, np.integer)) or n_val < 0:
        raise EmoaugError(f"val_speakers: need an integer >= 0, got {n_val!r}")
    if n_val >= n_train_speakers:
        raise TooFewTrainingSpeakers(
            f"{option}: only {n_train_speakers} training speaker(s) per fold, too few to hold out "
            f"{n_val} validation speaker(s) and still train (use fewer folds or --val-speakers 0)",
            n_train_speakers,
        )


def _pick_val_speakers(train: pd.DataFrame, speakers: list[str], n_val: int, rng: np.random.Generator) -> list[str]:
    """``n_val`` training speakers, best by (train keeps every label, val covers every label, gender balance).

    Candidates come in a seed-dependent order and ties keep the first, so the pick is deterministic for
    a seed yet varies across seeds.
    """
    if n_val == 0:
        return []
    labels_by_speaker = {s: set(g["emotion"]) for s, g in train.groupby("speaker")}
    gender_by_speaker = _speaker_genders(train)
    all_labels = set(train["emotion"])

    def score(candidate: tuple[str, ...]) -> tuple[int, int, int]:
        val_labels = set().union(*(labels_by_speaker[s] for s in candidate))
        rest = [s for s in speakers if s not in candidate]
        train_labels = set().union(*(labels_by_speaker[s] for s in rest))
        return (
            len(all_labels - train_labels),
            len(all_labels - val_labels),
            _gender_imbalance(candidate, gender_by_speaker),
        )

    candidates = _val_candidates(speakers, n_val, rng)
    return list(min(candidates, key=score))  # min keeps the first of equal scores


def _val_candidates(speakers: list[str], n_val: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    if math.comb(len(speakers), n_val) <= _MAX_VAL_CANDIDATES:
        combos = list(itertools.combinations(speakers, n_val))
        return [combos[i] for i in rng.permutation(len(combos))]
    return [tuple(sorted(rng.choice(speakers, size=n_val, replace=False))) for _ in range(_MAX_VAL_CANDIDATES)]


def _speaker_genders(items: pd.DataFrame) -> dict[str, str]:
    """Each speaker's most frequent known gender ("" when the manifest has none)."""
    if "gender" not in items.columns:
        return {}
    known = items[items["gender"].fillna("").astype(str).isin(["male", "female"])]
    return {s: g["gender"].mode().iloc[0] for s, g in known.groupby("speaker")}


def _gender_imbalance(candidate: Sequence[str], gender_by_speaker: dict[str, str]) -> int:
    counts = Counter(gender_by_speaker.get(s, "") for s in candidate)
    return abs(counts["male"] - counts["female"])


# ----- loso ----------------------------------------------------------------------------------------


def _loso(manifest: pd.DataFrame, seed: int, val_speakers: int | None) -> list[Fold]:
    speakers = sorted(manifest["speaker"].unique())
    n_val = 1 if val_speakers is None else val_speakers
    if len(speakers) < 2:
        raise EmoaugError(f"--split loso: needs at least 2 speakers, the manifest has {len(speakers)}")
    _check_val_count(n_val, len(speakers) - 1, "--split loso")
    # The validation speakers are the next ones in a seeded cyclic order, so every speaker
    # validates equally often and the pairing changes with the seed.
    cycle = [speakers[i] for i in np.random.default_rng(seed).permutation(len(speakers))]
    position = {s: i for i, s in enumerate(cycle)}
    folds = []
    for index, test_speaker in enumerate(speakers):
        start = position[test_speaker]
        val = {cycle[(start + k) % len(cycle)] for k in range(1, n_val + 1)}
        is_test = (manifest["speaker"] == test_speaker).to_numpy()
        is_val = manifest["speaker"].isin(val).to_numpy()
        folds.append(
            Fold(
                index=index,
                train=_ids(manifest, ~is_test & ~is_val),
                val=_ids(manifest, is_val),
                test=_ids(manifest, is_test),
                protocol="loso",
            )
        )
    return folds


# ----- standard ------------------------------------------------------------------------------------


def standard_kind(items: pd.DataFrame) -> str:
    """Which community protocol ``standard`` applies to ``items``: "sessions", "partitions" or "kfold"."""
    for kind, column in (("sessions", SESSION_COLUMN), ("partitions", PARTITION_COLUMN)):
        if column in items.columns and (_text_column(items, column) != "").any():
            return kind
    return "kfold"


def _text_column(items: pd.DataFrame, column: str) -> pd.Series:
    return items[column].fillna("").astype(str).str.strip()


def _standard(manifest: pd.DataFrame, n_folds: int, seed: int, val_speakers: int | None) -> list[Fold]:
    kind = standard_kind(manifest)
    if kind == "sessions":
        folds = _leave_one_session_out(manifest, seed, val_speakers)
    elif kind == "partitions":
        folds = [_release_partitions(manifest, seed, val_speakers)]
    else:
        folds = _kfold(manifest, n_folds, seed, val_speakers)
    for fold in folds:
        fold.protocol = "standard"
    return folds


def _leave_one_session_out(manifest: pd.DataFrame, seed: int, val_speakers: int | None) -> list[Fold]:
    sessions = _text_column(manifest, SESSION_COLUMN)
    if (sessions == "").any():
        first = manifest.loc[sessions == "", "item_id"].iloc[0]
        raise EmoaugError(f"--split standard: item {first!r} has no session while others have one")
    per_speaker = sessions.groupby(manifest["speaker"]).nunique()
    if (per_speaker > 1).any():
        speaker = per_speaker[per_speaker > 1].index[0]
        found = ", ".join(sorted(set(sessions[manifest["speaker"] == speaker])))
        raise EmoaugError(f"--split standard: speaker {speaker!r} appears in several sessions ({found}); "
                          "leave-one-session-out needs each speaker in one session")
    names = sorted(sessions.unique())
    if len(names) < 2:
        raise EmoaugError(f"--split standard: leave-one-session-out needs at least 2 sessions, the manifest has "
                          f"1 ({names[0]}); use --split kfold or loso")
    n_val = 1 if val_speakers is None else val_speakers
    speakers = manifest["speaker"].to_numpy()
    folds = []
    for index, session in enumerate(names):
        is_test = (sessions == session).to_numpy()
        train_speakers = sorted(set(speakers[~is_test]))
        _check_val_count(n_val, len(train_speakers), "--split standard")
        val = _pick_val_speakers(manifest[~is_test], train_speakers, n_val, np.random.default_rng([seed, index]))
        is_val = np.isin(speakers, val)
        folds.append(Fold(index=index, train=_ids(manifest, ~is_test & ~is_val), val=_ids(manifest, is_val),
                          test=_ids(manifest, is_test), protocol="standard"))
    return folds


def _release_roles(manifest: pd.DataFrame) -> pd.Series:
    """Each item's role under the release partitions: "train", "val", "test" or "" (left out)."""
    partitions = _text_column(manifest, PARTITION_COLUMN).str.lower()
    role = pd.Series("", index=manifest.index)
    for name, values in RELEASE_PARTITIONS.items():
        role[partitions.isin(values)] = name
    return role


def _release_partitions(manifest: pd.DataFrame, seed: int, val_speakers: int | None) -> Fold:
    role = _release_roles(manifest)
    found = ", ".join(sorted(set(_text_column(manifest, PARTITION_COLUMN)) - {""}))
    for name, wanted in (("train", "Train"), ("test", "Test1")):
        if not (role == name).any():
            raise EmoaugError(f"--split standard: the release partitions have no {wanted} items (split_set "
                              f"values: {found}); use --split kfold")
    speaker = manifest["speaker"]
    # A speaker in two partitions (not by design): Test1 keeps it, then Train; its other items are left out.
    is_test = (role == "test").to_numpy()
    is_train = ((role == "train") & ~speaker.isin(set(speaker[is_test]))).to_numpy()
    is_val = ((role == "val") & ~speaker.isin(set(speaker[is_test]) | set(speaker[is_train]))).to_numpy()
    if val_speakers is not None and (not isinstance(val_speakers, (int, np.integer)) or val_speakers < 0):
        raise EmoaugError(f"val_speakers: need an integer >= 0, got {val_speakers!r}")
    if val_speakers == 0:
        is_val = np.zeros(len(manifest), dtype=bool)
    elif not is_val.any():  # no Development partition: whole speakers of Train validate
        train_speakers = sorted(set(speaker[is_train]))
        n_val = max(1, round(len(train_speakers) / 10)) if val_speakers is None else val_speakers
        _check_val_count(n_val, len(train_speakers), "--split standard")
        val = _pick_val_speakers(manifest[is_train], train_speakers, n_val, np.random.default_rng(seed))
        is_val = is_train & np.isin(speaker.to_numpy(), val)
        is_train = is_train & ~is_val
    return Fold(index=0, train=_ids(manifest, is_train), val=_ids(manifest, is_val), test=_ids(manifest, is_test),
                protocol="standard")


def describe_standard(items: pd.DataFrame, folds: Sequence[Fold]) -> str:
    """What ``standard`` did with ``items``, in words (the audit's ``standard`` field)."""
    kind = standard_kind(items)
    if kind == "sessions":
        return f"leave-one-session-out ({_text_column(items, SESSION_COLUMN).nunique()} sessions)"
    if kind == "kfold":
        return f"speaker-grouped k-fold ({len(folds)} folds)"
    manifest = _clean_manifest(items)
    role = dict(zip(manifest["item_id"], _release_roles(manifest)))
    partition = dict(zip(manifest["item_id"], _text_column(manifest, PARTITION_COLUMN)))

    def named(part: str) -> str:
        return ", ".join(sorted({partition[i] for fold in folds for i in getattr(fold, part)})) or "none"

    val_ids = [i for fold in folds for i in fold.val]
    carved = val_ids and all(role[i] == "train" for i in val_ids)
    val_text = f"whole speakers carved out of {named('val')} (no Development partition)" if carved else named("val")
    return f"release partitions (train {named('train')}, validation {val_text}, test {named('test')})"


# ----- paper ---------------------------------------------------------------------------------------


def _paper(manifest: pd.DataFrame, seed: int, val_fraction: float) -> Fold:
    """Kim & Lee 2024: stratified random 80/20 item split; 10 % of train validates (stratified when possible)."""
    if not 0.0 <= val_fraction < 1.0:
        raise EmoaugError(f"val_fraction: need 0 <= value < 1, got {val_fraction!r}")
    ids = manifest["item_id"].to_numpy()
    labels = manifest["emotion"].to_numpy()
    counts = Counter(labels)
    if min(counts.values()) < 2:
        rare = min(counts, key=counts.get)
        raise EmoaugError(f"--split paper: class {rare!r} has {counts[rare]} item, need >= 2 to stratify")
    train_ids, test_ids, train_labels, _ = train_test_split(
        ids, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    val_ids: list[str] = []
    n_val = round(val_fraction * len(train_ids))
    if n_val > 0:
        stratify = train_labels if _can_stratify(train_labels, n_val) else None
        train_ids, val_ids = train_test_split(train_ids, test_size=n_val, random_state=seed, stratify=stratify)
    return Fold(
        index=0,
        train=list(train_ids),
        val=list(val_ids),
        test=list(test_ids),
        protocol="paper",
        speaker_independent=False,
    )


def _can_stratify(labels: np.ndarray, n_val: int) -> bool:
    counts = Counter(labels.tolist())
    return min(counts.values()) >= 2 and len(counts) <= n_val <= len(labels) - len(counts)


# --------------------------------------------------------------------------------------------------
# audit_splits
# --------------------------------------------------------------------------------------------------


def audit_splits(items: pd.DataFrame, folds: Sequence[Fold], protocol: str) -> dict:
    """JSON-able facts about ``folds``; raises ``LeakageError`` when a fold leaks.

    An item in two partitions of one fold is leakage under every protocol. Under a speaker-independent
    protocol a speaker shared by any two partitions (train/val/test) is leakage too. Shared *texts*
    are only reported: EmoDB and RAVDESS reuse their sentences across all speakers.
    """
    _check_protocol(protocol)
    manifest = _clean_manifest(items).set_index("item_id")
    labels = sorted(manifest["emotion"].unique())
    speaker_independent = protocol in SPEAKER_INDEPENDENT
    fold_reports = [_audit_fold(manifest, fold, labels, speaker_independent) for fold in folds]
    report: dict = {
        "protocol": protocol,
        "speaker_independent": speaker_independent,
        "n_folds": len(folds),
        "n_items": int(len(manifest)),
        "n_speakers": int(manifest["speaker"].nunique()),
        "labels": labels,
        "folds": fold_reports,
    }
    if protocol == "standard":
        report["standard"] = describe_standard(items, folds)
        if standard_kind(items) == "partitions":
            in_folds = {i for fold in folds for part in _PARTITIONS for i in getattr(fold, part)}
            left = manifest.loc[~manifest.index.isin(in_folds)]
            report["left_out"] = dict(sorted(Counter(_text_column(left, PARTITION_COLUMN)).items()))
    if speaker_independent:
        report["test_coverage"] = _test_coverage(manifest.index, folds)
    else:
        report["speaker_dependent"] = True
        report["warning"] = PAPER_WARNING
    return report


_PARTITIONS = ("train", "val", "test")


def _audit_fold(manifest: pd.DataFrame, fold: Fold, labels: list[str], speaker_independent: bool) -> dict:
    parts = {name: list(getattr(fold, name)) for name in _PARTITIONS}
    _check_known_items(manifest, fold, parts)
    _check_item_overlap(fold, parts)
    rows = {name: manifest.loc[ids] for name, ids in parts.items()}
    speakers = {name: set(rows[name]["speaker"]) for name in _PARTITIONS}
    overlap = {
        f"{a}_{b}": sorted(speakers[a] & speakers[b]) for a, b in (("train", "test"), ("val", "test"), ("train", "val"))
    }
    if speaker_independent:
        _check_speaker_overlap(fold, overlap)
    content_overlap = _content_overlap(fold, rows)
    label_counts = {name: _label_counts(rows[name], labels) for name in _PARTITIONS}
    return {
        "index": fold.index,
        "sizes": {name: len(ids) for name, ids in parts.items()},
        "n_speakers": {name: len(speakers[name]) for name in _PARTITIONS},
        "speakers": {name: sorted(speakers[name]) for name in _PARTITIONS},
        "speaker_overlap": overlap,
        "content_overlap": content_overlap,
        "text_overlap": text_overlap(rows["train"]["text_id"], rows["test"]["text_id"]),
        "label_counts": label_counts,
        "labels_missing": {
            name: [label for label in labels if label_counts[name][label] == 0] for name in _PARTITIONS
        },
    }


def _check_known_items(manifest: pd.DataFrame, fold: Fold, parts: dict[str, list[str]]) -> None:
    for name, ids in parts.items():
        unknown = [i for i in ids if i not in manifest.index]
        if unknown:
            raise EmoaugError(
                f"splits: fold {fold.index} {name} has {len(unknown)} item(s) not in the manifest, e.g. {unknown[0]!r}"
            )


def _check_item_overlap(fold: Fold, parts: dict[str, list[str]]) -> None:
    for a, b in itertools.combinations(_PARTITIONS, 2):
        shared = sorted(set(parts[a]) & set(parts[b]))
        if shared:
            raise LeakageError(f"fold {fold.index}: {len(shared)} item(s) in both {a} and {b}, e.g. {shared[0]!r}")


def _content_overlap(fold: Fold, rows: dict[str, pd.DataFrame]) -> dict[str, int] | None:
    """Items of two partitions with byte-identical audio (same sha1): one recording on both sides of a
    split under two names. The loaders drop such copies, so anything here is leakage. None: no hashes."""
    if any("sha1" not in part.columns for part in rows.values()):
        return None
    hashes = {name: set(part["sha1"].dropna()) - {""} for name, part in rows.items()}
    counts = {f"{a}_{b}": len(hashes[a] & hashes[b]) for a, b in (("train", "test"), ("val", "test"), ("train", "val"))}
    leaks = [f"{pair.replace('_', '/')}: {n}" for pair, n in counts.items() if n]
    if leaks:
        raise LeakageError(f"fold {fold.index}: items with identical audio in two partitions ({'; '.join(leaks)})")
    return counts


def _check_speaker_overlap(fold: Fold, overlap: dict[str, list[str]]) -> None:
    leaks = [f"{pair.replace('_', '/')}: {', '.join(shared)}" for pair, shared in overlap.items() if shared]
    if leaks:
        raise LeakageError(f"fold {fold.index}: speakers shared across partitions ({'; '.join(leaks)})")


def _label_counts(rows: pd.DataFrame, labels: list[str]) -> dict[str, int]:
    counts = Counter(rows["emotion"])
    return {label: int(counts.get(label, 0)) for label in labels}


def text_overlap(train_texts: Iterable[str], test_texts: Iterable[str]) -> dict:
    """How many test items say a sentence that training also contains ("" = unknown text, ignored)."""
    train_set = {t for t in train_texts if t}
    test_known = [t for t in test_texts if t]
    shared_items = sum(t in train_set for t in test_known)
    return {
        "n_test_items_known_text": len(test_known),
        "n_shared_texts": len(train_set & set(test_known)),
        "n_test_items_with_train_text": int(shared_items),
        "fraction_test_items_with_train_text": (shared_items / len(test_known)) if test_known else None,
    }


def _test_coverage(all_ids: Iterable[str], folds: Sequence[Fold]) -> dict:
    tested = Counter(i for fold in folds for i in fold.test)
    never = sorted(i for i in all_ids if i not in tested)
    twice = sorted(i for i, n in tested.items() if n > 1)
    return {
        "every_item_tested_once": not never and not twice,
        "n_never_tested": len(never),
        "n_tested_more_than_once": len(twice),
        "examples_never_tested": never[:5],
        "examples_tested_more_than_once": twice[:5],
    }


# --------------------------------------------------------------------------------------------------
# persistence
# --------------------------------------------------------------------------------------------------


def save_splits(folds: Sequence[Fold], path: str | Path) -> Path:
    """Write the folds as JSON (item ids per partition) and return the path."""
    payload = {"format": SPLITS_FORMAT, "folds": [fold.to_dict() for fold in folds]}
    return storage.write_text(path, json.dumps(payload, indent=1))  # atomic: never half a split file


def load_splits(path: str | Path) -> list[Fold]:
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmoaugError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EmoaugError(f"{path}: cannot read split file ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != SPLITS_FORMAT:
        raise EmoaugError(f"{path}: not an emoaug split file (expected format {SPLITS_FORMAT!r})")
    try:
        return [Fold.from_dict(entry) for entry in payload["folds"]]
    except (KeyError, TypeError, ValueError) as err:
        raise EmoaugError(f"{path}: malformed fold entry ({err})") from None
