"""Whole-process wall time of the answers that should be instant: listing, help and option errors.

Target (issue 14): each under 1.5 s on a quiet 2-core machine (median of ``--repeat`` runs). ``import torch``
alone is printed for comparison: none of these commands may import it (tests/test_fast_feedback.py checks
that by module name).

    python benchmarks/cli_latency.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.5
COMMANDS = {
    "list": ["list"],
    "--help": ["--help"],
    "--corpus ravdess (no files)": ["--corpus", "ravdess"],
    "--gen nosuchgen": ["--gen", "none,nosuchgen"],
    "--profile huge": ["--profile", "huge"],
    "--data-root missing": ["--corpus", "emodb", "--data-root", "/no/such/dir"],
}


def wall(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"PATH": "/usr/bin:/bin", "EMOAUG_CACHE": tmp, "HOME": tmp}
        torch_s = statistics.median(wall([sys.executable, "-c", "import torch"], env) for _ in range(args.repeat))
        print(f"{'import torch (reference)':<32}{torch_s:6.2f} s")
        worst = 0.0
        for name, argv in COMMANDS.items():
            seconds = statistics.median(wall([sys.executable, str(ROOT / "run_bench.py"), *argv], env)
                                        for _ in range(args.repeat))
            worst = max(worst, seconds)
            print(f"{name:<32}{seconds:6.2f} s  ({seconds / TARGET_S:.2f} of the {TARGET_S} s target)")
    print(f"slowest: {worst:.2f} s ({'met' if worst <= TARGET_S else 'MISSED'}; median of {args.repeat} runs each)")
    return 0 if worst <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
