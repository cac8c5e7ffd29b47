"""Shared by the benchmark scripts: time one whole ``run_bench.py`` process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clean_env() -> dict[str, str]:
    """This environment without the defaults a test suite or shell may have set for emoaug's executor."""
    return {k: v for k, v in os.environ.items() if k not in ("EMOAUG_EXECUTOR", "EMOAUG_THREADS")}


def time_run_bench(args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``run_bench.py ARGS`` (output discarded); a failed run stops the benchmark."""
    command = [sys.executable, str(ROOT / "run_bench.py"), *args]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {' '.join(command)}")
    return seconds
