"""Listen and look: generated rows as wav files (Griffin-Lim) and a real-vs-generated spectrogram grid.

Renderers only: they turn given rows into files and never compute a metric. Rows are picked in
order (the first ``n_per_emotion`` rows of each emotion), so re-running gives the same files.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .. import storage  # noqa: E402
from ..errors import EmoaugError  # noqa: E402
from ..features import MelPreset, Normaliser  # noqa: E402
from ..featureset import FeatureSet  # noqa: E402

PEAK = 0.9  # -0.9 dBFS: peak-normalised with a little headroom so 16-bit rounding never clips
GRIFFIN_LIM_MOMENTUM = 0.99  # librosa's default, written out


# ------------------------------------------------------------------------------------------ audio
def export_audio(generated: FeatureSet, normaliser: Normaliser, preset: MelPreset, out_dir: str | Path,
                 n_per_emotion: int = 2, n_iter: int = 32, seed: int = 0) -> list[Path]:
    """Write the first ``n_per_emotion`` generated rows of each emotion as ``<emotion>_<k>.wav`` (k from 0).

    Each row is denormalised to dB (``normaliser.to_db``), turned into mel power
    (``librosa.db_to_power``, ref 1.0 as in the front end) and inverted with Griffin-Lim
    (:func:`mel_to_audio`), then peak-normalised to ``PEAK`` and written as 16-bit PCM at
    ``preset.sample_rate``. Files are written atomically. The inverse is approximate: log-mel values
    were clipped ``top_db`` below each clip's maximum and the mel filterbank discards phase and fine
    frequency detail, so expect a rough, phasey rendering of the spectral envelope.
    Returns the written paths in label order.
    """
    _check_count(n_per_emotion)
    if generated.n_mels != preset.n_mels:
        raise EmoaugError(f"export_audio: rows have {generated.n_mels} mel bands, "
                          f"preset {preset.name!r} has {preset.n_mels}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for label, k, index in _picks(generated, n_per_emotion):
        db = np.asarray(normaliser.to_db(generated.x[index].detach().cpu().numpy()), dtype=np.float64)
        audio = peak_normalise(mel_to_audio(db, preset, n_iter=n_iter, seed=seed + index))
        paths.append(storage.write_wav(out_dir / f"{_safe(label)}_{k}.wav", audio, preset.sample_rate))
    return paths


def mel_to_audio(mel_db: np.ndarray, preset: MelPreset, *, n_iter: int = 32, seed: int = 0) -> np.ndarray:
    """One dB log-mel row ``[n_mels, n_frames]`` -> float32 waveform of ``(n_frames - 1) * hop_length`` samples.

    Like ``librosa.feature.inverse.mel_to_audio`` (``mel_to_stft`` then ``griffinlim``), with
    every parameter explicit and a seeded Griffin-Lim initialisation (``mel_to_audio`` itself draws the
    initial phase from numpy's global RNG), so exports are reproducible.
    """
    import librosa

    power = librosa.db_to_power(mel_db, ref=1.0)
    # mel power -> linear-frequency magnitude: the least-squares inverse of the mel filterbank, clipped at 0.
    # librosa's mel_to_stft refines this same starting point with a non-negative L-BFGS-B solve, which cost
    # ~1 s per clip (most of a smoke run's rendering) for no audible gain in a Griffin-Lim rendering.
    inverse = mel_inverse(preset.sample_rate, preset.n_fft, preset.n_mels, preset.fmin, preset.fmax)
    magnitude = np.sqrt(np.maximum(inverse @ power, 0.0))
    return librosa.griffinlim(
        magnitude, n_iter=n_iter, hop_length=preset.hop_length, win_length=preset.win_length, n_fft=preset.n_fft,
        window="hann", center=True, dtype=np.float32, length=(mel_db.shape[-1] - 1) * preset.hop_length,
        pad_mode="constant", momentum=GRIFFIN_LIM_MOMENTUM, init="random", random_state=seed)


@functools.lru_cache(maxsize=8)
def mel_inverse(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Pseudo-inverse of the front end's mel filterbank (Slaney scale and norm), shared by every clip."""
    import librosa

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False,
                                norm="slaney")
    return np.linalg.pinv(basis)


