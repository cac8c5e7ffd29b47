"""Robust audio decoding: libsndfile first, a tolerant RIFF/WAVE reader when libsndfile refuses.

Real corpora ship files that strict decoders reject: extra header chunks (LIST, JUNK, bext, cue),
odd-sized chunks, data chunks whose size field is 0 or 0xFFFFFFFF (streamed writers) or larger
than the file (truncated downloads). Every decode goes through ``_decode_bytes`` so that
``read_audio``, ``probe_audio`` and ``load_mono`` agree on what a file contains.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from .errors import BadAudioError

# A file whose peak is below -80 dBFS carries no usable signal (16-bit dither is about -90 dBFS).
SILENCE_PEAK = 1e-4

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# A data size of 0 or 0xFFFFFFFF means "unknown, read to the end" (streaming writers, RF64).
_UNKNOWN_DATA_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class AudioInfo:
    sha1: str
    sample_rate: int
    channels: int
    frames: int
    duration: float  # seconds


class _WavParseError(ValueError):
    """The RIFF/WAVE fallback could not make sense of the bytes."""


# --------------------------------------------------------------------------- public API


def read_audio(path) -> tuple[np.ndarray, int]:
    """Decode ``path`` to float32 ``[frames, channels]`` at its native sample rate."""
    path = Path(path)
    data = _read_bytes(path)
    return _decode_bytes(data, path)


def probe_audio(path) -> AudioInfo:
    """Hash, decode and validate one file; raise BadAudioError saying why it cannot be used."""
    path = Path(path)
    data = _read_bytes(path)
    y, sr = _decode_bytes(data, path)
    _validate_samples(y, path)
    peak = float(np.max(np.abs(y)))
    if peak < SILENCE_PEAK:
        raise BadAudioError(path, f"all-silent (peak {peak:.1e} below {SILENCE_PEAK:.0e})")
    frames, channels = y.shape
    return AudioInfo(
        sha1=hashlib.sha1(data).hexdigest(),
        sample_rate=int(sr),
        channels=int(channels),
        frames=int(frames),
        duration=frames / float(sr),
    )


def load_mono(path, target_sr: int, *, peak_normalise: bool = True) -> np.ndarray:
    """Decode, average the channels, resample to ``target_sr`` (soxr_hq) and peak-normalise."""
    y, sr = read_audio(path)
    _validate_samples(y, Path(path))
    mono = y.mean(axis=1, dtype=np.float32)
    if sr != target_sr:
        mono = librosa.resample(
            mono, orig_sr=sr, target_sr=target_sr, res_type="soxr_hq", fix=True, scale=False
        )
    mono = np.asarray(mono, dtype=np.float32)
    if peak_normalise:
        mono = _peak_normalise(mono)
    if not np.all(np.isfinite(mono)):
        raise BadAudioError(path, "NaN or infinite samples after resampling")
    return mono


# --------------------------------------------------------------------------- helpers


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise BadAudioError(path, "missing file")
    data = path.read_bytes()
    if not data:
        raise BadAudioError(path, "zero-length file")
    return data


def _validate_samples(y: np.ndarray, path: Path) -> None:
    if y.size == 0:
        raise BadAudioError(path, "empty audio (0 samples)")
    if not np.all(np.isfinite(y)):
        raise BadAudioError(path, "NaN or infinite samples")


def _peak_normalise(y: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    # Silence stays silence: scaling it up would only amplify rounding noise (or divide by zero).
    if peak < SILENCE_PEAK:
        return y
    return (y / peak).astype(np.float32)


def _decode_bytes(data: bytes, path: Path) -> tuple[np.ndarray, int]:
    """libsndfile on the in-memory bytes; the RIFF walker when it refuses a WAVE or finds nothing."""
    y, sr, sf_error = _try_soundfile(data)
    if _is_riff_wave(data) and (y is None or len(y) == 0):
        try:
            return _decode_riff_wave(data)
        except _WavParseError as wav_error:
            if y is None:
                raise BadAudioError(
                    path, f"not a readable audio file ({sf_error}; WAVE fallback: {wav_error})"
                ) from None
    if y is None:
        raise BadAudioError(path, f"not a readable audio file ({sf_error})")
    return y, sr


def _try_soundfile(data: bytes) -> tuple[np.ndarray | None, int, str]:
    try:
        y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as err:
        # LibsndfileError.error_string is libsndfile's own text, without the BytesIO repr.
        message = getattr(err, "error_string", None) or str(err)
        return None, 0, " ".join(message.split()).rstrip(".")
    return y, int(sr), ""


def _is_riff_wave(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE"


def _looks_like_chunk_id(data: bytes, pos: int) -> bool:
    chunk_id = data[pos : pos + 4]
    return len(chunk_id) == 4 and all(0x20 <= b <= 0x7E for b in chunk_id)


def _next_chunk_pos(data: bytes, body_end: int, size: int) -> int:
    """Chunks are word-aligned, but some writers forget the pad byte after an odd-sized chunk."""
    if size % 2 == 0:
        return body_end
    if not _looks_like_chunk_id(data, body_end + 1) and _looks_like_chunk_id(data, body_end):
        return body_end
    return body_end + 1


def _walk_chunks(data: bytes) -> tuple[bytes, memoryview]:
    """Return (fmt chunk body, sample bytes), skipping every other chunk."""
    fmt_body: bytes | None = None
    samples: memoryview | None = None
    view = memoryview(data)
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"data":
            to_end = size in _UNKNOWN_DATA_SIZES or body + size > len(data)
            end = len(data) if to_end else body + size
            samples = view[body:end]
            if to_end or fmt_body is not None:
                break
        elif chunk_id == b"fmt ":
            fmt_body = data[body : body + size]
            if samples is not None:
                break
        pos = _next_chunk_pos(data, body + size, size)
    if fmt_body is None:
        raise _WavParseError("no fmt chunk")
    if samples is None:
        raise _WavParseError("no data chunk")
    return fmt_body, samples


def _parse_fmt(fmt_body: bytes) -> tuple[int, int, int, int]:
    """(format code, channels, sample rate, bytes per sample in the container)."""
    if len(fmt_body) < 16:
        raise _WavParseError(f"fmt chunk too short ({len(fmt_body)} bytes)")
    code, channels, sr, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt_body)
    if code == _WAVE_FORMAT_EXTENSIBLE:
        if len(fmt_body) < 26:
            raise _WavParseError("WAVE_FORMAT_EXTENSIBLE fmt chunk without a sub-format")
        code = struct.unpack_from("<H", fmt_body, 24)[0]  # first two bytes of the sub-format GUID
    if channels == 0 or sr == 0:
        raise _WavParseError(f"fmt chunk says {channels} channels at {sr} Hz")
    # The container width comes from block_align (12-bit audio sits in 16-bit containers).
    width = block_align // channels if block_align and block_align % channels == 0 else (bits + 7) // 8
    return code, channels, sr, width


def _samples_to_float(raw: memoryview, code: int, width: int) -> np.ndarray:
    if code == _WAVE_FORMAT_IEEE_FLOAT and width in (4, 8):
        return np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float32)
    if code != _WAVE_FORMAT_PCM:
        raise _WavParseError(f"unsupported format code 0x{code:04X} ({width * 8}-bit)")
    if width == 1:  # 8-bit WAVE is unsigned
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value & 0x800000, value - 0x1000000, value)
        return value.astype(np.float32) / float(1 << 23)
    if width == 4:
        return (np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    raise _WavParseError(f"unsupported PCM sample width {width * 8} bits")


def _decode_riff_wave(data: bytes) -> tuple[np.ndarray, int]:
    fmt_body, samples = _walk_chunks(data)
    code, channels, sr, width = _parse_fmt(fmt_body)
    frames = len(samples) // (width * channels)  # a truncated last frame is dropped
    raw = samples[: frames * width * channels]
    y = _samples_to_float(raw, code, width).reshape(frames, channels)
    return y, sr
