"""Seeded header fuzzing: whatever bytes a WAVE, RF64 or AIFF header holds, ``describe``'s path gives an item
or a skip with a reason, never another exception.

Each case mutates one valid small file: a random value in one numeric header field, a truncation, a random
chunk id or size, or random bytes over the header. The cases go through ``probe_audio`` (what the corpus
scan calls) and, when it accepts the file, ``load_mono`` (what the front end calls).
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emoaug.audio import AudioInfo, load_mono, probe_audio
from emoaug.datasets import load_corpus
from emoaug.errors import BadAudioError
from tests.helpers import emotion_signal, write_riff_wav

SR = 16000
CASES_PER_BASE = 700
SEED = 22

# (offset, struct format) of every numeric header field of the base files below
WAVE_FIELDS = {
    "riff size": (4, "<I"), "fmt size": (16, "<I"), "format code": (20, "<H"), "channels": (22, "<H"),
    "sample rate": (24, "<I"), "byte rate": (28, "<I"), "block align": (32, "<H"), "bits per sample": (34, "<H"),
}  # fmt: skip
PLAIN_WAVE_FIELDS = {**WAVE_FIELDS, "data size": (40, "<I")}
# WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, channel mask and the sub-format after the plain 16 bytes
EXTENSIBLE_FIELDS = {**WAVE_FIELDS, "cb size": (36, "<H"), "valid bits": (38, "<H"), "channel mask": (40, "<I"),
                     "sub-format": (44, "<H"), "data size": (64, "<I")}
# libsndfile's RF64: a ds64 chunk (64-bit sizes) before an extensible fmt chunk
RF64_FIELDS = {
    "riff size": (4, "<I"), "ds64 size": (16, "<I"), "riff size 64": (20, "<Q"), "data size 64": (28, "<Q"),
    "sample count": (36, "<Q"), "fmt size": (52, "<I"), "format code": (56, "<H"), "channels": (58, "<H"),
    "sample rate": (60, "<I"), "block align": (68, "<H"), "bits per sample": (70, "<H"), "sub-format": (80, "<H"),
    "data size": (100, "<I"),
}  # fmt: skip
AIFF_FIELDS = {
    "form size": (4, ">I"), "comm size": (16, ">I"), "channels": (20, ">H"), "frames": (22, ">I"),
    "bits": (26, ">H"), "rate exponent": (28, ">H"), "rate mantissa": (30, ">I"), "ssnd size": (42, ">I"),
    "ssnd offset": (46, ">I"),
}  # fmt: skip
CHUNK_IDS = (b"RIFF", b"RF64", b"WAVE", b"fmt ", b"data", b"ds64", b"LIST", b"FORM", b"AIFF", b"COMM", b"SSND",
             b"\x00\x00\x00\x00", b"\xff\xff\xff\xff")


def _interesting(rng: random.Random, fmt: str) -> int:
    """Values that break arithmetic (0, 1, the type's extremes, powers of two) or are anything at all."""
    top = (1 << (8 * struct.calcsize(fmt))) - 1
    return rng.choice([0, 1, 2, 3, 4, 7, 8, 12, 16, 24, 32, 33, 64, 65, 255, 256, 0x7FFF, 0x8000, 0xFFFE,
                       top, top - 1, top // 2, top // 2 + 1, rng.randint(0, top)]) & top


def _valid_files(tmp_path: Path) -> dict[str, tuple[bytes, dict]]:
    """Small valid files (0.3 s at 16 kHz): (bytes, their numeric header fields)."""
    y = emotion_signal("angry", sr=SR, seconds=0.3, seed=1)
    stereo = np.stack([y, 0.5 * y], axis=1)
    sf.write(str(tmp_path / "d.aiff"), y, SR, format="AIFF", subtype="PCM_16")
    sf.write(str(tmp_path / "e.wav"), y, SR, format="RF64", subtype="PCM_16")
    files = {
        "pcm16": (write_riff_wav(tmp_path / "a.wav", y, SR), PLAIN_WAVE_FIELDS),
        "float32_stereo": (write_riff_wav(tmp_path / "b.wav", stereo, SR, bits=32, float_format=True),
                           PLAIN_WAVE_FIELDS),
        "pcm24_extensible": (write_riff_wav(tmp_path / "c.wav", y, SR, bits=24, extensible=True), EXTENSIBLE_FIELDS),
        "aiff": (tmp_path / "d.aiff", AIFF_FIELDS),
        "rf64": (tmp_path / "e.wav", RF64_FIELDS),
    }
    return {name: (path.read_bytes(), fields) for name, (path, fields) in files.items()}


def _mutate(data: bytes, fields: dict, rng: random.Random) -> tuple[bytes, str]:
    """One random change to ``data``; returns (new bytes, what was changed)."""
    blob = bytearray(data)
    kind = rng.choice(["field", "field", "field", "two fields", "zeros", "truncate", "chunk id", "chunk size",
                       "bytes", "insert chunk"])
    if kind in ("field", "two fields", "zeros"):  # zeros: three fields 0 at once (0 bits and 0 block align)
        changes = []
        for name in rng.sample(sorted(fields), {"field": 1, "two fields": 2, "zeros": 3}[kind]):
            offset, fmt = fields[name]
            value = 0 if kind == "zeros" else _interesting(rng, fmt)
            struct.pack_into(fmt, blob, offset, value)
            changes.append(f"{name}={value}")
        return bytes(blob), ", ".join(changes)
    if kind == "truncate":
        cut = rng.choice([rng.randint(0, 64), rng.randint(0, len(blob))])
        return bytes(blob[:cut]), f"truncated to {cut} bytes"
    ids = [i for i in range(0, min(len(blob), 120) - 3) if bytes(blob[i:i + 4]) in CHUNK_IDS]
    if kind == "chunk id" and ids:
        at = rng.choice(ids)
        new = rng.choice([*CHUNK_IDS, bytes(rng.getrandbits(8) for _ in range(4))])
        blob[at:at + 4] = new
        return bytes(blob), f"chunk id at {at} -> {new!r}"
    if kind == "chunk size" and ids:
        at = rng.choice(ids) + 4
        value = _interesting(rng, "<I")
        struct.pack_into(rng.choice(["<I", ">I"]), blob, at, value)
        return bytes(blob), f"chunk size at {at} -> {value}"
    if kind == "insert chunk":
        at = rng.choice([12, 36, 44, len(blob)])
        chunk = rng.choice(CHUNK_IDS) + struct.pack("<I", _interesting(rng, "<I")) + bytes(rng.randint(0, 20))
        return bytes(blob[:at] + chunk + blob[at:]), f"chunk {chunk[:8]!r} inserted at {at}"
    count = rng.randint(1, 8)
    for _ in range(count):
        blob[rng.randrange(min(len(blob), 80))] = rng.getrandbits(8)
    return bytes(blob), f"{count} random byte(s) in the header"


def _outcome(path: Path) -> str:
    """'item', 'skipped', or raises what the decoders raised when it is not a BadAudioError."""
    try:
        info = probe_audio(path)
    except BadAudioError as err:
        assert err.path == str(path) and err.reason.strip() and "\n" not in err.reason, err
        return "skipped"
    assert isinstance(info, AudioInfo) and info.frames > 0 and info.sample_rate > 0
    try:
        y = load_mono(path, 8000)
    except BadAudioError as err:  # e.g. silent after resampling
        assert err.reason.strip()
        return "skipped"
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.size > 0
    return "item"


def test_random_headers_give_an_item_or_a_reason_never_another_exception(tmp_path, monkeypatch, capfd):
    # an exception inside a decoder callback is not raised but printed as a traceback: caught here too
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: unraisable.append(repr(report.exc_value)))
    rng = random.Random(SEED)
    path = tmp_path / "fuzzed.wav"
    outcomes: dict[str, int] = {"item": 0, "skipped": 0}
    failures = []
    for base, (data, fields) in _valid_files(tmp_path).items():
        for case in range(CASES_PER_BASE):
            mutated, change = _mutate(data, fields, rng)
            path.write_bytes(mutated)
            try:
                outcomes[_outcome(path)] += 1
            except Exception as err:  # noqa: BLE001 (the point of the test: any other exception is a bug)
                failures.append(f"{base} case {case} ({change}): {type(err).__name__}: {err}")
    assert not failures, f"{len(failures)} case(s) raised:\n" + "\n".join(failures[:10])
    assert not unraisable, f"{len(unraisable)} exception(s) printed from decoder callbacks: {unraisable[:3]}"
    assert capfd.readouterr().err == ""
    # the mutations reach both outcomes: some headers are harmless (byte rate), many are not
    assert outcomes["item"] > 100 and outcomes["skipped"] > 500, outcomes


def _with_fields(data: bytes, **fields: int) -> bytes:
    blob = bytearray(data)
    for name, value in fields.items():
        offset, fmt = PLAIN_WAVE_FIELDS[name.replace("_", " ")]
        struct.pack_into(fmt, blob, offset, value)
    return bytes(blob)


@pytest.mark.parametrize(("fields", "reason"), [
    ({"bits_per_sample": 0, "block_align": 0}, "header claims 0 bits per sample"),
    ({"bits_per_sample": 0}, "header claims 0 bits per sample"),
    ({"bits_per_sample": 200, "block_align": 0}, "header claims 200 bits per sample"),
    ({"channels": 0, "block_align": 0}, "header claims 0 channels"),
    ({"sample_rate": 0}, "header claims 0 Hz"),
])  # fmt: skip
def test_a_header_field_that_breaks_arithmetic_is_named_in_the_reason(tmp_path, fields, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(_with_fields(_valid_files(tmp_path)["pcm16"][0], **fields))
    with pytest.raises(BadAudioError) as caught:
        probe_audio(path)
    assert caught.value.reason.startswith(reason) and caught.value.path == str(path)


def test_block_align_0_alone_is_tolerated_from_the_bits(tmp_path):
    """Writers that leave block align 0 are common; the width then comes from the bits per sample."""
    path = tmp_path / "ok.wav"
    path.write_bytes(_with_fields(_valid_files(tmp_path)["pcm16"][0], block_align=0))
    assert probe_audio(path).frames == int(0.3 * SR)


def test_a_zero_bit_file_in_a_corpus_is_skipped_and_the_good_files_are_items(tmp_path):
    root = tmp_path / "corpus"
    for seed, (emotion, speaker) in enumerate([("angry", "s1"), ("angry", "s2"), ("sad", "s1"), ("sad", "s2")]):
        write_riff_wav(root / emotion / f"{speaker}_1.wav", emotion_signal(emotion, seconds=0.5, seed=seed), SR)
    bad = root / "angry" / "s3_1.wav"
    bad.write_bytes(_with_fields((root / "angry" / "s1_1.wav").read_bytes(), bits_per_sample=0, block_align=0))
    scan = load_corpus("folder", root, labels="all")
    assert sorted(scan.items["path"]) == sorted(str(p) for p in root.glob("*/s[12]_1.wav"))
    assert [(e["path"], e["stage"]) for e in scan.skipped] == [(str(bad), "probe")]
    assert scan.skipped[0]["reason"].startswith("header claims 0 bits per sample")
