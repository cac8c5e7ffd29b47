"""Fixture writers: tiny corpora that follow the real naming schemes, and awkward WAVE files.

Signals are a harmonic tone plus band-limited noise whose fundamental and noise band depend on
the emotion, so a classifier trained on a fixture corpus can learn something real.
Every ``make_*`` function returns the root to pass to ``load_corpus``.
"""

from __future__ import annotations

import csv
import os
import json
import signal
import struct
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

# Fundamental (Hz) and noise band (Hz) per canonical emotion: distinct spectra per class.
EMOTION_SPECTRA: dict[str, tuple[float, tuple[float, float]]] = {
    "neutral": (110.0, (300.0, 600.0)),
    "happy": (260.0, (2500.0, 3500.0)),
    "sad": (90.0, (150.0, 350.0)),
    "angry": (220.0, (1500.0, 2500.0)),
    "fear": (330.0, (3500.0, 5000.0)),
    "disgust": (150.0, (800.0, 1200.0)),
    "boredom": (100.0, (600.0, 800.0)),
    "calm": (120.0, (200.0, 400.0)),
    "surprise": (400.0, (4000.0, 6000.0)),
    "excited": (280.0, (2000.0, 3000.0)),
    "frustrated": (200.0, (1200.0, 1800.0)),
    "other": (180.0, (500.0, 900.0)),
}

EMODB_LETTERS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
RAVDESS_CODES = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fear", "07": "disgust", "08": "surprise",
}  # fmt: skip
CREMAD_CODES = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


