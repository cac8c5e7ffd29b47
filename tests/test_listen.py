"""Listen and look: Griffin-Lim wav export and the real-vs-generated spectrogram grid."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from emoaug.errors import EmoaugError
from emoaug.features import MelPreset, Normaliser, logmel_librosa
from emoaug.featureset import FeatureSet
from emoaug.reports.listen import PEAK, export_audio, mel_to_audio, peak_normalise, spectrogram_grid
from tests.helpers import emotion_signal

LABELS = ("neutral", "happy", "sad")
# small and fast: 0.5 s at 8 kHz, hop 64 -> 1 + 4000 // 64 = 63 frames of 16 mel bands
PRESET = MelPreset(name="tiny", sample_rate=8000, n_fft=256, hop_length=64, win_length=256, n_mels=16,
                   fmin=0.0, fmax=4000.0, clip_seconds=0.5, length_mode="center", normalisation="minmax")


def make_set(emotions: list[str], seed: int,
             normaliser: Normaliser | None = None) -> tuple[FeatureSet, Normaliser, np.ndarray]:
    """Fixture rows from emotion-dependent signals; returns (rows, normaliser, their dB values)."""
    signals = [emotion_signal(e, sr=PRESET.sample_rate, seconds=PRESET.clip_seconds, seed=seed + i)
               for i, e in enumerate(emotions)]
    db = logmel_librosa(np.stack(signals), PRESET)
    normaliser = normaliser or Normaliser(PRESET.normalisation).fit([db])
    fs = FeatureSet(x=torch.from_numpy(np.asarray(normaliser.transform(db), np.float32)),
                    y=torch.tensor([LABELS.index(e) for e in emotions]), labels=LABELS,
                    item_ids=[f"gen:{seed}:{i}" for i in range(len(emotions))])
    return fs, normaliser, db


def test_export_audio_writes_readable_wavs_of_the_clip_length(tmp_path):
    generated, normaliser, _ = make_set(["happy", "neutral", "happy", "happy", "sad"], seed=0)
    paths = export_audio(generated, normaliser, PRESET, tmp_path / "audio", n_per_emotion=2, n_iter=8)
    assert [p.name for p in paths] == ["neutral_0.wav", "happy_0.wav", "happy_1.wav", "sad_0.wav"]
    for path in paths:
        info = sf.info(str(path))
        assert info.samplerate == PRESET.sample_rate and info.channels == 1 and info.subtype == "PCM_16"
        # centred framing: T frames cover (T - 1) hops, about clip_seconds
        assert info.frames == (generated.n_frames - 1) * PRESET.hop_length
        audio, _ = sf.read(str(path), dtype="float32")
        assert np.max(np.abs(audio)) == pytest.approx(PEAK, abs=1e-3)
    assert not list((tmp_path / "audio").glob("*.tmp"))  # atomic writes leave no temporary files


def test_export_audio_is_reproducible(tmp_path):
    generated, normaliser, _ = make_set(["sad"], seed=1)
    first = export_audio(generated, normaliser, PRESET, tmp_path / "a", n_per_emotion=1, n_iter=4)[0]
    second = export_audio(generated, normaliser, PRESET, tmp_path / "b", n_per_emotion=1, n_iter=4)[0]
    other_seed = export_audio(generated, normaliser, PRESET, tmp_path / "c", n_per_emotion=1, n_iter=4, seed=5)[0]
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other_seed.read_bytes()


def test_griffin_lim_audio_has_the_spectrum_it_was_made_from():
    _, _, db = make_set(["happy", "sad"], seed=2)
    for row in db:
        audio = mel_to_audio(row, PRESET, n_iter=32, seed=0)
        assert audio.shape == ((row.shape[1] - 1) * PRESET.hop_length,)
        # the last frame is only half covered by the (T - 1) hops of audio; compare the others
        again, target = logmel_librosa(audio, PRESET)[0, :, :-1], row[:, :-1]
        # where the source has energy (within 40 dB of its peak, not the clipped floor) the
        # resynthesis must reproduce it up to a constant level (the peak normalisation)
        loud = target > target.max() - 40.0
        difference = again[loud] - target[loud]
        assert np.corrcoef(again[loud], target[loud])[0, 1] > 0.9
        assert np.median(np.abs(difference - np.median(difference))) < 2.0  # dB


def test_griffin_lim_is_level_invariant_up_to_peak_normalisation():
    # front-end rows reach +50 dB (peak-normalised audio, dB ref 1.0): the inversion must treat a louder
    # copy of a row like the row itself (the NNLS step is solved at unit scale)
    _, _, db = make_set(["happy"], seed=4)
    quiet = peak_normalise(mel_to_audio(db[0], PRESET, n_iter=8, seed=0))
    loud = peak_normalise(mel_to_audio(db[0] + 60.0, PRESET, n_iter=8, seed=0))
    np.testing.assert_allclose(loud, quiet, atol=1e-3)


def test_export_audio_checks_the_preset(tmp_path):
    generated, normaliser, _ = make_set(["sad"], seed=3)
    wrong = MelPreset(name="wrong", sample_rate=8000, n_fft=256, hop_length=64, win_length=256, n_mels=20,
                      fmin=0.0, fmax=4000.0, clip_seconds=0.5, length_mode="center")
    with pytest.raises(EmoaugError, match="16 mel bands"):
        export_audio(generated, normaliser, wrong, tmp_path)


def test_spectrogram_grid_writes_a_png(tmp_path):
    real, normaliser, _ = make_set(["neutral", "happy", "sad", "neutral"], seed=4)
    generated, _, _ = make_set(["neutral", "happy", "sad"], seed=10, normaliser=normaliser)
    path = spectrogram_grid(real, generated, tmp_path / "figs" / "grid.png", n_per_emotion=2,
                            title="fixture", normaliser=normaliser)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # 3 x 4 panels of images, not an empty canvas
    assert not list(path.parent.glob("*.tmp"))


def test_spectrogram_grid_tolerates_an_emotion_missing_from_the_real_examples(tmp_path):
    real, normaliser, _ = make_set(["neutral"], seed=5)
    generated, _, _ = make_set(["neutral", "sad"], seed=11, normaliser=normaliser)
    path = spectrogram_grid(real, generated, tmp_path / "grid.png")
    assert path.stat().st_size > 10_000


def test_spectrogram_grid_rejects_mismatched_labels(tmp_path):
    real, normaliser, _ = make_set(["neutral"], seed=6)
    other = FeatureSet(x=real.x, y=real.y, labels=("neutral", "angry", "sad"), item_ids=real.item_ids)
    with pytest.raises(ValueError, match="label sets differ"):
        spectrogram_grid(real, other, tmp_path / "grid.png")
