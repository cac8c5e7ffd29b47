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
from .limits import (DEFAULT_MAX_DURATION, DEFAULT_MIN_DURATION, MAX_CHANNELS, MAX_DECODED_SAMPLES, MAX_FILE_BYTES,
                     MAX_SAMPLE_RATE, MIN_SAMPLE_RATE)

# A file whose peak is below -80 dBFS carries no usable signal (16-bit dither is about -90 dBFS).
SILENCE_PEAK = 1e-4
# Float samples beyond this are corrupt data, not audio at some odd scale (int16-scaled floats reach 32768).
MAX_PLAUSIBLE_PEAK = 1e6


_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# A data size of 0 or 0xFFFFFFFF means "unknown, read to the end" (streaming writers, RF64).
_UNKNOWN_DATA_SIZES = (0, 0xFFFFFFFF)
# The widest sample any WAVE format holds (64-bit float); 0 bits or more is a corrupt header, not audio.
_MAX_BITS_PER_SAMPLE = 64


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
    """Decode ``path`` to float32 ``[frames, channels]`` at its native sample rate (no duration bound
    beyond the memory bound: a file was measured against --max-duration when it was probed)."""
    path = Path(path)
    data = _read_bytes(path)
    return _decode_bytes(data, path, max_duration=None)


def probe_audio(path, *, min_duration: float = DEFAULT_MIN_DURATION,
                max_duration: float = DEFAULT_MAX_DURATION) -> AudioInfo:
    """Hash, decode and validate one file; raise BadAudioError saying why it cannot be used.

    The header's sample rate, channel count and the decoded length are bounded before (or while)
    samples are decoded; silence is checked per channel and again after mixing the channels down.
    """
    path = Path(path)
    data = _read_bytes(path)
    y, sr = _decode_bytes(data, path, max_duration=max_duration)
    peak = _validate_samples(y, path)
    frames, channels = y.shape
    if frames / sr < min_duration:
        raise BadAudioError(path, f"too short ({frames / sr:.3g} s, {frames} samples; "
                                  f"--min-duration is {min_duration:g} s)")
    if peak < SILENCE_PEAK:
        raise BadAudioError(path, f"all-silent (peak {peak:.1e} below {SILENCE_PEAK:.0e})")
    if channels > 1 and float(np.max(_mix_down(y, peak))) < SILENCE_PEAK:
        raise BadAudioError(path, f"silent after mixing its {channels} channels down (they cancel out)")
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
    mono = _mix_down(y, _validate_samples(y, Path(path)), keep_sign=True)
    if sr != target_sr:
        mono = librosa.resample(
            mono, orig_sr=sr, target_sr=target_sr, res_type="soxr_hq", fix=True, scale=False
        )
    mono = np.asarray(mono, dtype=np.float32)
    if peak_normalise:
        mono = normalise_peak(mono)
    if not np.all(np.isfinite(mono)):
        raise BadAudioError(path, "NaN or infinite samples after resampling")
    return mono


# --------------------------------------------------------------------------- helpers


def _read_bytes(path: Path) -> bytes:
    try:
        if not path.exists():
            raise BadAudioError(path, "missing file")
        if not path.is_file():
            raise BadAudioError(path, "not a regular file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BadAudioError(path, f"file of {size / 2**20:.0f} MiB is larger than any clip emoaug decodes "
                                      f"({MAX_FILE_BYTES / 2**20:.0f} MiB)")
        data = path.read_bytes()
    except OSError as err:  # permissions, I/O errors, a folder named *.wav
        raise BadAudioError(path, f"cannot be read ({err.strerror or err})") from None
    if not data:
        raise BadAudioError(path, "zero-length file")
    return data


def _mix_down(y: np.ndarray, peak: float, *, keep_sign: bool = False) -> np.ndarray:
    """Mean over channels; data beyond full scale is scaled first so the float32 sum cannot overflow
    (the result is peak-normalised later anyway). Returns the magnitude unless ``keep_sign``."""
    if peak > 1.0:
        y = y / np.float32(peak)
    mono = y.mean(axis=1, dtype=np.float32)
    return mono if keep_sign else np.abs(mono)