def _stable_seed(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def emotion_signal(emotion: str, *, sr: int = 16000, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Float32 mono clip (peak 0.5) whose spectrum depends on ``emotion``; ``seed`` varies the take."""
    rng = np.random.default_rng(seed)
    f0, (lo, hi) = EMOTION_SPECTRA.get(emotion, (170.0, (700.0, 1000.0)))
    f0 *= 1.0 + 0.05 * rng.standard_normal()  # speaker/take variation
    n = max(1, int(round(sr * seconds)))
    t = np.arange(n) / sr
    # each harmonic (and the noise) rises and falls at syllable rate on its own, and differently in every take
    # (seed): two takes never follow each other in time, as two recordings never do (the near-duplicate audit
    # tells copies by that)
    tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k * (0.15 + 0.85 * _syllables(n, sr, rng))
               for k in range(1, 5))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum[(freqs < lo) | (freqs > min(hi, sr / 2))] = 0.0
    noise = np.fft.irfft(spectrum, n)
    noise /= np.max(np.abs(noise)) + 1e-12
    unvoiced = 0.15 + 0.85 * _syllables(n, sr, rng)
    envelope = np.hanning(n) ** 0.25  # soft onset/offset like an utterance
    y = envelope * (0.7 * tone / np.max(np.abs(tone)) + 0.3 * unvoiced * noise)
    return (0.5 * y / (np.max(np.abs(y)) + 1e-12)).astype(np.float32)


def _syllables(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random envelope in [0, 1] with about eight bumps per second."""
    knots = rng.uniform(0.0, 1.0, size=max(2, int(n / sr * 16) + 2))
    return np.interp(np.linspace(0, knots.size - 1, n), np.arange(knots.size), knots) ** 2


def write_wav(path: Path, y: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write mono ``[n]`` or multi-channel ``[n, channels]`` audio with soundfile."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, subtype=subtype, format="WAV")
    return path


def _pcm_bytes(y: np.ndarray, bits: int, float_format: bool) -> bytes:
    y = np.asarray(y, dtype=np.float64)
    if float_format:
        return y.astype("<f4" if bits == 32 else "<f8").tobytes()
    if bits == 8:
        return np.clip(np.round(y * 128.0 + 128.0), 0, 255).astype(np.uint8).tobytes()
    scale = float(1 << (bits - 1))
    ints = np.clip(np.round(y * scale), -scale, scale - 1).astype(np.int64)
    if bits == 24:
        return (ints & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return ints.astype("<i2" if bits == 16 else "<i4").tobytes()


def _chunk(chunk_id: bytes, body: bytes, *, pad: bool = True) -> bytes:
    padding = b"\x00" if pad and len(body) % 2 else b""
    return chunk_id + struct.pack("<I", len(body)) + body + padding


def _fmt_body(channels: int, sr: int, bits: int, float_format: bool, extensible: bool) -> bytes:
    code = 3 if float_format else 1
    block_align = channels * bits // 8
    head = struct.pack("<HHIIHH", 0xFFFE if extensible else code, channels, sr, sr * block_align, block_align, bits)
    if not extensible:
        return head
    guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    return head + struct.pack("<HHI", 22, bits, (1 << channels) - 1) + struct.pack("<H", code) + guid_tail


def write_riff_wav(
    path: Path,
    y: np.ndarray,
    sr: int,
    *,
    bits: int = 16,
    float_format: bool = False,
    extensible: bool = False,
    chunks_before_fmt: Sequence[tuple[bytes, bytes]] = (),
    chunks_before_data: Sequence[tuple[bytes, bytes]] = (),
    pad_odd_chunks: bool = True,
    data_size: int | None = None,
    drop_tail_bytes: int = 0,
) -> Path:
    """Hand-built RIFF/WAVE file, for the layouts libsndfile may refuse.

    ``data_size`` overrides the data chunk's size field (0, 0xFFFFFFFF, or too large);
    ``drop_tail_bytes`` cuts the end off the file like a truncated download.
    """
    y = np.asarray(y)
    frames = y if y.ndim == 2 else y[:, None]
    samples = _pcm_bytes(frames.reshape(-1), bits, float_format)
    fmt = _fmt_body(frames.shape[1], sr, bits, float_format, extensible)
    body = b"WAVE"
    body += b"".join(_chunk(cid, data, pad=pad_odd_chunks) for cid, data in chunks_before_fmt)
    body += _chunk(b"fmt ", fmt)
    body += b"".join(_chunk(cid, data, pad=pad_odd_chunks) for cid, data in chunks_before_data)
    size_field = len(samples) if data_size is None else data_size
    body += b"data" + struct.pack("<I", size_field) + samples
    blob = b"RIFF" + struct.pack("<I", len(body)) + body
    if drop_tail_bytes:
        blob = blob[:-drop_tail_bytes]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return path


def write_wav_with_extra_chunks(path: Path, y: np.ndarray, sr: int, *, bits: int = 16) -> Path:
    """LIST and JUNK before fmt, an odd-sized custom chunk (with its pad byte) before data."""
    info = b"INFO" + _chunk(b"INAM", b"take 1\x00")
    return write_riff_wav(
        path,
        y,
        sr,
        bits=bits,
        chunks_before_fmt=[(b"LIST", info), (b"JUNK", b"\x00" * 28)],
        chunks_before_data=[(b"odd ", b"abc"), (b"fact", struct.pack("<I", len(y)))],
    )


def write_clip(path: Path, emotion: str, *, sr: int, seconds: float, seed: int, stereo: bool = False) -> Path:
    y = emotion_signal(emotion, sr=sr, seconds=seconds, seed=seed)
    if stereo:
        y = np.stack([y, 0.8 * y], axis=1)
    return write_wav(path, y, sr)


# --------------------------------------------------------------------------- corpora


def make_emodb(
    root: Path,
    speakers: Iterable[str] = ("03", "08", "10", "13"),
    *,
    letters: str = "WLEAFTN",
    texts: Iterable[str] = ("a01", "a02"),
    sr: int = 16000,
    seconds: float = 1.0,
    in_wav_subdir: bool = True,
) -> Path:
    """``root/wav/03a01Fa.wav``: speaker x text x emotion letter (4 x 2 x 7 = 56 files by default)."""
    root = Path(root)
    wav_dir = root / "wav" if in_wav_subdir else root
    for speaker in speakers:
        for text in texts:
            for letter in letters:
                name = f"{speaker}{text}{letter}a"
                write_clip(wav_dir / f"{name}.wav", EMODB_LETTERS[letter], sr=sr, seconds=seconds, seed=_stable_seed(name))
    return root


def ravdess_name(actor: int, emotion_code: str, *, modality: str = "03", channel: str = "01",
                 intensity: str = "01", statement: str = "01", repetition: str = "01") -> str:  # fmt: skip
    return f"{modality}-{channel}-{emotion_code}-{intensity}-{statement}-{repetition}-{actor:02d}.wav"


def make_ravdess(
    root: Path,
    actors: Iterable[int] = (1, 2, 3, 4),
    *,
    emotion_codes: Iterable[str] = tuple(RAVDESS_CODES),
    statements: Iterable[str] = ("01",),
    sr: int = 16000,
    seconds: float = 0.5,
    stereo_actors: Iterable[int] = (),
    add_song_and_video: bool = False,
) -> Path:
    """``root/Actor_XX/03-01-EE-01-SS-01-XX.wav``; ``add_song_and_video`` adds files to be ignored."""
    root = Path(root)
    stereo = set(stereo_actors)
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        for code in emotion_codes:
            for statement in statements:
                name = ravdess_name(actor, code, statement=statement)
                write_clip(folder / name, RAVDESS_CODES[code], sr=sr, seconds=seconds,
                           seed=_stable_seed(name), stereo=actor in stereo)  # fmt: skip
        if add_song_and_video:
            for extra in (ravdess_name(actor, "03", channel="02"), ravdess_name(actor, "03", modality="01")):
                write_clip(folder / extra, "happy", sr=sr, seconds=seconds, seed=_stable_seed(extra))
    return root


def make_cremad(
    root: Path,
    actors: Iterable[int] = (1001, 1002, 1003, 1004),
    *,
    sentences: Iterable[str] = ("IEO", "TIE"),
    emotion_codes: Iterable[str] = tuple(CREMAD_CODES),
    level: str = "XX",
    sr: int = 16000,
    seconds: float = 0.5,
    in_audiowav: bool = True,
    demographics: dict[int, str] | None = None,
    zero_length: Iterable[str] = (),
) -> Path:
    """``root/AudioWAV/1001_IEO_ANG_XX.wav`` plus ``root/VideoDemographics.csv`` when given.

    ``demographics`` maps actor id to "Male"/"Female"; ``zero_length`` lists file names written empty
    (real CREMA-D ships ``1076_MTI_SAD_XX.wav`` with 0 bytes).
    """
    root = Path(root)
    audio_dir = root / "AudioWAV" if in_audiowav else root
    for actor in actors:
        for sentence in sentences:
            for code in emotion_codes:
                name = f"{actor}_{sentence}_{code}_{level}.wav"
                write_clip(audio_dir / name, CREMAD_CODES[code], sr=sr, seconds=seconds, seed=_stable_seed(name))
    for name in zero_length:
        audio_dir.mkdir(parents=True, exist_ok=True)
        (audio_dir / name).write_bytes(b"")
    if demographics:
        with open(root / "VideoDemographics.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
            for actor, sex in demographics.items():
                writer.writerow([actor, 30, sex, "Caucasian", "Not Hispanic"])
    return root


IEMOCAP_CANONICAL = {"neu": "neutral", "hap": "happy", "exc": "excited", "sad": "sad", "ang": "angry",
                     "fru": "frustrated", "fea": "fear", "sur": "surprise", "dis": "disgust", "oth": "other"}  # fmt: skip


def make_iemocap(
    root: Path,
    sessions: Iterable[int] = (1, 2),
    *,
    codes: Sequence[str] = ("neu", "hap", "exc", "sad", "ang", "fru", "xxx"),
    sr: int = 16000,
    seconds: float = 0.4,
) -> Path:
    """Per session: one improvised and one scripted dialog; each utterance code spoken by F and M.

    Writes ``Session{n}/sentences/wav/<dialog>/<utt>.wav`` and
    ``Session{n}/dialog/EmoEvaluation/<dialog>.txt``; returns the root holding the Session folders.
    """
    root = Path(root)
    for session in sessions:
        for dialog in (f"Ses{session:02d}F_impro01", f"Ses{session:02d}M_script01_1"):
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            turn = 0
            for code in codes:
                for gender_letter in "FM":
                    utt = f"{dialog}_{gender_letter}{turn:03d}"
                    emotion = IEMOCAP_CANONICAL.get(code, "neutral")
                    write_clip(root / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}.wav",
                               emotion, sr=sr, seconds=seconds, seed=_stable_seed(utt))  # fmt: skip
                    start = 1.0 + turn
                    lines += [f"[{start:.4f} - {start + seconds:.4f}]\t{utt}\t{code}\t[2.5000, 2.5000, 2.5000]",
                              f"C-E1:\t{code.capitalize()};\t()", ""]  # fmt: skip
                    turn += 1
            evaluation = root / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
            evaluation.parent.mkdir(parents=True, exist_ok=True)
            evaluation.write_text("\n".join(lines) + "\n")
    return root


def make_folder(
    root: Path,
    emotions: Iterable[str] = ("angry", "happiness", "sad", "Neutral"),
    *,
    speakers: Iterable[str] | None = ("spk1", "spk2"),
    per_speaker: int = 2,
    ext: str = "wav",
    sr: int = 16000,
    seconds: float = 0.4,
) -> Path:
    """``root/<emotion folder>/<speaker>_<n>.<ext>``; ``speakers=None`` writes names without a speaker."""
    root = Path(root)
    subtype = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}[ext]
    for folder in emotions:
        for speaker in speakers if speakers is not None else [None]:
            for n in range(per_speaker):
                stem = f"{speaker}_{n:03d}" if speaker else f"clip{n:03d}"
                y = emotion_signal(folder.lower(), sr=sr, seconds=seconds, seed=_stable_seed(folder, stem))
                path = root / folder / f"{stem}.{ext}"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(path), y, sr, subtype=subtype)
    return root


def make_csv(
    root: Path,
    rows: Iterable[dict] | None = None,
    *,
    emotions: Iterable[str] = ("angry", "happy", "sad", "neutral"),
    speakers: Iterable[str] = ("a", "b"),
    per_speaker: int = 2,
    sr: int = 16000,
    seconds: float = 0.4,
    name: str = "manifest.csv",
) -> Path:
    """``root/audio/<speaker>_<emotion>_<n>.wav`` and ``root/<name>``; returns the CSV path.

    ``rows`` (dicts with path, emotion, speaker[, gender, text_id]) are appended verbatim, without
    writing audio for them: use them for escapes, unknown labels and missing files.
    """
    root = Path(root)
    table = []
    for speaker in speakers:
        for emotion in emotions:
            for n in range(per_speaker):
                rel = f"audio/{speaker}_{emotion}_{n}.wav"
                write_clip(root / rel, emotion, sr=sr, seconds=seconds, seed=_stable_seed(rel))
                gender = "female" if speaker < "b" else "male"
                table.append({"path": rel, "emotion": emotion, "speaker": speaker, "gender": gender, "text_id": f"t{n}"})
    table += list(rows or [])
    root.mkdir(parents=True, exist_ok=True)
    with open(root / name, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "emotion", "speaker", "gender", "text_id"], restval="")
        writer.writeheader()
        writer.writerows(table)
    return root / name


# --------------------------------------------------------------------------- run folders
def only_run_dir(out: Path) -> Path:
    """The one run folder (a folder with config.json) under ``out``."""
    dirs = [d for d in Path(out).iterdir() if d.is_dir() and (d / "config.json").exists()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def cells_index(run_dir: Path) -> pd.DataFrame:
    """A run's ``cells.json`` as a frame: one row per cell it used, with its key and whether it computed it."""
    return pd.DataFrame(json.loads((Path(run_dir) / "cells.json").read_text())["cells"])


# --------------------------------------------------------------------------- processes and the store
def published_cells(store: Path) -> list[Path]:
    """Cell folders in the store, not the hidden temporary folders a writer fills before publishing them."""
    return [p for p in store.glob("cells/*/*/meta.json") if not p.parent.name.startswith(".")]


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    members.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return members


def wait_until_group_is_empty(pgid: int, timeout_s: float) -> bool:
    """Whether every process of group ``pgid`` ended within ``timeout_s``; if not, they are killed."""
    deadline = time.monotonic() + timeout_s
    while group_members(pgid):
        if time.monotonic() > deadline:
            kill_group(pgid)
            return False
        time.sleep(0.2)
    return True


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------------- plugins
def fake_distribution(folder: Path, module: str, source: str, group: str, entry: str) -> None:
    """A fake installed distribution in ``folder`` (put it on sys.path): module ``module`` holding ``source`` and a
    dist-info folder declaring ``entry`` (``name = module:attr``) under the entry-point ``group``."""
    (folder / f"{module}.py").write_text(source)
    dist = folder / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")