def peak_normalise(audio: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """Scale so max |sample| = ``peak``; silence stays silence."""
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    return (audio * (peak / top) if top > 0 else audio).astype(np.float32)


# ------------------------------------------------------------------------------------------ grid
def spectrogram_grid(real: FeatureSet, generated: FeatureSet, path: str | Path, n_per_emotion: int = 1,
                     title: str = "real vs generated log-mel spectrograms", *,
                     normaliser: Normaliser | None = None) -> Path:
    """PNG grid: one row per emotion, ``n_per_emotion`` real then ``n_per_emotion`` generated examples.

    Like Kim & Lee (2024) Figure 3 and Malik et al. (2023) Figure 2. Every panel shares one colour
    scale (1st to 99th percentile of all shown values). Values are shown as given (normalised) or,
    with ``normaliser``, in dB. Emotions are those of ``generated`` in label order; a missing example
    leaves an empty panel saying so. Written atomically.
    """
    _check_count(n_per_emotion)
    if real.labels != generated.labels:
        raise ValueError(f"spectrogram_grid: label sets differ ({real.labels} vs {generated.labels})")
    emotions = [label for label in generated.labels if label in set(generated.label_names())]
    if not emotions:
        raise EmoaugError("spectrogram_grid: the generated set is empty")
    panels = {(e, side): _examples(fs, e, n_per_emotion, normaliser)
              for e in emotions for side, fs in (("real", real), ("generated", generated))}
    vmin, vmax = _colour_range([x for xs in panels.values() for x in xs])
    fig, axes = plt.subplots(len(emotions), 2 * n_per_emotion, squeeze=False, sharex=True, sharey=True,
                             figsize=(2.6 * 2 * n_per_emotion + 1.2, 2.0 * len(emotions) + 0.9))
    image = None
    for r, emotion in enumerate(emotions):
        for side_index, side in enumerate(("real", "generated")):
            for k in range(n_per_emotion):
                ax = axes[r, side_index * n_per_emotion + k]
                examples = panels[emotion, side]
                image = _draw_panel(ax, examples[k] if k < len(examples) else None, vmin, vmax) or image
                if r == 0:
                    ax.set_title(f"{side} {k + 1}" if n_per_emotion > 1 else side, fontsize=10)
        axes[r, 0].set_ylabel(f"{emotion}\nmel bin")
    for ax in axes[-1, :]:
        ax.set_xlabel("frame")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    colour_axis = fig.add_axes((0.915, 0.15, 0.015, 0.7))
    fig.colorbar(image, cax=colour_axis, label="dB" if normaliser is not None else "normalised value")
    return storage.save_figure(fig, Path(path), dpi=110)


def _examples(fs: FeatureSet, emotion: str, n: int, normaliser: Normaliser | None) -> list[np.ndarray]:
    index = [i for i, label in enumerate(fs.label_names()) if label == emotion][:n]
    rows = fs.x[index].detach().cpu().numpy() if index else np.zeros((0, fs.n_mels, fs.n_frames), np.float32)
    if normaliser is not None and len(rows):
        rows = np.asarray(normaliser.to_db(rows))
    return list(rows)


def _colour_range(arrays: Sequence[np.ndarray]) -> tuple[float, float]:
    values = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(1)
    low, high = np.percentile(values, [1, 99])
    return float(low), float(high if high > low else low + 1.0)


def _draw_panel(ax, spectrogram: np.ndarray | None, vmin: float, vmax: float):
    if spectrogram is None:
        ax.text(0.5, 0.5, "no example", ha="center", va="center", transform=ax.transAxes, fontsize=9)
        return None
    return ax.imshow(spectrogram, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                     interpolation="nearest")


# ------------------------------------------------------------------------------------------ helpers
def _picks(fs: FeatureSet, n_per_emotion: int) -> list[tuple[str, int, int]]:
    """(emotion, k, row index) of the first ``n_per_emotion`` rows of each emotion, in label order."""
    names = fs.label_names()
    picks = []
    for label in fs.labels:
        rows = [i for i, name in enumerate(names) if name == label][:n_per_emotion]
        picks += [(label, k, i) for k, i in enumerate(rows)]
    return picks


def _check_count(n_per_emotion: int) -> None:
    if n_per_emotion < 1:
        raise EmoaugError(f"n_per_emotion must be >= 1, got {n_per_emotion}")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
