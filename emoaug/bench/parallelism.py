"""How many workers and torch threads a run uses (light: the CLI resolves it before torch is imported).

Torch's intra-op threads spin while waiting, so on a shared machine more threads than free cores make
training collapse (cells 10-36x slower were measured on 2 cores beside one other job). Each worker
therefore gets ``cores // workers`` threads, at least one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ..errors import EmoaugError

log = logging.getLogger("emoaug")

EXECUTORS = ("auto", "local", "process", "ray")


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Parallelism:
    executor: str  # local, process or ray
    jobs: int  # concurrent workers
    threads: int  # torch intra-op threads per worker


def resolve_parallelism(executor: str, jobs: int, threads: int, device: str, *, cores: int | None = None
                        ) -> Parallelism:
    """``auto``: a process per core with one thread each on a multi-core CPU (fastest, and robust when the
    machine is shared), else in-process. ``0`` jobs or threads: chosen so that jobs x threads <= cores."""
    if executor not in EXECUTORS:
        raise EmoaugError(f"--executor: unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    if jobs < 0:
        raise EmoaugError(f"--jobs must be >= 0, got {jobs}")
    if threads < 0:
        raise EmoaugError(f"--threads must be >= 0, got {threads}")
    cores = cores or available_cores()
    on_gpu = device.startswith("cuda")
    if executor == "auto":
        executor = "process" if (not on_gpu and (jobs > 1 or (jobs == 0 and cores > 1))) else "local"
    if executor == "local":
        if jobs > 1:
            raise EmoaugError("--jobs > 1 needs --executor process or ray")
        jobs = 1
    elif jobs == 0:
        jobs = cores if not on_gpu else 1
    if threads == 0:
        threads = max(1, cores // jobs)
    elif jobs * threads > cores and executor != "ray":
        log.warning("--jobs %d x --threads %d exceeds the %d cores: training slows down sharply", jobs, threads,
                    cores)
    return Parallelism(executor, jobs, threads)
