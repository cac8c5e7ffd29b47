"""The audio front end: fixed-length clips -> log-mel spectrograms (dB) -> cache -> normalised FeatureSet.

Two implementations of the same log-mel transform live here:

* :func:`logmel_librosa` is the reference, with every librosa parameter spelled out;
* :func:`logmel_torch` is the batched path used for extraction (CPU or CUDA). It computes in float64
  because a float32 ``torch.stft`` drifts by up to ~2e-3 dB from librosa on pure tones, while float64
  stays within ~1e-5 dB (librosa's own float32 result is that accurate).

Cached arrays are *unnormalised* dB values; normalisation statistics depend on the training fold and
are therefore applied later by :class:`Normaliser`, never stored in the cache.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import storage
from .errors import BadAudioError, EmoaugError
from .featureset import FeatureSet, RowFile
from .presets import FRONTEND_VERSION, LENGTH_MODES, NORMALISATIONS, PRESETS, MelPreset, get_preset  # noqa: F401

log = logging.getLogger(__name__)

# power_to_db settings shared by both implementations (librosa's defaults, written out).
_AMIN = 1e-10
_REF = 1.0


# ------------------------------------------------------------------------------------ clip length
def fix_length(y: np.ndarray, preset: MelPreset) -> np.ndarray:
    """Cut or zero-pad a mono signal to clips of ``preset.n_samples``; returns float32 [S, n_samples]."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"fix_length expects a 1-D mono signal, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("fix_length: empty signal")
    n = preset.n_samples
    if preset.length_mode == "pad":
        return _pad_end(y[:n], n)[None, :]
    if preset.length_mode == "center":
        return _center(y, n)[None, :]
    return _segments(y, n)


def _pad_end(y: np.ndarray, n: int) -> np.ndarray:
    return np.pad(y, (0, n - y.size), mode="constant")


def _center(y: np.ndarray, n: int) -> np.ndarray:
    if y.size >= n:
        start = (y.size - n) // 2
        return y[start:start + n]
    left = (n - y.size) // 2
    return np.pad(y, (left, n - y.size - left), mode="constant")


def _segments(y: np.ndarray, n: int) -> np.ndarray:
    """Non-overlapping segments; a trailing partial one is kept (zero-padded) if >= half a segment
    or if it is all there is, so no utterance ever disappears."""
    n_full, remainder = divmod(y.size, n)
    parts = [y[k * n:(k + 1) * n] for k in range(n_full)]
    if remainder and (2 * remainder >= n or n_full == 0):
        parts.append(_pad_end(y[n_full * n:], n))
    return np.stack(parts)


# ------------------------------------------------------------------------------------ log-mel
def logmel_librosa(segments: np.ndarray, preset: MelPreset) -> np.ndarray:
    """Reference log-mel: [S, N] (or [N]) float signal -> [S, n_mels, frames] float32 dB."""
    import librosa

    segments = np.atleast_2d(np.asarray(segments, dtype=np.float32))
    out = []
    for segment in segments:
        power = librosa.feature.melspectrogram(
            y=segment, sr=preset.sample_rate, n_fft=preset.n_fft, hop_length=preset.hop_length,
            win_length=preset.win_length, window="hann", center=True, pad_mode="constant", power=2.0,
            n_mels=preset.n_mels, fmin=preset.fmin, fmax=preset.fmax, htk=False, norm="slaney")
        power = _fix_frames_np(power, preset.frames)
        out.append(librosa.power_to_db(power, ref=_REF, amin=_AMIN, top_db=preset.top_db))
    return np.stack(out).astype(np.float32)


def _fix_frames_np(power: np.ndarray, n_frames: int) -> np.ndarray:
    # Cropping/padding happens on power, before dB: zero power frames then behave exactly like
    # silence (they sit at the top_db floor), and the top_db reference is the max of kept frames.
    if power.shape[-1] >= n_frames:
        return power[..., :n_frames]
    return np.pad(power, [(0, 0)] * (power.ndim - 1) + [(0, n_frames - power.shape[-1])], mode="constant")


@functools.lru_cache(maxsize=8)
def mel_filterbank(preset: MelPreset) -> np.ndarray:
    """Slaney-normalised mel filterbank [n_mels, 1 + n_fft // 2] (read-only), identical to librosa's."""
    import librosa

    basis = librosa.filters.mel(sr=preset.sample_rate, n_fft=preset.n_fft, n_mels=preset.n_mels,
                                fmin=preset.fmin, fmax=preset.fmax, htk=False, norm="slaney")
    basis.flags.writeable = False  # shared between calls through the cache
    return basis


