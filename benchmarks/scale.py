"""How each phase of a run grows with the corpus: wall time, peak memory and growth exponents at N items.

Builds folder corpora of N utterances from copies of a real corpus (EmoDB: ``--emodb DIR/wav``), each copy of a
recording dithered with its own seeded noise of about one 16-bit step (no two files are byte-identical, so
every cache and content key sees N distinct recordings) and kept under its original speaker, so near-copies of
one recording never straddle a speaker-independent split. Then runs one fixed configuration (by default
``--gen none,specaugment --profile smoke --protocol none``, the executor the machine picks) at each N from an
empty cache and store, and once more with everything stored, and reads each run's ``timings.json``.

Prints, per phase (scan, features, functionals, splits, planning, cells, reference, results, rendering,
tracking): the wall seconds at each N, the growth exponent ``log(t2 / t1) / log(N2 / N1)`` between
consecutive sizes (1 = linear; phases under a second are too noisy to read and are marked ``~``), and the
time extrapolated to 100,000 items from the largest two sizes; then the driver's and the largest worker's
peak RSS and the stored re-run's wall time. Measure on a quiet machine: nothing else running.

    python benchmarks/scale.py --emodb ../shared/data/emodb/wav                      # N = 500, 2000, 8000
    python benchmarks/scale.py --emodb ../shared/data/emodb/wav --sizes 500,2000 --work /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, clean_env  # noqa: E402

PHASES = ("scan", "features", "functionals", "splits", "planning", "cells", "reference", "results", "rendering",
          "tracking")
#: EmoDB's emotion letters -> the folder corpus's emotion folders (boredom is left out: not in the 6 classes)
EMODB_EMOTIONS = {"W": "angry", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
DITHER = 1.0 / 32768  # about one 16-bit step: inaudible, but every copy's bytes differ
EXTRAPOLATE_TO = 100_000


def emodb_sources(emodb: Path) -> list[tuple[Path, str, str]]:
    """(path, speaker, emotion folder) of every EmoDB file of the six classes."""
    sources = []
    for path in sorted(emodb.glob("*.wav")):
        emotion = EMODB_EMOTIONS.get(path.stem[5:6])
        if emotion:
            sources.append((path, path.stem[:2], emotion))
    if not sources:
        raise SystemExit(f"--emodb: no EmoDB wav files in {emodb}")
    order = np.random.default_rng(0).permutation(len(sources))  # any first N cover every speaker and emotion
    return [sources[i] for i in order]


def build_corpus(sources: list[tuple[Path, str, str]], n_items: int, root: Path) -> Path:
    """``root/<emotion>/<speaker>_<stem>c<copy>.wav`` for the first ``n_items`` of copy 0, 1, 2, ... of every
    source (kept when already built)."""
    import soundfile as sf

    done = root / ".complete"
    if done.is_file() and int(done.read_text()) == n_items:
        return root
    shutil.rmtree(root, ignore_errors=True)
    for k in range(n_items):
        copy, index = divmod(k, len(sources))
        path, speaker, emotion = sources[index]
        signal, rate = sf.read(path, dtype="float32")
        if copy:  # copy 0 is the recording itself
            rng = np.random.default_rng(copy * 1_000_003 + index)
            signal = np.clip(signal + rng.uniform(-DITHER, DITHER, size=signal.shape), -1, 1)
        target = root / emotion / f"{speaker}_{path.stem}c{copy}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, signal, rate, subtype="PCM_16")
    done.write_text(str(n_items))
    return root


def run_once(corpus: Path, work: Path, extra: list[str]) -> dict:
    """One ``run_bench.py`` process; returns its timings.json with the process's own wall time added."""
    out = work / "runs"
    args = [sys.executable, str(ROOT / "run_bench.py"), "--corpus", "folder", "--data-root", str(corpus),
            "--out", str(out), "--cache-dir", str(work / "cache"), "--store", str(work / "store"), "--quiet", *extra]
    start = time.perf_counter()
    done = subprocess.run(args, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {' '.join(args)}\n{done.stderr[-3000:]}")
    runs = sorted(out.glob("*/timings.json"), key=lambda p: p.stat().st_mtime)
    record = json.loads(runs[-1].read_text())
    record["process_wall_s"] = wall
    return record


def exponent(n1: int, t1: float, n2: int, t2: float) -> float | None:
    if t1 <= 0 or t2 <= 0:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def report(sizes: list[int], fresh: dict[int, dict], stored: dict[int, dict]) -> str:
    lines = []
    pairs = list(zip(sizes, sizes[1:]))
    head = (["phase"] + [f"N={n:,} s" for n in sizes] + [f"exp {a:,}->{b:,}" for a, b in pairs]
            + [f"~N={EXTRAPOLATE_TO:,} s"])
    lines.append(" | ".join(head))
    lines.append(" | ".join("---" for _ in head))
    for phase in (*PHASES, "total"):
        times = [fresh[n]["total_s"] if phase == "total" else fresh[n]["phases_s"].get(phase, 0.0) for n in sizes]
        row = [phase] + [f"{t:.1f}" for t in times]
        for (a, b), (ta, tb) in zip(pairs, zip(times, times[1:])):
            value = exponent(a, ta, b, tb)
            noisy = "~" if min(ta, tb) < 1.0 else ""
            row.append("-" if value is None else f"{noisy}{value:.2f}")
        slope = exponent(sizes[-2], times[-2], sizes[-1], times[-1]) if len(sizes) > 1 else 1.0
        projected = times[-1] * (EXTRAPOLATE_TO / sizes[-1]) ** max(slope or 1.0, 1.0)
        row.append(f"{projected:,.0f}")
        lines.append(" | ".join(row))
    lines.append("")
    lines.append("N | peak RSS driver MiB | peak RSS worker MiB | cells busy | run wall s (empty cache) | "
                 "run wall s (all stored) | stored: cells / reference folds")
    lines.append("--- | --- | --- | --- | --- | --- | ---")
    for n in sizes:
        record, again = fresh[n], stored[n]
        busy = record["cells"].get("worker_utilisation")
        lines.append(f"{n:,} | {record['peak_rss_mb']['driver']:.0f} | {record['peak_rss_mb']['worker'] or 0:.0f} | "
                     f"{'-' if busy is None else f'{100 * busy:.0f} %'} | {record['process_wall_s']:.1f} | "
                     f"{again['process_wall_s']:.1f} | {again['counts'].get('cells_stored')} / "
                     f"{again['counts'].get('reference_folds_stored')}")
    lines.append("")
    lines.append("exp = growth exponent of the phase's wall time between two sizes (1 = linear, 2 = quadratic; "
                 "~ marks phases under a second at either size, too short to read); ~N=100,000 extrapolates the "
                 "largest size with the last exponent (at least 1).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emodb", required=True, help="EmoDB's wav folder (the source recordings)")
    parser.add_argument("--sizes", default="500,2000,8000", help="corpus sizes N, comma-separated")
    parser.add_argument("--work", default="/tmp/emoaug-scale", help="corpora, caches, stores and runs go here")
    parser.add_argument("--keep", action="store_true", help="keep each size's cache and store (default: removed)")
    parser.add_argument("run_args", nargs="*", default=None,
                        help="run_bench.py options after -- (default: --gen none,specaugment --profile smoke "
                             "--protocol none)")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.sizes.split(","))
    extra = args.run_args or ["--gen", "none,specaugment", "--profile", "smoke", "--protocol", "none"]
    work = Path(args.work)
    sources = emodb_sources(Path(args.emodb))
    fresh, stored = {}, {}
    for n in sizes:
        corpus = build_corpus(sources, n, work / f"corpus-{n}")
        size_work = work / f"run-{n}"
        shutil.rmtree(size_work, ignore_errors=True)  # an empty cache and store
        fresh[n] = run_once(corpus, size_work, extra)
        stored[n] = run_once(corpus, size_work, extra)
        print(f"N={n:,}: {fresh[n]['process_wall_s']:.1f} s from scratch, {stored[n]['process_wall_s']:.1f} s "
              f"stored; {json.dumps(fresh[n]['phases_s'])}", flush=True)
        (work / f"timings-{n}.json").write_text(json.dumps({"fresh": fresh[n], "stored": stored[n]}, indent=1))
        if not args.keep:
            shutil.rmtree(size_work, ignore_errors=True)
    print()
    print(f"run_bench.py {' '.join(extra)} on folder corpora of N dithered EmoDB copies ({len(sources)} recordings, "
          f"10 speakers)")
    print(report(sizes, fresh, stored))


if __name__ == "__main__":
    main()
