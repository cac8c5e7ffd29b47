"""Peak memory of a smoke run over files whose headers lie (issue 11: it must stay under 2 GB and must not
depend on what a header claims).

Two whole ``run_bench.py`` processes (local executor, one process, so the peak is the run's own), each with a
fresh cache and store: the same good EmoDB-named files, once alone and once beside the hostile ones:
a 41 kB and a 400 kB WAVE claiming 1 Hz (before the fix: 25,780 s, 7.75 GB peak, and a MemoryError), one
claiming 65,535 channels, a 40 kB file whose data chunk claims 4 GiB, a sparse file of 600 MB, 119 s of
FLAC-compressed silence, and a legitimate 119 s 48 kHz stereo recording.

    python benchmarks/hostile_memory.py
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, clean_env  # noqa: E402
from tests.helpers import make_emodb, write_riff_wav  # noqa: E402

TARGET_MB = 2048


def lying_wav(path: Path, *, sr: int, channels: int, data_bytes: int, claimed_data_bytes: int | None = None) -> None:
    noise = np.random.default_rng(0).integers(-3000, 3000, data_bytes // 2, dtype="<i2").tobytes()
    block = 2 * channels
    fmt = struct.pack("<HHIIHH", 1, channels, sr, sr * block & 0xFFFFFFFF, block & 0xFFFF, 16)
    size = len(noise) if claimed_data_bytes is None else claimed_data_bytes
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + noise
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) & 0xFFFFFFFF) + body)


def add_hostile_files(wav: Path) -> None:
    lying_wav(wav / "11a01Wa.wav", sr=1, channels=1, data_bytes=41_000)
    lying_wav(wav / "11a01Wb.wav", sr=1, channels=1, data_bytes=400_000)
    lying_wav(wav / "11a01Wc.wav", sr=16000, channels=65535, data_bytes=40_000)
    lying_wav(wav / "11a01Wd.wav", sr=16000, channels=1, data_bytes=40_000, claimed_data_bytes=0xFFFFFFF0)
    write_riff_wav(wav / "11a01We.wav", np.zeros(1600), 16000)
    with open(wav / "11a01We.wav", "r+b") as handle:
        handle.truncate(600 * 2**20)  # sparse: no disk used
    sf.write(str(wav / "11a01Wf.flac"), np.zeros(119 * 16000, dtype=np.float32), 16000, format="FLAC")
    noise = np.random.default_rng(1).standard_normal((119 * 48000, 2)).astype(np.float32) * 0.1
    sf.write(str(wav / "12a01Wa.wav"), noise, 48000, subtype="PCM_16")


def peak_rss_mb(data_root: Path, work: Path) -> tuple[float, int]:
    """(peak resident MB, exit code) of one smoke run in its own process."""
    command = [sys.executable, str(ROOT / "run_bench.py"), "--corpus", "emodb", "--data-root", str(data_root),
               "--profile", "smoke", "--gen", "none", "--executor", "local", "--out", str(work / "runs"),
               "--store", str(work / "store"), "--cache-dir", str(work / "cache"), "--no-mlflow", "--quiet"]
    process = subprocess.Popen(command, env=clean_env(), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, process.returncode  # Linux: kB


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        good = make_emodb(tmp / "good", speakers=("03", "08", "09", "10"), letters="WEAFTN", texts=("a01", "a02"))
        hostile = make_emodb(tmp / "hostile", speakers=("03", "08", "09", "10"), letters="WEAFTN",
                             texts=("a01", "a02"))
        add_hostile_files(hostile / "wav")
        good_mb, good_code = peak_rss_mb(good, tmp / "run-good")
        hostile_mb, hostile_code = peak_rss_mb(hostile, tmp / "run-hostile")
    print(f"smoke run, good files only:        peak RSS {good_mb:7.0f} MB (exit {good_code})")
    print(f"smoke run, good + hostile headers: peak RSS {hostile_mb:7.0f} MB (exit {hostile_code})")
    print(f"ratio hostile / good: {hostile_mb / good_mb:.2f}; target: under {TARGET_MB} MB "
          f"({'met' if hostile_mb < TARGET_MB and hostile_code == 0 else 'NOT met'})")


if __name__ == "__main__":
    main()
