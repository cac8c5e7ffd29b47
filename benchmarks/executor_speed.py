"""Wall time of the default run under different executors, on a quiet machine and beside a competing process.

Targets (issue 10), each printed as a ratio measured in this one script run:

* ``--executor process --jobs 2 --threads 1`` vs ``--jobs 1`` (local, 1 thread): speed-up >= 1.5x on 2 cores;
* ``python run_bench.py`` with no arguments (it chooses executor and threads): <= 5 min on a quiet 2-core machine;
* the same with one competing CPU-bound process on the machine: slowdown <= 2.5x vs quiet.

Every run is a whole ``run_bench.py`` process (start-up, corpus scan, cached features, every cell, tables,
figures and audio), with an empty cell store of its own, so no cell is reused; the feature cache is warm
(one untimed warm-up run fills it). Run it on an otherwise idle machine: anything else running skews
every number (see the README).

    python benchmarks/executor_speed.py                 # all four runs (about 20 min on 2 cores)
    python benchmarks/executor_speed.py --only default  # just the no-argument run
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

from common import clean_env, time_run_bench

DEFAULT_TARGET_S = 5 * 60
SPEEDUP_TARGET = 1.5
LOAD_SLOWDOWN_TARGET = 2.5


def run(extra: list[str], store: Path, out: Path, env: dict) -> float:
    return time_run_bench(["--out", str(out), "--store", str(store), "--no-mlflow", "--quiet", *extra], env)


def burn(stop) -> None:
    """One CPU-bound competitor (pure Python arithmetic, one core)."""
    x = 0
    while not stop.is_set():
        for k in range(100_000):
            x = (x * 31 + k) % 1_000_003


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("default", "jobs", "load"), default=None)
    parser.add_argument("--args", default="", help="extra run_bench.py arguments for every run (e.g. --seeds 1)")
    args = parser.parse_args()
    env = clean_env()
    extra = args.args.split()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run(extra + ["--profile", "smoke"], tmp / "warm-store", tmp / "warm", env)  # corpus and features cached
        plans = {
            "jobs1": extra + ["--executor", "local", "--threads", "1"],
            "jobs2": extra + ["--executor", "process", "--jobs", "2", "--threads", "1"],
            "default": extra,
        }
        wanted = {"default": ["default"], "jobs": ["jobs1", "jobs2"], "load": ["default"]}.get(args.only, list(plans))
        for name in wanted:
            results[name] = run(plans[name], tmp / f"store-{name}", tmp / f"runs-{name}", env)
            print(f"{name:<8} {results[name]:7.1f} s   run_bench.py {' '.join(plans[name])}", flush=True)
        if args.only in (None, "load"):
            stop = multiprocessing.Event()
            competitor = multiprocessing.Process(target=burn, args=(stop,), daemon=True)
            competitor.start()
            try:
                results["loaded"] = run(plans["default"], tmp / "store-loaded", tmp / "runs-loaded", env)
            finally:
                stop.set()
                competitor.join(5)
            print(f"{'loaded':<8} {results['loaded']:7.1f} s   the default run beside one CPU-bound process")

    cores = len(os.sched_getaffinity(0))
    print(f"\n{cores} cores; every run from an empty cell store with warm feature caches")
    ok = True
    if "jobs1" in results and "jobs2" in results:
        speedup = results["jobs1"] / results["jobs2"]
        ok &= speedup >= SPEEDUP_TARGET
        print(f"--jobs 2 vs --jobs 1 speed-up: {speedup:.2f}x (target >= {SPEEDUP_TARGET}x: "
              f"{'met' if speedup >= SPEEDUP_TARGET else 'MISSED'})")
    if "default" in results:
        ratio = results["default"] / DEFAULT_TARGET_S
        ok &= ratio <= 1
        print(f"no-argument run: {results['default'] / 60:.2f} min = {ratio:.2f} of the 5-minute target "
              f"({'met' if ratio <= 1 else 'MISSED'})")
    if "loaded" in results and "default" in results:
        slowdown = results["loaded"] / results["default"]
        ok &= slowdown <= LOAD_SLOWDOWN_TARGET
        print(f"slowdown beside one CPU-bound process: {slowdown:.2f}x (target <= {LOAD_SLOWDOWN_TARGET}x: "
              f"{'met' if slowdown <= LOAD_SLOWDOWN_TARGET else 'MISSED'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