def logmel_torch(batch: np.ndarray | torch.Tensor, preset: MelPreset,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """Batched log-mel: [B, N] (or [N]) signal -> [B, n_mels, frames] float32 dB on ``device``."""
    device = _as_device(device)
    x = torch.as_tensor(batch).to(device=device, dtype=torch.float64)
    if x.ndim == 1:
        x = x[None, :]
    window = torch.hann_window(preset.win_length, periodic=True, dtype=torch.float64, device=device)
    spec = torch.stft(x, n_fft=preset.n_fft, hop_length=preset.hop_length, win_length=preset.win_length,
                      window=window, center=True, pad_mode="constant", normalized=False, onesided=True,
                      return_complex=True)
    power = spec.real.square() + spec.imag.square()  # [B, F, T]
    basis = torch.tensor(mel_filterbank(preset), dtype=torch.float64, device=device)  # a copy
    mel = torch.matmul(basis, power)  # [B, M, T]
    mel = _fix_frames_torch(mel, preset.frames)
    return _power_to_db_torch(mel, preset.top_db).to(torch.float32)


def _fix_frames_torch(power: torch.Tensor, n_frames: int) -> torch.Tensor:
    if power.shape[-1] >= n_frames:
        return power[..., :n_frames]
    return torch.nn.functional.pad(power, (0, n_frames - power.shape[-1]), mode="constant", value=0.0)


def _power_to_db_torch(power: torch.Tensor, top_db: float) -> torch.Tensor:
    """librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db) applied to each item of the batch."""
    db = 10.0 * torch.log10(power.clamp_min(_AMIN)) - 10.0 * np.log10(max(_AMIN, _REF))
    floor = db.amax(dim=(-2, -1), keepdim=True) - top_db
    return torch.maximum(db, floor)


def _as_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    from .devices import resolve_device

    return resolve_device(device)


# ------------------------------------------------------------------------------------ cache


def default_cache_root() -> Path:
    return Path(os.environ.get("EMOAUG_CACHE") or Path.home() / ".cache" / "emoaug")


class FeatureCache:
    """On-disk dB arrays keyed by audio content hash and preset fingerprint.

    Layout: ``<root>/features/<preset.name>-<fingerprint[:12]>/<sha[:2]>/<sha>.npy``. Writes are atomic
    (temporary file in the same folder, then ``os.replace``), so a killed run never leaves a partial
    file under a final name; a file that still fails to load or has the wrong shape counts as a miss.
    """

    def __init__(self, root: str | os.PathLike | None, preset: MelPreset):
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self.preset = preset
        self.directory = self.root / "features" / f"{preset.name}-{preset.fingerprint()[:12]}"

    def clean(self) -> int:
        """Delete what writers killed mid-write left here (a run calls this once before extracting)."""
        return storage.remove_stale_temporaries(self.directory)

    def path_for(self, sha1: str) -> Path:
        return storage.content_path(self.directory, sha1)

    def get(self, sha1: str) -> np.ndarray | None:
        path = self.path_for(sha1)
        array = storage.read_npy(path, "feature cache")
        if array is None:
            return None
        if not self._valid(array):
            log.warning("feature cache: %s has shape %s dtype %s; recomputing", path, array.shape, array.dtype)
            return None
        return array

    def _valid(self, array: np.ndarray) -> bool:
        return (array.dtype == np.float32 and array.ndim == 3 and array.shape[0] >= 1
                and array.shape[1:] == (self.preset.n_mels, self.preset.frames)
                and bool(np.isfinite(array).all()))

    def put(self, sha1: str, array: np.ndarray) -> Path:
        path = self.path_for(sha1)
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not self._valid(array):
            raise ValueError(f"FeatureCache.put: array of shape {array.shape} does not fit preset "
                             f"{self.preset.name!r}")
        self._write_preset_once()
        storage.write_npy(path, array)
        return path

    def _write_preset_once(self) -> None:
        # A human-readable record of what the folder holds; the fingerprint is the real key.
        info = self.directory / "preset.json"
        if not info.exists():
            text = json.dumps({**self.preset.to_dict(), "fingerprint": self.preset.fingerprint(),
                               "frontend_version": FRONTEND_VERSION}, indent=2)
            storage.write_text(info, text)


class CachedFeatures(storage.CachedArrays):
    """item_id -> log-mel features read from the feature cache when asked (see :class:`emoaug.storage.CachedArrays`):
    a run's features at any corpus size without holding them; workers receive it as an index of files and read
    only the rows their fold uses."""

    what = "feature cache"


class ArraysOf(Sequence[np.ndarray]):
    """The arrays of ``ids`` in ``features``, fetched one at a time as they are iterated (a list of memory maps
    would hold one mapping per item: the kernel allows about 65,000 per process)."""

    def __init__(self, features: Mapping[str, np.ndarray], ids: Iterable[str]):
        self.features, self.ids = features, list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.features[self.ids[index]]

    def __iter__(self):
        return (self.features[item_id] for item_id in self.ids)


# ------------------------------------------------------------------------------------ extraction
def extract_features(items: pd.DataFrame, preset: MelPreset, *, cache: FeatureCache | None = None,
                     device: str | torch.device = "cpu", batch_size: int = 32, progress: bool = False,
                     failures: list[BadAudioError] | None = None,
                     lazy: bool = False) -> dict[str, np.ndarray] | CachedFeatures:
    """item_id -> float32 [S, n_mels, frames] dB for every row of ``items`` (item_id, path, sha1).

    Cache hits never touch the audio. Misses are decoded with ``emoaug.audio.load_mono``, cut with
    :func:`fix_length` and pushed through :func:`logmel_torch` ``batch_size`` segments at a time.
    Files with the same sha1 are decoded once. A file that cannot be used (it decodes to silence at
    the preset's rate, or to non-finite features) raises :class:`BadAudioError`; with a ``failures``
    list the error is appended there instead and the file's items are left out of the result.

    ``lazy`` (with a cache): return a :class:`CachedFeatures` that reads each item from the cache when asked,
    so that memory does not grow with the corpus (a checked cache hit is not kept; a computed array is written
    and dropped).
    """
    if lazy and cache is None:
        raise ValueError("extract_features: lazy needs a cache")
    _check_items(items, need_sha1=cache is not None)
    if batch_size < 1:
        raise ValueError(f"extract_features: batch_size must be >= 1, got {batch_size}")
    if cache is not None and cache.preset.fingerprint() != preset.fingerprint():
        raise ValueError(f"extract_features: cache is for preset {cache.preset.name!r}, not {preset.name!r}")
    device = _as_device(device)
    groups = _group_by_content(items)  # content key -> (path, sha1, [item_id, ...])
    results: dict[str, np.ndarray] = {}
    with _progress_bar(len(items), f"log-mel {preset.name}", progress) as bar:
        misses = []
        for key, (path, sha1, ids) in groups.items():
            cached = cache.get(sha1) if cache is not None else None
            if cached is None:
                misses.append(key)
                continue
            for item_id in ids:
                results[item_id] = str(cache.path_for(sha1)) if lazy else cached
            bar.update(len(ids))
            del cached
        for key, array in _compute(misses, groups, preset, device, batch_size):
            path, sha1, ids = groups[key]
            if not isinstance(array, BadAudioError) and not np.isfinite(array).all():
                array = BadAudioError(path, "non-finite log-mel features")
            if isinstance(array, BadAudioError):
                if failures is None:
                    raise array
                failures.append(array)
                bar.update(len(ids))
                continue
            if cache is not None:
                written = cache.put(sha1, array)
            for item_id in ids:
                results[item_id] = str(written) if lazy else array
            bar.update(len(ids))
    ordered = {str(item_id): results[str(item_id)] for item_id in items["item_id"] if str(item_id) in results}
    return CachedFeatures(ordered) if lazy else ordered


def _check_items(items: pd.DataFrame, *, need_sha1: bool) -> None:
    required = ["item_id", "path"] + (["sha1"] if need_sha1 else [])
    missing = [column for column in required if column not in items.columns]
    if missing:
        raise ValueError(f"extract_features: items lack column(s) {missing}")
    if items["item_id"].duplicated().any():
        duplicate = items.loc[items["item_id"].duplicated(), "item_id"].iloc[0]
        raise ValueError(f"extract_features: duplicate item_id {duplicate!r}")
    if need_sha1:
        for path, sha1 in zip(items["path"], items["sha1"]):
            if not storage.is_content_hash(sha1):
                raise EmoaugError(f"{path}: manifest sha1 {sha1!r} is not a hex digest; cannot use the feature cache")


def _group_by_content(items: pd.DataFrame) -> dict[str, tuple[str, str, list[str]]]:
    groups: dict[str, tuple[str, str, list[str]]] = {}
    has_sha1 = "sha1" in items.columns
    for row in items.itertuples(index=False):
        sha1 = str(row.sha1).lower() if has_sha1 and isinstance(row.sha1, str) and row.sha1 else ""
        key = f"sha1:{sha1}" if sha1 else f"item:{row.item_id}"
        if key not in groups:
            groups[key] = (str(row.path), sha1, [])
        groups[key][2].append(str(row.item_id))
    return groups


def _compute(keys: Sequence[str], groups: Mapping[str, tuple[str, str, list[str]]], preset: MelPreset,
             device: torch.device, batch_size: int) -> Iterable[tuple[str, np.ndarray | BadAudioError]]:
    """Yield (content key, [S, M, T] or the reason the file is unusable) for each key; segments of several
    files share a batch."""
    pending: list[tuple[str, np.ndarray]] = []  # files whose segments are waiting for a batch
    n_pending = 0
    for key in keys:
        try:
            signal = front_end_signal(groups[key][0], preset)
        except BadAudioError as err:
            yield key, err
            continue
        segments = fix_length(signal, preset)
        pending.append((key, segments))
        n_pending += segments.shape[0]
        if n_pending >= batch_size:
            yield from _run_batch(pending, preset, device)
            pending, n_pending = [], 0
    if pending:
        yield from _run_batch(pending, preset, device)


def front_end_signal(path: str, preset: MelPreset) -> np.ndarray:
    """A file decoded as the features phase decodes it: mono at the preset's rate (peak-normalised when the
    preset says so); a silent result is a BadAudioError."""
    from .audio import SILENCE_PEAK, load_mono  # lazy: decoding is only needed on cache misses

    signal = load_mono(path, preset.sample_rate, peak_normalise=preset.peak_normalise)
    if not signal.size or float(np.max(np.abs(signal))) < SILENCE_PEAK:  # e.g. all energy above the new Nyquist
        raise BadAudioError(path, f"silent after resampling to {preset.sample_rate} Hz")
    return signal


def waveform_features(signals: Sequence[np.ndarray], preset: MelPreset, device: str | torch.device = "cpu"
                      ) -> list[np.ndarray]:
    """Unnormalised dB [S, n_mels, n_frames] of waveforms at the preset's rate, computed exactly as the
    features phase computes a decoded file's (peak-normalised when the preset says so, length fixed, then the
    log-mel of every segment in one batch); for generators that return waveforms (emoaug.generators.waveform).
    The peak normalisation matters: the dB scale is absolute (ref 1.0), so a change that lowers the level
    (clipping, a band-pass) would otherwise give rows no decoded recording can have. It leaves a signal from
    :func:`front_end_signal` bit-identical (its peak is already 1)."""
    pending = [(str(k), fix_length(_as_decoded(y, preset), preset)) for k, y in enumerate(signals)]
    return [db for _, db in _run_batch(pending, preset, _as_device(device))] if pending else []


def _as_decoded(y: np.ndarray, preset: MelPreset) -> np.ndarray:
    """A waveform as :func:`load_mono` would have returned it, had it been a file at the preset's rate."""
    from .audio import normalise_peak  # lazy, as in front_end_signal

    y = np.asarray(y, dtype=np.float32)
    return normalise_peak(y) if preset.peak_normalise else y


def _run_batch(pending: list[tuple[str, np.ndarray]], preset: MelPreset,
               device: torch.device) -> Iterable[tuple[str, np.ndarray]]:
    batch = np.concatenate([segments for _, segments in pending])
    with torch.no_grad():
        db = logmel_torch(batch, preset, device).cpu().numpy()
    start = 0
    for key, segments in pending:
        stop = start + segments.shape[0]
        yield key, np.ascontiguousarray(db[start:stop])
        start = stop


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="file", disable=not (enabled and sys.stderr.isatty()))


