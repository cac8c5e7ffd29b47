"""Ray executor overhead on the smoke grid, and how it scales with workers.

Targets (issue 10): the Ray executor's wall time on the smoke grid exceeds the in-process executor's by
<= 30 s (starting a local Ray instance, shipping the workload, task scheduling); with more cores it scales
(the ratio of 1 worker to N workers is printed). Each run is a whole ``run_bench.py`` process with an empty
cell store of its own and warm feature caches.

    python benchmarks/ray_overhead.py
    python benchmarks/ray_overhead.py --args "--gen none,specaugment,vae"
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common import clean_env, time_run_bench

OVERHEAD_TARGET_S = 30.0


def run(extra: list[str], tmp: Path, name: str, env: dict) -> float:
    return time_run_bench(["--profile", "smoke", "--out", str(tmp / name), "--store", str(tmp / f"store-{name}"),
                           "--no-mlflow", "--quiet", *extra], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--args", default="--gen none,specaugment,dcgan", help="extra run_bench.py arguments")
    args = parser.parse_args()
    env = clean_env()
    extra = args.args.split()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run(extra, tmp, "warm-up", env)
        local = run([*extra, "--executor", "local", "--threads", "1"], tmp, "local", env)
        ray_1 = run([*extra, "--executor", "ray", "--jobs", "1", "--threads", "1"], tmp, "ray1", env)
        ray_n = run([*extra, "--executor", "ray", "--jobs", str(cores), "--threads", "1"], tmp, "rayN", env)
    overhead = ray_1 - local
    print(f"smoke grid (run_bench.py {' '.join(extra)}), {cores} cores, empty cell stores, warm feature cache")
    print(f"local, 1 thread: {local:.1f} s; ray, 1 worker: {ray_1:.1f} s; ray, {cores} workers: {ray_n:.1f} s")
    print(f"ray overhead vs local: {overhead:+.1f} s (target <= {OVERHEAD_TARGET_S:.0f} s: "
          f"{'met' if overhead <= OVERHEAD_TARGET_S else 'MISSED'})")
    print(f"ray scaling, 1 -> {cores} workers: {ray_1 / ray_n:.2f}x")
    return 0 if overhead <= OVERHEAD_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