def _validate_samples(y: np.ndarray, path: Path) -> float:
    """Raise unless ``y`` holds finite, plausibly scaled samples; returns the peak magnitude."""
    if y.size == 0:
        raise BadAudioError(path, "empty audio (0 samples)")
    if not np.all(np.isfinite(y)):
        raise BadAudioError(path, "NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak > MAX_PLAUSIBLE_PEAK:
        raise BadAudioError(path, f"samples up to {peak:.1e}, beyond any audio scaling (corrupt float data)")
    return peak


def _check_header(path: Path, sr: int, channels: int) -> None:
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise BadAudioError(path, f"header claims {sr} Hz (emoaug reads {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadAudioError(path, f"header claims {channels} channels (emoaug reads 1-{MAX_CHANNELS})")


def _frame_limit(path: Path, sr: int, channels: int, max_duration: float | None) -> tuple[int, str]:
    """(the most frames to decode, what exceeding them means)."""
    by_memory = MAX_DECODED_SAMPLES // channels
    if max_duration is not None and max_duration * sr < by_memory:
        return int(max_duration * sr), f"longer than --max-duration {max_duration:g} s"
    return by_memory, f"more than {MAX_DECODED_SAMPLES} samples to decode ({by_memory / sr:.0f} s at {sr} Hz)"


def normalise_peak(y: np.ndarray) -> np.ndarray:
    """``y`` scaled to a peak of 1 (the front end's last step; also applied to changed waveforms)."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    # Silence stays silence: scaling it up would only amplify rounding noise (or divide by zero).
    if peak < SILENCE_PEAK:
        return y
    return (y / peak).astype(np.float32)


def _decode_bytes(data: bytes, path: Path, *, max_duration: float | None) -> tuple[np.ndarray, int]:
    """libsndfile on the in-memory bytes; the RIFF walker when it refuses a WAVE or finds nothing.

    Both check the header's rate and channels before decoding and stop at the frame limit, so a
    header claiming 1 Hz or a compressed file that would expand to hours never fills memory."""
    y, sr, sf_error = _try_soundfile(data, path, max_duration)
    if _is_riff_wave(data) and (y is None or len(y) == 0):
        try:
            return _decode_riff_wave(data, path, max_duration)
        except _WavParseError as wav_error:
            if y is None:
                raise BadAudioError(
                    path, f"not a readable audio file ({sf_error}; WAVE fallback: {wav_error})"
                ) from None
    if y is None:
        raise BadAudioError(path, f"not a readable audio file ({sf_error})")
    return y, sr


class _SeekableBytes(io.BytesIO):
    """In-memory bytes for libsndfile, whose header parsers seek before the start of some corrupt files.

    ``BytesIO.seek`` raises there, inside soundfile's cffi callback, where Python prints the exception as a
    traceback on stderr and libsndfile reads position 0; such a seek lands at 0 here, quietly."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return super().seek(offset, whence)
        except (ValueError, OverflowError):
            return super().seek(0)


def _try_soundfile(data: bytes, path: Path, max_duration: float | None) -> tuple[np.ndarray | None, int, str]:
    try:
        with sf.SoundFile(_SeekableBytes(data)) as handle:
            sr, channels = int(handle.samplerate), int(handle.channels)
            _check_header(path, sr, channels)
            limit, meaning = _frame_limit(path, sr, channels, max_duration)
            y = handle.read(frames=limit + 1, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as err:
        # LibsndfileError.error_string is libsndfile's own text, without the BytesIO repr.
        message = getattr(err, "error_string", None) or str(err)
        return None, 0, " ".join(message.split()).rstrip(".")
    if len(y) > limit:
        raise BadAudioError(path, meaning)
    return y, sr, ""


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


def _parse_fmt(fmt_body: bytes, path: Path) -> tuple[int, int, int, int]:
    """(format code, channels, sample rate, bytes per sample in the container).

    Every field the decode divides by or multiplies with is checked here, before it is used: a header
    claiming 0 channels, 0 Hz or 0 bits per sample is a BadAudioError naming that field, never a
    ZeroDivisionError. The byte rate is never used (many writers get it wrong), so it is not checked."""
    if len(fmt_body) < 16:
        raise _WavParseError(f"fmt chunk too short ({len(fmt_body)} bytes)")
    code, channels, sr, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt_body)
    if code == _WAVE_FORMAT_EXTENSIBLE:
        if len(fmt_body) < 26:
            raise _WavParseError("WAVE_FORMAT_EXTENSIBLE fmt chunk without a sub-format")
        code = struct.unpack_from("<H", fmt_body, 24)[0]  # first two bytes of the sub-format GUID
    _check_header(path, sr, channels)
    return code, channels, sr, _container_width(path, channels, block_align, bits)


def _container_width(path: Path, channels: int, block_align: int, bits: int) -> int:
    """Bytes per sample: block align / channels when that whole number of bytes holds ``bits`` (12-bit
    audio sits in 16-bit containers, 24-bit in 32-bit ones), else ``bits`` rounded up to whole bytes
    (writers that leave block align 0 or wrong). ``channels`` was checked (>= 1) by the caller."""
    if not 1 <= bits <= _MAX_BITS_PER_SAMPLE:
        raise BadAudioError(path, f"header claims {bits} bits per sample (emoaug reads 1-{_MAX_BITS_PER_SAMPLE})")
    from_bits = (bits + 7) // 8
    if block_align % channels == 0 and from_bits <= block_align // channels <= _MAX_BITS_PER_SAMPLE // 8:
        return block_align // channels
    return from_bits


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


def _decode_riff_wave(data: bytes, path: Path = Path("<bytes>"), max_duration: float | None = None
                      ) -> tuple[np.ndarray, int]:
    fmt_body, samples = _walk_chunks(data)
    code, channels, sr, width = _parse_fmt(fmt_body, path)
    frames = len(samples) // (width * channels)  # a truncated last frame is dropped
    limit, meaning = _frame_limit(path, sr, channels, max_duration)
    if frames > limit:
        raise BadAudioError(path, meaning)
    raw = samples[: frames * width * channels]
    y = _samples_to_float(raw, code, width).reshape(frames, channels)
    return y, sr
