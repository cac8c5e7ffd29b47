"""Where a run's wall time goes: seconds per phase, the cells' compute against their wall time, peak memory.

Every run measures its phases in the order they happen -- ``scan`` (reading the corpus), ``features``
(log-mel, cached), ``functionals`` (openSMILE for the classic reference, cached), ``splits`` (folds, audit
and the run folder's input records), ``planning`` (content keys and the store lookup), ``cells`` (the
executor: judges, cells and the classic reference's folds, which are tasks beside the cells), ``reference``
(assembling the classic row from its folds), ``results`` (tidy tables and the
run folder's copy of every cell), ``rendering`` (tables, figures, audio, report.html) and ``tracking``
(MLflow) -- as the wall time of each phase in the driver. Phases do not overlap in the driver, so they add up
to the run's wall time; what ran *in parallel inside* a phase is said beside it: the cells phase records the
seconds its workers spent computing (summed over workers), how many workers there were and when the first
result arrived, so ``compute / (wall x workers)`` is how busy the workers were.

The result is one line at the end of a run, ``timings.json`` in the run folder and metrics on the MLflow
parent run. Peak resident memory is the driver's (``ru_maxrss`` of this process) and the largest a worker
reported for itself (each judge and cell reads its own ``ru_maxrss`` when it finishes).
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: the phases of a run, in the order they happen (a phase a run does not need is absent from its record)
PHASES = ("scan", "features", "functionals", "splits", "planning", "cells", "reference", "results",
          "rendering", "tracking")
TIMINGS_FILE = "timings.json"


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB: Linux's ``VmHWM`` (the high-water mark of this
    process's own memory; ``ru_maxrss`` would also count what a spawned worker inherited from its parent
    before ``exec``), else ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class CellActivity:
    """What the executor did inside the cells phase (filled as results arrive in the driver)."""

    workers: int = 1
    threads: int = 1
    executor: str = "local"
    judges: int = 0
    cells: int = 0
    references: int = 0  # folds of the classic reference computed as tasks beside the cells
    compute_s: float = 0.0  # seconds workers spent in judges and cells, summed over workers
    first_result_s: float | None = None  # from the start of the phase to the first judge or cell result
    worker_peak_rss_mb: float = 0.0
    _start: float = field(default_factory=time.perf_counter, repr=False)

    def started(self) -> None:
        self._start = time.perf_counter()

    def finished(self, kind: str, compute_s: float, peak_mb: float | None) -> None:
        if self.first_result_s is None:
            self.first_result_s = time.perf_counter() - self._start
        if kind == "judge":
            self.judges += 1
        elif kind == "reference":
            self.references += 1
        else:
            self.cells += 1
        self.compute_s += float(compute_s)
        if peak_mb:
            self.worker_peak_rss_mb = max(self.worker_peak_rss_mb, float(peak_mb))


@dataclass
class RunTimings:
    phases: dict[str, float] = field(default_factory=dict)  # phase -> wall seconds in the driver
    peaks: dict[str, float] = field(default_factory=dict)  # phase -> the driver's peak RSS at its end (MiB)
    cells: CellActivity = field(default_factory=CellActivity)
    counts: dict[str, int] = field(default_factory=dict)  # e.g. items, functionals computed vs cached
    _start: float = field(default_factory=time.perf_counter, repr=False)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``name`` (a phase entered twice adds up: the cross
        corpus's features are part of ``features``)."""
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r} (one of {', '.join(PHASES)})")
        start = time.perf_counter()
        if name == "cells":
            self.cells.started()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start
            self.peaks[name] = peak_rss_mb()  # the first phase whose value jumps is where memory went

    @property
    def total_s(self) -> float:
        return time.perf_counter() - self._start

    def to_dict(self) -> dict:
        cells = self.cells
        busy = None
        wall = self.phases.get("cells")
        if wall and cells.compute_s:
            busy = cells.compute_s / (wall * cells.workers)
        ordered = {name: round(self.phases[name], 3) for name in PHASES if name in self.phases}
        return {
            "total_s": round(self.total_s, 3),
            "phases_s": ordered,
            "other_s": round(max(0.0, self.total_s - sum(self.phases.values())), 3),
            "cells": {"executor": cells.executor, "workers": cells.workers, "threads_per_worker": cells.threads,
                      "judges_computed": cells.judges, "cells_computed": cells.cells,
                      "reference_folds_computed": cells.references,
                      "compute_s": round(cells.compute_s, 3),
                      "first_result_s": None if cells.first_result_s is None else round(cells.first_result_s, 3),
                      "worker_utilisation": None if busy is None else round(busy, 3)},
            "peak_rss_mb": {"driver": round(peak_rss_mb(), 1),
                            "worker": round(cells.worker_peak_rss_mb, 1) or None,
                            "driver_after_phase": {name: round(self.peaks[name], 1) for name in ordered}},
            "counts": dict(self.counts),
            "note": "wall seconds of each phase in the driver (they add up to total_s with other_s); "
                    "cells.compute_s sums the seconds workers spent computing, in parallel",
        }

    def line(self) -> str:
        """``timings: scan 0.4 s | features 12.0 s | cells 300.1 s (2 workers 93 % busy, first result 20 s) | ...``"""
        record = self.to_dict()
        parts = []
        for name, seconds in record["phases_s"].items():
            text = f"{name} {seconds:.1f} s"
            if name == "cells" and record["cells"]["worker_utilisation"] is not None:
                cells = record["cells"]
                text += (f" ({cells['workers']} worker(s) {100 * cells['worker_utilisation']:.0f} % busy, "
                         f"first result {cells['first_result_s']:.0f} s)")
            parts.append(text)
        peak = record["peak_rss_mb"]
        memory = f"peak RSS driver {peak['driver']:.0f} MiB" + (
            f", worker {peak['worker']:.0f} MiB" if peak["worker"] else "")
        return f"timings: {' | '.join(parts)} | total {record['total_s']:.1f} s; {memory}"

    def write(self, run_dir: Path) -> Path:
        from .. import storage

        return storage.write_json(Path(run_dir) / TIMINGS_FILE, self.to_dict())

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: ``time_<phase>_s``, ``time_total_s``, ``peak_rss_driver_mb``, ..."""
        record = self.to_dict()
        values = {f"time_{name}_s": seconds for name, seconds in record["phases_s"].items()}
        values["time_total_s"] = record["total_s"]
        values["cells_compute_s"] = record["cells"]["compute_s"]
        if record["cells"]["worker_utilisation"] is not None:
            values["cells_worker_utilisation"] = record["cells"]["worker_utilisation"]
        values["peak_rss_driver_mb"] = record["peak_rss_mb"]["driver"]
        if record["peak_rss_mb"]["worker"]:
            values["peak_rss_worker_mb"] = record["peak_rss_mb"]["worker"]
        return {key: float(value) for key, value in values.items()}