# ------------------------------------------------------------------------------------ normalisation
#: a band (or range) narrower than this is treated as constant: scale 1, no blow-up
CONSTANT_BELOW = 1e-8


def bin_mean_std(arrays: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std of each mel bin over every frame of every row of ``[S, M, T]`` arrays.

    Two passes over ``arrays`` (a sequence: it is iterated twice), one array at a time in float64: exact, and
    no more than one array converted in memory at once (the arrays may be read from disk as they come)."""
    count, total = 0, None
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        count += a.shape[0] * a.shape[2]
        total = a.sum(axis=(0, 2)) if total is None else total + a.sum(axis=(0, 2))
    mean = total / count
    squares = None
    for a in arrays:
        part = ((np.asarray(a, dtype=np.float64) - mean[None, :, None]) ** 2).sum(axis=(0, 2))
        squares = part if squares is None else squares + part
    return mean, np.sqrt(squares / count)


def safe_scale(std) -> np.ndarray:
    """``std`` with values below :data:`CONSTANT_BELOW` replaced by 1 (constant bins are centred, not blown up)."""
    std = np.asarray(std, dtype=np.float64)
    return np.where(std < CONSTANT_BELOW, 1.0, std)


class Normaliser:
    """Per-fold feature scaling whose statistics come only from the arrays given to :meth:`fit`.

    * ``zscore``: per mel band, mean and (population) std over every frame of every training row;
    * ``minmax``: the global training min/max mapped to [-1, 1] (other folds may fall outside it);
    * ``none``: identity.
    """


    def __init__(self, method: str = "zscore"):
        if method not in NORMALISATIONS:
            raise EmoaugError(f"normalisation: unknown method {method!r} (choose from {', '.join(NORMALISATIONS)})")
        self.method = method
        self.stats: dict[str, Any] = {}
        self.shape: tuple[int, int] | None = None  # (n_mels, n_frames) seen in fit
        self.n_rows = 0
        # With --speaker-norm the rows it is fit on are speaker-standardised, not dB: to_db maps them back
        # through this average training speaker ({"mean": [n_mels], "std": [n_mels]}; None: rows are dB).
        self.db_reference: dict[str, list[float]] | None = None

    @property
    def fitted(self) -> bool:
        return self.shape is not None

    def fit(self, arrays: Sequence[np.ndarray]) -> Normaliser:
        """Statistics of ``arrays`` (a sequence of ``[S, M, T]``, read one at a time: it may be lazy)."""
        if not len(arrays):
            raise ValueError("Normaliser.fit: no training arrays")
        shapes, n_rows, low, high = set(), 0, np.inf, -np.inf
        for a in arrays:
            if a.ndim != 3:
                raise ValueError(f"Normaliser.fit: expected [S, M, T] arrays, got shape {a.shape}")
            shapes.add(tuple(int(d) for d in a.shape[-2:]))
            n_rows += int(a.shape[0])
            if self.method == "minmax":
                low, high = min(low, float(np.min(a))), max(high, float(np.max(a)))
        if len(shapes) != 1:
            raise ValueError(f"Normaliser.fit: expected [S, M, T] arrays of one (M, T), got {sorted(shapes)}")
        self.shape = shapes.pop()
        self.n_rows = n_rows
        if self.method == "zscore":
            self.stats = self._zscore_stats(arrays)
        elif self.method == "minmax":
            self.stats = {"min": low, "max": high}
        else:
            self.stats = {}
        return self

    @staticmethod
    def _zscore_stats(arrays: Sequence[np.ndarray]) -> dict[str, list[float]]:
        mean, std = bin_mean_std(arrays)
        return {"mean": mean.tolist(), "std": std.tolist()}

    def _scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) as [M, 1] arrays so that transform(x) = (x - offset) / scale."""
        if self.method == "zscore":
            return np.asarray(self.stats["mean"])[:, None], safe_scale(self.stats["std"])[:, None]
        if self.method == "minmax":
            low, high = self.stats["min"], self.stats["max"]
            half_range = (high - low) / 2 if high - low >= CONSTANT_BELOW else 1.0
            return np.array([[(high + low) / 2]]), np.array([[half_range]])
        return np.zeros((1, 1)), np.ones((1, 1))

    def transform(self, array: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        offset, scale = self._prepared(array)
        return (array - offset) / scale

    def inverse_transform(self, array: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        offset, scale = self._prepared(array)
        return array * scale + offset

    def to_db(self, array: np.ndarray) -> np.ndarray:
        """Normalised rows ``[..., n_mels, n_frames]`` in dB: the inverse transform, then (speaker-standardised
        rows) the average training speaker's level and spread per bin."""
        values = self.inverse_transform(array)
        if self.db_reference is None:
            return values
        mean = np.asarray(self.db_reference["mean"], dtype=values.dtype)[:, None]
        std = np.asarray(self.db_reference["std"], dtype=values.dtype)[:, None]
        return values * std + mean

    def _prepared(self, array):
        if self.method != "none" and not self.fitted:
            raise RuntimeError(f"Normaliser({self.method!r}) used before fit()")
        if self.method == "zscore" and array.shape[-2] != len(self.stats["mean"]):
            raise ValueError(f"Normaliser: array has {array.shape[-2]} mel bands, fitted on {len(self.stats['mean'])}")
        offset, scale = self._scale_offset()
        if isinstance(array, torch.Tensor):
            return (torch.as_tensor(offset, dtype=array.dtype, device=array.device),
                    torch.as_tensor(scale, dtype=array.dtype, device=array.device))
        dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64
        return offset.astype(dtype), scale.astype(dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "shape": list(self.shape) if self.shape else None,
                "n_rows": self.n_rows, **self.stats,
                **({"db_reference": self.db_reference} if self.db_reference is not None else {})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normaliser:
        normaliser = cls(data["method"])
        normaliser.shape = tuple(data["shape"]) if data.get("shape") else None
        normaliser.n_rows = int(data.get("n_rows", 0))
        normaliser.stats = {key: data[key] for key in ("mean", "std", "min", "max") if key in data}
        normaliser.db_reference = data.get("db_reference")
        return normaliser


# ------------------------------------------------------------------------------------ feature sets
def build_featureset(features: Mapping[str, np.ndarray], items: pd.DataFrame, labels: Sequence[str],
                     normaliser: Normaliser, *, stored: bool = False) -> FeatureSet:
    """One normalised row per segment of each item (in ``items`` order); y indexes ``labels``.

    ``stored``: the rows go to a :class:`~emoaug.featureset.RowFile` item by item (the same float32 values), so
    that the set is never in memory and training batches are read from the file."""
    labels = tuple(labels)
    unknown = sorted(set(items["emotion"]) - set(labels))
    if unknown:
        raise ValueError(f"build_featureset: emotions {unknown} are not in labels {labels}")
    if len(items) == 0:
        return _empty_featureset(features, labels, normaliser)
    has_speaker = "speaker" in items.columns
    ids = [str(item_id) for item_id in items["item_id"]]
    missing = next((item_id for item_id in ids if item_id not in features), None)
    if missing is not None:
        raise ValueError(f"build_featureset: no features for item {missing!r}")
    shapes = [features[item_id].shape for item_id in ids]  # a lazy mapping reads headers only
    frames = {shape[1:] for shape in shapes}
    if len(frames) != 1:
        raise ValueError(f"build_featureset: items have different (n_mels, n_frames): {sorted(frames)}")
    [row_shape] = frames
    n_rows = [shape[0] for shape in shapes]
    normalised = (normaliser.transform(np.asarray(features[item_id], dtype=np.float32)) for item_id in ids)
    if stored:
        row_file = RowFile.write(normalised, row_shape)
        x = row_file.as_tensor()
    else:
        row_file, x = None, torch.from_numpy(_filled(normalised, n_rows, row_shape))
    emotions = [labels.index(emotion) for emotion in items["emotion"]]
    y = np.repeat(emotions, n_rows)
    item_ids = [item_id for item_id, rows in zip(ids, n_rows) for _ in range(rows)]
    speakers = ([str(speaker) for speaker, rows in zip(items["speaker"], n_rows) for _ in range(rows)]
                if has_speaker else [])
    return FeatureSet(x=x, y=torch.as_tensor(y, dtype=torch.int64), labels=labels,
                      item_ids=item_ids, speakers=speakers, stored=row_file)


def _filled(arrays: Iterable[np.ndarray], n_rows: list[int], row_shape: tuple[int, int]) -> np.ndarray:
    # one preallocated array filled item by item: memory holds the set once, not the set plus its parts
    x = np.empty((sum(n_rows), *row_shape), dtype=np.float32)
    start = 0
    for rows, array in zip(n_rows, arrays):
        x[start:start + rows] = array
        start += rows
    return x


def _empty_featureset(features: Mapping[str, np.ndarray], labels: tuple[str, ...],
                      normaliser: Normaliser) -> FeatureSet:
    # Keep (M, T) meaningful for an empty split so shape checks downstream still work.
    if normaliser.shape is not None:
        n_mels, n_frames = normaliser.shape
    elif features:
        n_mels, n_frames = next(iter(features.values())).shape[1:]
    else:
        n_mels, n_frames = 0, 0
    return FeatureSet(x=torch.zeros((0, n_mels, n_frames)), y=torch.zeros(0, dtype=torch.int64),
                      labels=labels, item_ids=[], speakers=[])
