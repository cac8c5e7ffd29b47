"""Whole-process wall time of a six-generator smoke run on the embedded corpus, this tree vs an earlier
revision, median of several runs (issue 14: under 90 s with warm caches).

Every run gets a fresh output folder (and, where the revision has one, a fresh cell store), so every cell
is computed; the corpus and its features come from one warm cache shared by all runs (an untimed warm-up run
fills it). ``--before REV`` checks REV out into a temporary git worktree (with this venv's packages) and
times it the same way, so both figures come from one script run on one machine state. ``list`` and an
option error are timed alongside.

    python benchmarks/smoke_walltime.py --before a8c3de9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATORS = "none,specaugment,vae,dcgan,cyclegan,diffusion"
TARGET_S = 90.0


def timed(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 2):
        raise SystemExit(f"failed ({done.returncode}) in {cwd}: {' '.join(command)}\n{done.stderr[-2000:]}")
    return seconds


def measure(tree: Path, cache: Path, tmp: Path, repeat: int, extra: list[str]) -> dict[str, float]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("EMOAUG_")}, "EMOAUG_CACHE": str(cache),
           "PYTHONPATH": str(tree)}
    launcher = [sys.executable, str(tree / "run_bench.py")]
    has_store = "--store" in subprocess.run([*launcher, "--help"], cwd=tree, env=env, capture_output=True,
                                            text=True).stdout

    def smoke(k: int) -> list[str]:
        out = tmp / f"{tree.name}-{k}"
        return [*launcher, "--gen", GENERATORS, "--profile", "smoke", "--no-mlflow", "--quiet", "--out", str(out),
                *(["--store", str(out / "store")] if has_store else []), *extra]

    timed(smoke(-1), tree, env)  # warm-up: corpus and features into the shared cache
    return {
        "list": statistics.median(timed([*launcher, "list"], tree, env) for _ in range(repeat)),
        "option error": statistics.median(timed([*launcher, "--profile", "huge"], tree, env) for _ in range(repeat)),
        "six-generator smoke run": statistics.median(timed(smoke(k), tree, env) for k in range(repeat)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=None, help="git revision to compare with (e.g. the last release)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--args", default="", help="extra run_bench.py arguments for the smoke runs")
    args = parser.parse_args()
    extra = args.args.split()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {"this tree": ROOT}
        if args.before:
            subprocess.run(["git", "worktree", "add", "--detach", str(tmp / "before"), args.before], cwd=ROOT,
                           check=True, capture_output=True)
            trees = {f"before ({args.before})": tmp / "before", **trees}
        try:
            for name, tree in trees.items():
                results[name] = measure(tree, tmp / f"cache-{tree.name}", tmp, args.repeat, extra)
        finally:
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "before")], cwd=ROOT,
                               capture_output=True)
    print(f"median of {args.repeat} whole-process runs each; {os.cpu_count()} cores; warm corpus/feature cache")
    names = list(results)
    print(f"{'':<26}" + "".join(f"{n:>22}" for n in names) + ("     ratio" if len(names) == 2 else ""))
    for what in results[names[0]]:
        values = [results[n][what] for n in names]
        ratio = f"{values[0] / values[1]:9.2f}x" if len(values) == 2 else ""
        print(f"{what:<26}" + "".join(f"{v:>21.1f}s" for v in values) + ratio)
    smoke = results["this tree"]["six-generator smoke run"]
    print(f"six-generator smoke run: {smoke:.0f} s (target < {TARGET_S:.0f} s: {'met' if smoke < TARGET_S else 'MISSED'})")
    return 0 if smoke < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
