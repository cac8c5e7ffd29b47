"""Decoding awkward WAVE files, probing and validation, mono/resample/normalise."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
import soundfile as sf
from tests.helpers import emotion_signal, write_riff_wav, write_wav, write_wav_with_extra_chunks

from emoaug.audio import SILENCE_PEAK, _decode_riff_wave, load_mono, probe_audio, read_audio
from emoaug.errors import BadAudioError

SR = 16000


@pytest.fixture
def clip() -> np.ndarray:
    return emotion_signal("angry", sr=SR, seconds=0.25, seed=1)


def _tolerance(bits: int) -> float:
    return 1.0 / (1 << (bits - 1)) + 1e-7


# name -> (write_riff_wav keyword arguments, bits); every layout must decode to the written samples.
RIFF_VARIANTS = {
    "pcm8": ({"bits": 8}, 8),
    "pcm16": ({"bits": 16}, 16),
    "pcm24": ({"bits": 24}, 24),
    "pcm32": ({"bits": 32}, 32),
    "float32": ({"bits": 32, "float_format": True}, 32),
    "float64": ({"bits": 64, "float_format": True}, 32),
    "extensible_pcm24": ({"bits": 24, "extensible": True}, 24),
    "extensible_float": ({"bits": 32, "float_format": True, "extensible": True}, 32),
    "extra_chunks": ({"chunks_before_fmt": [(b"LIST", b"INFOabcd"), (b"JUNK", b"\0" * 10)]}, 16),
    "odd_chunk_padded": ({"chunks_before_data": [(b"bext", b"abc")]}, 16),
    "odd_chunk_without_pad": ({"chunks_before_fmt": [(b"cue ", b"abcde")], "pad_odd_chunks": False}, 16),
    "data_size_zero": ({"data_size": 0}, 16),
    "data_size_unknown": ({"data_size": 0xFFFFFFFF}, 16),
    "data_size_too_large": ({"data_size": 10**7}, 16),
}


@pytest.mark.parametrize("variant", sorted(RIFF_VARIANTS))
def test_read_audio_decodes_every_riff_layout(tmp_path, clip, variant):
    kwargs, bits = RIFF_VARIANTS[variant]
    path = write_riff_wav(tmp_path / "x.wav", clip, SR, **kwargs)
    y, sr = read_audio(path)
    assert sr == SR and y.dtype == np.float32 and y.shape == (len(clip), 1)
    assert np.max(np.abs(y[:, 0] - clip)) <= _tolerance(bits)


@pytest.mark.parametrize("variant", sorted(RIFF_VARIANTS))
def test_chunk_walker_alone_decodes_every_riff_layout(tmp_path, clip, variant):
    # The fallback must be right on its own, not only where libsndfile hands it the file.
    kwargs, bits = RIFF_VARIANTS[variant]
    path = write_riff_wav(tmp_path / "x.wav", np.stack([clip, -clip], axis=1), SR, **kwargs)
    y, sr = _decode_riff_wave(path.read_bytes())
    assert sr == SR and y.shape == (len(clip), 2)
    assert np.max(np.abs(y[:, 0] - clip)) <= _tolerance(bits)
    assert np.max(np.abs(y[:, 1] + clip)) <= _tolerance(bits)


def test_extra_chunks_helper_file_loads(tmp_path, clip):
    path = write_wav_with_extra_chunks(tmp_path / "x.wav", clip, SR, bits=24)
    assert b"LIST" in path.read_bytes()[:60]
    y, _ = read_audio(path)
    assert np.max(np.abs(y[:, 0] - clip)) <= _tolerance(24)


def test_truncated_download_keeps_whole_frames(tmp_path, clip):
    stereo = np.stack([clip, 0.5 * clip], axis=1)
    path = write_riff_wav(tmp_path / "cut.wav", stereo, SR, bits=24, drop_tail_bytes=1000)
    y, _ = read_audio(path)
    assert y.shape == (len(clip) - 1000 // 6 - 1, 2)  # 1000 bytes = 166 frames + a partial one
    assert np.max(np.abs(y - stereo[: len(y)])) <= _tolerance(24)


def test_stereo_is_read_per_channel_and_mixed_down_by_mean(tmp_path, clip):
    stereo = np.stack([clip, 0.25 * clip], axis=1)
    path = write_wav(tmp_path / "st.wav", stereo, SR, subtype="PCM_24")
    y, _ = read_audio(path)
    assert y.shape == (len(clip), 2)
    mono = load_mono(path, SR, peak_normalise=False)
    assert mono.shape == (len(clip),)
    np.testing.assert_allclose(mono, 0.625 * clip, atol=1e-6)


def test_load_mono_resamples_with_soxr_and_keeps_the_pitch(tmp_path):
    t = np.arange(8000) / 8000
    path = write_wav(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 8000)
    y = load_mono(path, 16000)
    assert y.dtype == np.float32 and y.shape == (16000,)
    assert np.isclose(np.max(np.abs(y)), 1.0, atol=1e-6)
    peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * 16000 / len(y)
    assert abs(peak_hz - 440) <= 1


def test_load_mono_leaves_silence_alone(tmp_path):
    path = write_wav(tmp_path / "quiet.wav", np.zeros(1600), SR)
    y = load_mono(path, SR)
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) == 0.0


def test_load_mono_rejects_nan(tmp_path, clip):
    clip[10] = np.nan
    path = write_riff_wav(tmp_path / "nan.wav", clip, SR, bits=32, float_format=True)
    with pytest.raises(BadAudioError, match="NaN"):
        load_mono(path, SR)


def test_probe_hashes_the_bytes_and_reports_the_format(tmp_path, clip):
    path = write_wav(tmp_path / "st.wav", np.stack([clip, clip], axis=1), 22050)
    info = probe_audio(path, min_duration=0.1)  # the clip lasts 0.18 s at 22.05 kHz
    assert info.sha1 == hashlib.sha1(path.read_bytes()).hexdigest()
    assert (info.sample_rate, info.channels, info.frames) == (22050, 2, len(clip))
    assert info.duration == pytest.approx(len(clip) / 22050)


def test_probe_reads_flac_and_ogg(tmp_path, clip):
    for name, subtype in (("a.flac", "PCM_16"), ("a.ogg", "VORBIS")):
        sf.write(str(tmp_path / name), clip, SR, subtype=subtype)
        info = probe_audio(tmp_path / name)
        assert info.sample_rate == SR and info.frames > 0


def _write_bad(kind: str, path, clip):
    if kind == "missing":
        return path
    if kind == "zero_length":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio\n" * 20)
    elif kind == "riff_garbage":
        path.write_bytes(b"RIFF" + struct.pack("<I", 100) + b"WAVE" + b"\xff" * 100)
    elif kind == "no_samples":
        write_wav(path, np.zeros(0), SR)
    elif kind == "nan":
        write_riff_wav(path, np.where(np.arange(len(clip)) == 5, np.nan, clip), SR, bits=32, float_format=True)
    elif kind == "inf":
        write_riff_wav(path, np.where(np.arange(len(clip)) == 5, np.inf, clip), SR, bits=32, float_format=True)
    elif kind == "silent":
        write_wav(path, np.full(len(clip), SILENCE_PEAK / 10), SR, subtype="FLOAT")
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "missing file"),
        ("zero_length", "zero-length file"),
        ("text", "not a readable audio file"),
        ("riff_garbage", "not a readable audio file"),
        ("no_samples", "empty audio (0 samples)"),
        ("nan", "NaN or infinite"),
        ("inf", "NaN or infinite"),
        ("silent", "all-silent"),
    ],
)
def test_probe_rejects_bad_files_with_a_clear_reason(tmp_path, clip, kind, reason):
    path = _write_bad(kind, tmp_path / "bad.wav", clip)
    with pytest.raises(BadAudioError) as caught:
        probe_audio(path)
    assert reason in caught.value.reason
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_quiet_but_audible_file_is_not_called_silent(tmp_path, clip):
    path = write_wav(tmp_path / "soft.wav", clip * (20 * SILENCE_PEAK / np.max(np.abs(clip))), SR, subtype="FLOAT")
    assert probe_audio(path).frames == len(clip)
