"""Near-duplicate recordings: copies of one recording that are not byte-identical (dithered, re-gained,
resampled, re-encoded, trimmed), found from the log-mel features every run computes anyway.

Merged corpora and scraped collections hold such copies under different file (and speaker) names; a test item
with a near-copy in training scores like a training item, whatever the split says about speakers. The byte-level
check (identical sha1) misses all of them.

How a pair is judged (two stages, both on the cached, unnormalised dB features of the run's preset):

1. *Candidates.* Each item is summarised by the mean and standard deviation of :data:`N_BANDS` coarse bands
   below :data:`MAX_HZ` (so that a copy resampled to 8 kHz keeps them) over its loud frames (within
   :data:`LOUD_DB` of the loudest one, so that dither and noise floors do not count). Every item's
   :data:`CANDIDATES` most similar items above :data:`CANDIDATE_SIMILARITY` (cosine of the standardised
   summaries) are candidates, by two views: the means alone (robust to added noise) and means with deviations
   (robust to trimming).
2. *Verification.* A candidate pair is a near-duplicate when its band-energy sequences (slow trends removed, each
   block centred per band within the overlap, so a gain change or a re-encoding's equalisation does not matter)
   correlate at or above :data:`THRESHOLD` at the best time shift (so a trimmed copy aligns), searched at ~40 ms
   and refined at the preset's frame rate. A copy follows the original frame by frame; another take of the same
   sentence by the same speaker, in the same emotion, does not: its timing differs. Items with less than
   :data:`MIN_ACTIVE_FRAMES` coarse frames of speech are not compared.

The thresholds are calibrated with ``benchmarks/near_duplicates.py`` on real EmoDB (copies made by dither, gain,
resampling, MP3 re-encoding and trimming must be found; different speakers saying the same sentence and one
speaker's different takes must not be); the README gives the measured margins and false-positive counts.

The candidate stage compares every item with every other, in blocks (time grows with the square of the corpus,
at ~3 x N_BANDS multiply-adds per pair); memory stays at one block of similarities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .presets import MelPreset

#: version of the method; a change of any constant below changes what is flagged, so it bumps this
METHOD = "band-sequence-correlation/1"
N_BANDS = 32
MIN_HZ, MAX_HZ = 80.0, 3600.0
TREND_SECONDS = 0.5  # slower changes (an utterance's onset, decay, fades) are removed before correlating
POOL_SECONDS = 0.04  # frames are averaged to about 40 ms: copies align to the frame, other takes still do not
ACTIVE_DB = 35.0  # frames within this many dB of an item's loudest frame are speech, the rest silence or noise
LOUD_DB = 20.0  # the candidate summary uses only frames this close to the loudest one
COARSE_MIN = 0.6  # below this at every coarse shift a pair is not refined
MIN_ACTIVE_FRAMES = 20  # about 0.8 s of speech (coarse frames): shorter items and overlaps are not compared,
# since over a few frames another recording correlates highly by chance
MIN_OVERLAP = 0.5  # a shift must overlap at least half of the shorter item's speech
CANDIDATES = 8
CANDIDATE_SIMILARITY = 0.3
THRESHOLD = 0.90
BLOCK_ROWS = 512


# --------------------------------------------------------------------------------------------- fingerprints
@dataclass(frozen=True)
class Fingerprint:
    """What the search keeps of one item: its band-energy sequence at ~40 ms (every ``pool``-th frame of
    :func:`band_sequence`, float16: a few KB per item), and ``summary`` [2 * bands]: band means and deviations
    over its loud frames, for the candidate search."""

    coarse: np.ndarray
    pool: int
    summary: np.ndarray

    @property
    def usable(self) -> bool:
        return self.coarse.shape[0] >= MIN_ACTIVE_FRAMES


def band_matrix(preset: MelPreset) -> np.ndarray:
    """[bands, n_mels] averaging weights: each band is the mean dB of the mel bins whose centre lies in it
    (bands equally spaced on the mel scale between MIN_HZ and MAX_HZ, clipped to the preset's range)."""
    import librosa

    centres = librosa.mel_frequencies(preset.n_mels + 2, fmin=preset.fmin, fmax=preset.fmax, htk=False)[1:-1]
    low, high = max(MIN_HZ, preset.fmin), min(MAX_HZ, preset.fmax)
    edges = librosa.mel_to_hz(np.linspace(librosa.hz_to_mel(low), librosa.hz_to_mel(high), N_BANDS + 1))
    weights = np.zeros((N_BANDS, preset.n_mels), dtype=np.float32)
    for band in range(N_BANDS):
        inside = (centres >= edges[band]) & (centres < edges[band + 1])
        if not inside.any():  # a band narrower than the mel spacing: the nearest bin
            inside = np.arange(preset.n_mels) == np.argmin(np.abs(centres - (edges[band] + edges[band + 1]) / 2))
        weights[band, inside] = 1.0 / inside.sum()
    return weights


def pool_factor(preset: MelPreset) -> int:
    return max(1, round(POOL_SECONDS * preset.sample_rate / preset.hop_length))


def band_sequence(array: np.ndarray, bands: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """(sequence [frames, bands], summary) of one item's features ([S, n_mels, frames] dB; segments are
    consecutive in time): band energies smoothed over ``pool`` frames at the preset's own frame rate, cropped
    to the speech (first to last frame within ACTIVE_DB of the loudest) and floored ACTIVE_DB below the loudest
    frame, so that dither and noise floors read alike."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    energies = bands @ np.concatenate(list(array), axis=1)  # [bands, S * frames]
    if energies.shape[1] < pool:
        return np.zeros((0, bands.shape[0]), np.float32), np.zeros(2 * bands.shape[0], np.float32)
    running = np.cumsum(np.pad(energies, ((0, 0), (1, 0))), axis=1, dtype=np.float64)
    smoothed = (running[:, pool:] - running[:, :-pool]) / pool  # moving average, stride one frame
    loudness = smoothed.max(axis=0)
    active = np.flatnonzero(loudness > loudness.max() - ACTIVE_DB)
    speech = np.maximum(smoothed[:, active[0]:active[-1] + 1], loudness.max() - ACTIVE_DB)
    speech = speech - _moving_mean(speech, max(1, round(TREND_SECONDS / POOL_SECONDS * pool)))
    loud = smoothed[:, loudness > loudness.max() - LOUD_DB]  # noise at 30 dB SNR barely moves these
    summary = np.concatenate([loud.mean(axis=1) - loud.mean(), loud.std(axis=1)])
    return np.ascontiguousarray(speech.T, dtype=np.float32), summary.astype(np.float32)


def _moving_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving mean over ``width`` frames along time (fewer at the ends): the slow trend of each band,
    which every utterance's onset, decay and fade share; a copy shares the fast detail too."""
    running = np.cumsum(np.pad(x, ((0, 0), (1, 0))), axis=1)
    n = x.shape[1]
    start = np.clip(np.arange(n) - width // 2, 0, n)
    stop = np.clip(np.arange(n) + width - width // 2, 0, n)
    return (running[:, stop] - running[:, start]) / (stop - start)


def fingerprint(array: np.ndarray, bands: np.ndarray, pool: int) -> Fingerprint:
    sequence, summary = band_sequence(array, bands, pool)
    return Fingerprint(sequence[::pool].astype(np.float16), pool, summary)


# ------------------------------------------------------------------------------------------------ similarity
def _pearson(dots: np.ndarray, sums_a: np.ndarray, sums_b: np.ndarray, squares_a: np.ndarray,
             squares_b: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Correlation of two overlapping blocks, each centred per band within the overlap, from their sums."""
    covariance = dots - np.einsum("kb,kb->k", sums_a, sums_b) / n
    variance_a = squares_a - np.einsum("kb,kb->k", sums_a, sums_a) / n
    variance_b = squares_b - np.einsum("kb,kb->k", sums_b, sums_b) / n
    # a (nearly) constant block has no shape to follow: no correlation (also guards the cancellation above)
    flat = (variance_a <= 1e-6 * squares_a) | (variance_b <= 1e-6 * squares_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = covariance / np.sqrt(variance_a * variance_b)
    return np.where(flat, np.nan, np.clip(correlation, -1.0, 1.0))


def _shift_correlations(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shifts k = j - i, correlation at each) of two sequences over every shift that overlaps at least
    MIN_OVERLAP of the shorter one."""
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)  # small numbers: the sums below cancel less
    na, nb = a.shape[0], b.shape[0]
    gram = a.astype(np.float64) @ b.T.astype(np.float64)  # frame i of a against frame j of b
    diagonal = (np.arange(nb)[None, :] - np.arange(na)[:, None] + (na - 1)).ravel()
    dots = np.bincount(diagonal, weights=gram.ravel(), minlength=na + nb - 1)
    shifts = np.arange(-(na - 1), nb)
    start_a, stop_a = np.clip(-shifts, 0, na), np.clip(nb - shifts, 0, na)
    n = stop_a - start_a
    keep = n >= max(MIN_ACTIVE_FRAMES, MIN_OVERLAP * min(na, nb))
    shifts, start_a, stop_a, n, dots = shifts[keep], start_a[keep], stop_a[keep], n[keep], dots[keep]
    cum_a, cum_b = _cumulative(a), _cumulative(b)
    square_a, square_b = _cumulative(np.einsum("ij,ij->i", a, a)[:, None]), _cumulative(
        np.einsum("ij,ij->i", b, b)[:, None])
    start_b, stop_b = start_a + shifts, stop_a + shifts
    correlation = _pearson(dots, cum_a[stop_a] - cum_a[start_a], cum_b[stop_b] - cum_b[start_b],
                           (square_a[stop_a] - square_a[start_a])[:, 0], (square_b[stop_b] - square_b[start_b])[:, 0],
                           n)
    return shifts, correlation


def _cumulative(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0, dtype=np.float64)])


def _correlation_at(a: np.ndarray, b: np.ndarray, shift: int) -> float:
    start_a, stop_a = max(0, -shift), min(a.shape[0], b.shape[0] - shift)
    if stop_a - start_a < max(2, MIN_OVERLAP * min(a.shape[0], b.shape[0])):
        return math.nan
    x = a[start_a:stop_a].astype(np.float64)
    y = b[start_a + shift:stop_a + shift].astype(np.float64)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    denominator = math.sqrt(float(np.sum(x * x)) * float(np.sum(y * y)))
    return float(np.sum(x * y)) / denominator if denominator > 0 else math.nan


def coarse_similarity(a: Fingerprint, b: Fingerprint) -> tuple[float, int]:
    """(highest correlation, its shift in the preset's frames) of two items' coarse sequences over every time
    shift that overlaps at least MIN_OVERLAP of the shorter one; each block is centred per band within the
    overlap, so gain and equalisation do not matter. NaN when either is too short to tell."""
    if not (a.usable and b.usable) or a.pool != b.pool:
        return math.nan, 0
    shifts, correlations = _shift_correlations(a.coarse.astype(np.float32), b.coarse.astype(np.float32))
    if not np.isfinite(correlations).any():
        return math.nan, 0
    best = int(np.nanargmax(correlations))
    return float(correlations[best]), int(shifts[best]) * a.pool


def refined_similarity(a: np.ndarray, b: np.ndarray, shift: int, pool: int) -> float:
    """The highest correlation of two full-rate sequences (:func:`band_sequence`) within one coarse frame of
    ``shift``: a trimmed copy is shifted by a fraction of a coarse frame, which costs the coarse search a few
    hundredths."""
    values = [_correlation_at(a, b, k) for k in range(shift - pool, shift + pool + 1)]
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else math.nan


# ------------------------------------------------------------------------------------------------- search
def candidate_pairs(summaries: np.ndarray, groups: np.ndarray | None = None, *, candidates: int = CANDIDATES,
                    min_similarity: float = CANDIDATE_SIMILARITY) -> list[tuple[int, int]]:
    """(i, j), i < j, for each row's ``candidates`` most similar rows (cosine of the standardised summaries,
    above ``min_similarity``) by two views: the band means alone (robust to added noise, which flattens the
    deviations) and means with deviations (robust to trimming, which moves the means of a short item). Rows of
    one group (``groups[i] == groups[j]``, e.g. one speaker) are never paired."""
    n = summaries.shape[0]
    if n <= candidates + 1:  # every pair is a candidate anyway (and a handful of rows cannot be standardised)
        return [(i, j) for i in range(n) for j in range(i + 1, n) if groups is None or groups[i] != groups[j]]
    z = (summaries - summaries.mean(axis=0)) / np.maximum(summaries.std(axis=0), 1e-6)
    views = [_unit_rows(z[:, :N_BANDS]), _unit_rows(z)]
    k = min(candidates, n - 1)
    found: set[tuple[int, int]] = set()
    for start in range(0, n, BLOCK_ROWS):
        rows = np.arange(start, min(start + BLOCK_ROWS, n))
        excluded = rows[:, None] == np.arange(n)[None, :]
        if groups is not None:
            excluded |= groups[rows][:, None] == groups[None, :]
        for view in views:
            similarity = np.where(excluded, -np.inf, view[rows] @ view.T)
            top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            keep = np.take_along_axis(similarity, top, axis=1) >= min_similarity
            found.update((min(i, j), max(i, j)) for i, j in zip(np.repeat(rows, k)[keep.ravel()], top[keep]))
    return sorted(found)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class Verifier:
    """Fingerprints of a corpus's items (kept: a few KB each) and the two-step similarity of any two of them
    (the full-rate sequences are recomputed from ``features`` for the rare pairs that need refining)."""

    def __init__(self, features: Mapping, ids: Sequence, preset: MelPreset):
        self.features, self.ids = features, list(ids)
        self.bands, self.pool = band_matrix(preset), pool_factor(preset)
        self.prints = [fingerprint(features[item_id], self.bands, self.pool) for item_id in self.ids]

    def similarity(self, a: int, b: int) -> float:
        value, shift = coarse_similarity(self.prints[a], self.prints[b])
        if not value >= COARSE_MIN:  # far from a copy at every shift (or NaN): no need to refine
            return value
        fine_a, _ = band_sequence(self.features[self.ids[a]], self.bands, self.pool)
        fine_b, _ = band_sequence(self.features[self.ids[b]], self.bands, self.pool)
        refined = refined_similarity(fine_a, fine_b, shift, self.pool)
        return max(value, refined) if math.isfinite(refined) else value


def near_duplicate_pairs(features: Mapping[str, np.ndarray], items: pd.DataFrame, preset: MelPreset, *,
                         separate_speakers: bool = True, threshold: float = THRESHOLD) -> pd.DataFrame:
    """Near-duplicate pairs among ``items`` (item_id, speaker): columns ``item_a, item_b, similarity``, sorted by
    similarity (highest first). ``separate_speakers``: only pairs of different speakers are compared (under a
    speaker-independent split one speaker's recordings never straddle partitions)."""
    verifier = Verifier(features, [str(item_id) for item_id in items["item_id"]], preset)
    groups = pd.factorize(items["speaker"].astype(str))[0] if separate_speakers else None
    found = _verified_pairs(verifier, groups, threshold)
    frame = _pair_frame([(verifier.ids[a], verifier.ids[b], value) for a, b, value in found])
    frame.attrs["too_short"] = sum(not fp.usable for fp in verifier.prints)  # not compared at all
    return frame


def cross_corpus_pairs(train_features: Mapping[str, np.ndarray], train_items: pd.DataFrame,
                       test_features: Mapping[str, np.ndarray], test_items: pd.DataFrame, preset: MelPreset, *,
                       threshold: float = THRESHOLD) -> pd.DataFrame:
    """Near-duplicate pairs between a training corpus and a test corpus (the cross protocol): ``item_a`` is the
    test corpus's item, ``item_b`` the training corpus's (ids of the two corpora may coincide)."""
    test_ids, train_ids = [str(i) for i in test_items["item_id"]], [str(i) for i in train_items["item_id"]]
    both = _TwoCorpora(test_features, train_features)
    verifier = Verifier(both, [("test", i) for i in test_ids] + [("train", i) for i in train_ids], preset)
    groups = np.repeat([0, 1], [len(test_ids), len(train_ids)])
    found = _verified_pairs(verifier, groups, threshold)
    names = test_ids + train_ids
    return _pair_frame([(names[a], names[b], value) for a, b, value in found])


class _TwoCorpora:
    """Features of two corpora under ("test", id) and ("train", id) keys."""

    def __init__(self, test: Mapping[str, np.ndarray], train: Mapping[str, np.ndarray]):
        self.parts = {"test": test, "train": train}

    def __getitem__(self, key: tuple[str, str]) -> np.ndarray:
        return self.parts[key[0]][key[1]]


def _verified_pairs(verifier: Verifier, groups: np.ndarray | None, threshold: float) -> list[tuple[int, int, float]]:
    """(a, b, similarity) of the candidate pairs (never within one group) that verify above ``threshold``."""
    usable = np.flatnonzero([fp.usable for fp in verifier.prints])
    summaries = np.stack([verifier.prints[i].summary for i in usable]) if usable.size else np.zeros((0, 2 * N_BANDS))
    found = []
    for i, j in candidate_pairs(summaries, None if groups is None else np.asarray(groups)[usable]):
        a, b = int(usable[i]), int(usable[j])
        value = verifier.similarity(a, b)
        if value >= threshold:
            found.append((a, b, round(value, 4)))
    return found


def _pair_frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["item_a", "item_b", "similarity"])
    return frame.sort_values(["similarity", "item_a", "item_b"], ascending=[False, True, True], ignore_index=True)


# -------------------------------------------------------------------------------------------------- audit
#: pairs listed per fold and partition pair in split_audit.json (all are counted)
MAX_LISTED = 200
_CROSSINGS = (("test", "train"), ("test", "val"), ("val", "train"))


def audit_near_duplicates(pairs: pd.DataFrame, items: pd.DataFrame, folds: Sequence, *, preset: MelPreset,
                          separate_speakers: bool, allowed: bool) -> dict:
    """The split audit's ``near_duplicates`` section: every near-duplicate pair whose two items fall into two
    partitions of one fold (test/train, test/val, val/train), with both paths. ``test_items_with_copies``
    counts (fold, test item) pairs with a near-copy among the training or validation items: a run stops on
    any unless ``allowed``."""
    paths = dict(zip(items["item_id"].astype(str), items["path"].astype(str)))
    fold_reports, leaking = [], 0
    for fold in folds:
        where = {item_id: part for part in ("train", "val", "test") for item_id in getattr(fold, part)}
        crossing = {f"{a}_{b}": [] for a, b in _CROSSINGS}
        for row in pairs.itertuples(index=False):
            sides = {where.get(row.item_a): row.item_a, where.get(row.item_b): row.item_b}
            for a, b in _CROSSINGS:
                if a in sides and b in sides and len(sides) == 2:
                    crossing[f"{a}_{b}"].append({a: sides[a], f"{a}_path": paths.get(sides[a], ""), b: sides[b],
                                                 f"{b}_path": paths.get(sides[b], ""),
                                                 "similarity": row.similarity})
        test_items = {pair["test"] for key in ("test_train", "test_val") for pair in crossing[key]}
        leaking += len(test_items)
        fold_reports.append({"index": fold.index, "test_items_with_copies": len(test_items),
                             "counts": {key: len(found) for key, found in crossing.items()},
                             "pairs": {key: found[:MAX_LISTED] for key, found in crossing.items() if found}})
    return {"method": METHOD, "threshold": THRESHOLD, "preset": preset.name,
            "compared": "pairs of different speakers" if separate_speakers else "all pairs",
            "pairs_in_corpus": int(len(pairs)), "test_items_with_copies": leaking, "allowed": bool(allowed),
            # items with less speech than MIN_ACTIVE_FRAMES coarse frames (~0.8 s) cannot be told from chance
            "items_too_short_to_compare": int(pairs.attrs.get("too_short", 0)),
            "folds": fold_reports}


def leak_message(section: dict) -> str:
    """One line for a run that stops because test items have near-copies in training."""
    listed = [pair for fold in section["folds"] for key in ("test_train", "test_val")
              for pair in fold["pairs"].get(key, [])] + section.get("cross_corpus", {}).get("pairs", [])
    example = listed[0] if listed else None
    where = "" if example is None else (
        f", e.g. {example['test_path']} ~ {example.get('train_path') or example.get('val_path')} "
        f"(similarity {example['similarity']:.3f})")
    return (f"{section['test_items_with_copies']} test item(s) have near-copies in training or validation{where}; "
            "every pair is listed in split_audit.json (near_duplicates); remove the copies, or pass "
            "--allow-near-duplicates to run anyway (every table is then flagged)")


def audit_cross_corpus(pairs: pd.DataFrame, train_items: pd.DataFrame, test_items: pd.DataFrame) -> dict:
    """The near-duplicate section's ``cross_corpus`` part: test-corpus items with a near-copy in the training
    corpus (:func:`cross_corpus_pairs`), which trains in every fold."""
    test_paths = dict(zip(test_items["item_id"].astype(str), test_items["path"].astype(str)))
    train_paths = dict(zip(train_items["item_id"].astype(str), train_items["path"].astype(str)))
    listed = [{"test": row.item_a, "test_path": test_paths.get(row.item_a, ""), "train": row.item_b,
               "train_path": train_paths.get(row.item_b, ""), "similarity": row.similarity}
              for row in pairs.head(MAX_LISTED).itertuples(index=False)]
    return {"pairs_between_corpora": int(len(pairs)), "test_items_with_copies": int(pairs["item_a"].nunique()),
            "pairs": listed}
