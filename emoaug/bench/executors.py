"""Backends that compute a run's judges and cells: in this process, in a local process pool, or on Ray.

The driver builds the list of work (:class:`Jobs`: judges and cells not yet in the store), hands it to an
executor and receives every result through ``on_judge``/``on_cell`` in the driver process, which alone
writes the store, the run folder and MLflow. A cell needs the judge of its (fold, seed): executors run
that judge first and pass its state along (on Ray as a task dependency). How many workers and threads:
:mod:`emoaug.bench.parallelism`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace

from .. import interrupts
from ..config import RAY_CONNECT_TIMEOUT_S
from ..errors import EmoaugError
from ..workers import worker_pool
from .cells import CellResult, JudgeResult, run_cell, run_judge
from .parallelism import Parallelism
from .plan import CellSpec, JudgeSpec, Workload, materialise
from .reference import ReferenceInputs, ReferenceResult, ReferenceSpec, run_reference

log = logging.getLogger("emoaug")

@dataclass
class Jobs:
    """What is left to compute, and where results go (both callbacks run in the driver process)."""

    workload: Workload
    judges: list[JudgeSpec]  # to compute
    cells: list[CellSpec]  # to compute, in assembly order
    known_judges: dict[str, JudgeResult]  # already stored, by key
    checkpoint: Callable[[CellSpec], dict | None]
    on_judge: Callable[[JudgeResult], None]
    on_cell: Callable[[CellResult], None]
    # folds of the classic reference row to compute beside the cells (each an independent task)
    references: list[ReferenceSpec] = field(default_factory=list)
    reference_inputs: Callable[[ReferenceSpec], ReferenceInputs] | None = None
    on_reference: Callable[[ReferenceResult], None] | None = None

    def cells_by_judge(self, cells: list[CellSpec]) -> dict[str, list[CellSpec]]:
        grouped: dict[str, list[CellSpec]] = {}
        for spec in cells:
            grouped.setdefault(spec.judge_key, []).append(spec)
        return grouped

    def first_and_waiting(self) -> tuple[list[CellSpec], dict[str, list[CellSpec]]]:
        """(cells that can start, cell key -> cells that start after it). Cells sharing a generator checkpoint
        (one trained generator, several synthetic ratios) wait for the first of them, which trains it and whose
        weights are stored before the others start: no generator is trained twice."""
        first, waiting, trainer = [], {}, {}
        for spec in self.cells:
            leader = trainer.get(spec.checkpoint_key)
            if leader is None:
                first.append(spec)
                if spec.checkpoint_key is not None:
                    trainer[spec.checkpoint_key] = spec.key
            else:
                waiting.setdefault(leader, []).append(spec)
        return first, waiting


def set_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ local
class LocalExecutor:
    """In this process, one cell after another (in the given order, so a cell that shares a generator
    checkpoint with an earlier one finds it stored)."""

    def __init__(self, parallelism: Parallelism):
        self.threads = parallelism.threads

    def execute(self, jobs: Jobs) -> None:
        set_threads(self.threads)
        judges = dict(jobs.known_judges)
        specs = {j.key: j for j in jobs.judges}
        for cell in jobs.cells:
            if cell.judge_key not in judges:
                judges[cell.judge_key] = run_judge(specs.pop(cell.judge_key), jobs.workload)
                jobs.on_judge(judges[cell.judge_key])
            jobs.on_cell(run_cell(cell, jobs.workload, judges[cell.judge_key], jobs.checkpoint(cell)))
        for spec in jobs.references:  # after the cells, so that an error here loses no cell
            jobs.on_reference(run_reference(jobs.reference_inputs(spec), self.threads))


# ------------------------------------------------------------------------------------------------ process
_WORKLOAD: Workload | None = None


def _init_worker(workload: Workload, threads: int) -> None:
    global _WORKLOAD
    _WORKLOAD = workload
    set_threads(threads)
    logging.getLogger("emoaug").setLevel(logging.WARNING)


def _worker_judge(spec: JudgeSpec) -> JudgeResult:
    return run_judge(spec, _WORKLOAD)


def _worker_cell(spec: CellSpec, judge: JudgeResult, checkpoint: dict | None) -> CellResult:
    return run_cell(spec, _WORKLOAD, judge, checkpoint)


class ProcessExecutor:
    """A local pool of ``jobs`` worker processes (spawned: torch and fork do not mix), each holding the
    workload once; judges first, each judge's cells as soon as it is done, the reference folds last."""

    def __init__(self, parallelism: Parallelism):
        self.jobs, self.threads = parallelism.jobs, parallelism.threads

    def execute(self, jobs: Jobs) -> None:
        first, after_cell = jobs.first_and_waiting()
        waiting = jobs.cells_by_judge(first)
        judges = dict(jobs.known_judges)
        # workers ignore Ctrl-C and die with the driver; an exception here (an interrupt) stops them at once
        with worker_pool(self.jobs, _init_worker, (jobs.workload, self.threads)) as pool:
            running: dict[Future, str] = {}  # future -> "judge" or "cell"

            def submit_cells(specs: list[CellSpec]) -> None:
                for spec in specs:
                    future = pool.submit(_worker_cell, spec, judges[spec.judge_key], jobs.checkpoint(spec))
                    running[future] = "cell"

            references = list(jobs.references)

            def queue_references_after_the_last_judge() -> None:
                # queued behind every cell the judges released: short tasks that keep a worker busy while the
                # other finishes the last cell, instead of taking a worker before the cells
                if references and "judge" not in running.values():
                    for spec in references:
                        running[pool.submit(run_reference, jobs.reference_inputs(spec), self.threads)] = "reference"
                    references.clear()

            for spec in jobs.judges:
                running[pool.submit(_worker_judge, spec)] = "judge"
            for key in list(waiting):
                if key in judges:
                    submit_cells(waiting.pop(key))
            queue_references_after_the_last_judge()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: 0 if running[f] == "judge" else 1):
                    kind = running.pop(future)
                    result = future.result()
                    if kind == "judge":
                        judges[result.key] = result
                        jobs.on_judge(result)
                        submit_cells(waiting.pop(result.key, []))
                    elif kind == "reference":
                        jobs.on_reference(result)
                    else:
                        jobs.on_cell(result)
                        submit_cells(after_cell.pop(result.key, []))
                queue_references_after_the_last_judge()


# ------------------------------------------------------------------------------------------------ ray
def _ray_judge(workload: Workload, spec: JudgeSpec, threads: int) -> JudgeResult:
    set_threads(threads)
    return run_judge(spec, workload)


def _ray_cell(workload: Workload, spec: CellSpec, judge: JudgeResult, checkpoint: dict | None,
              threads: int) -> CellResult:
    set_threads(threads)
    return run_cell(spec, workload, judge, checkpoint)


def import_ray():
    try:
        import ray
    except ImportError:
        raise EmoaugError("--executor ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.9')") from None
    return ray


def check_ray_address(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Raise a one-line :class:`EmoaugError` unless something accepts a TCP connection at ``address``
    (``host:port`` or ``ray://host:port``) within ``timeout_s``. ``ray.init`` itself retries an address where
    nothing listens for ever, logging only "Failed to connect to GCS". Addresses without a port ("auto",
    "local") are left to Ray, which answers those at once."""
    import socket

    host, port = _host_port(address)
    if port is None:
        return
    if not 0 < port < 65536:
        raise EmoaugError(f"--ray-address {address}: {port} is not a TCP port (1-65535)")
    hint = (f"start one with `ray start --head --port {port}` or check the address" if _is_local(host)
            else "check the address, and that the cluster's port is reachable from here")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except socket.timeout:
        raise EmoaugError(f"--ray-address {address}: no Ray cluster answered within {timeout_s:g} s; "
                          f"{hint}") from None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise EmoaugError(f"--ray-address {address}: no Ray cluster answered ({reason}); {hint}") from None


def _host_port(address: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port`` or ``ray://host:port`` -> (host, port); port None when there is none."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return rest, None
    return host.strip("[]") or "127.0.0.1", int(port)


def _is_local(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class RayExecutor:
    """Ray tasks: on a local Ray instance (``jobs`` CPUs, loopback only) or the cluster at ``address``.
    Each judge is a task; the cells of its (fold, seed) take its result as a dependency."""

    def __init__(self, parallelism: Parallelism, address: str | None = None, device: str = "cpu"):
        self.jobs, self.threads, self.address = parallelism.jobs, parallelism.threads, address
        self.gpus_per_task = 1 if device.startswith("cuda") else 0

    def connect(self):
        ray = import_ray()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry from a benchmark run
        if ray.is_initialized():
            return ray, False
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                   "configure_logging": True}
        if self.address:
            check_ray_address(self.address)
            try:
                ray.init(address=self.address, **options)
            except ConnectionError as err:  # e.g. "auto" with no cluster started on this machine
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise EmoaugError(f"--ray-address {self.address}: {reason}") from None
        else:
            ray.init(num_cpus=self.jobs, _node_ip_address="127.0.0.1", **options)
        interrupts.reclaim()  # ray.init replaced our SIGTERM handler: SIGTERM must stop the run as Ctrl-C does
        return ray, True

    def execute(self, jobs: Jobs) -> None:
        ray, started = self.connect()
        try:
            self._execute(ray, jobs)
        finally:
            if started:
                ray.shutdown()

    def _execute(self, ray, jobs: Jobs) -> None:
        judge_task = ray.remote(num_cpus=self.threads, num_gpus=self.gpus_per_task)(_ray_judge)
        cell_task = ray.remote(num_cpus=self.threads, num_gpus=self.gpus_per_task)(_ray_cell)
        # a cluster's workers cannot read this machine's feature cache: they get the arrays through the object store
        remote = self.address is not None
        workload = ray.put(jobs.workload.in_memory() if remote else jobs.workload)
        judge_refs = {key: ray.put(result) for key, result in jobs.known_judges.items()}
        pending = {}
        for spec in jobs.judges:
            ref = judge_task.remote(workload, spec, self.threads)
            judge_refs[spec.key] = ref
            pending[ref] = "judge"
        reference_task = ray.remote(num_cpus=self.threads)(run_reference)
        for spec in jobs.references:
            inputs = jobs.reference_inputs(spec)
            if remote:
                inputs = replace(inputs, functionals=materialise(inputs.functionals))
            pending[reference_task.remote(inputs, self.threads)] = "reference"
        first, after_cell = jobs.first_and_waiting()

        def submit(specs: list[CellSpec]) -> None:
            for spec in specs:
                ref = cell_task.remote(workload, spec, judge_refs[spec.judge_key], jobs.checkpoint(spec),
                                       self.threads)
                pending[ref] = "cell"

        submit(first)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    kind = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as err:  # re-raise the task's own error, not Ray's wrapper
                        raise (err.cause if isinstance(err.cause, Exception) else err) from None
                    if kind == "judge":
                        jobs.on_judge(result)
                    elif kind == "reference":
                        jobs.on_reference(result)
                    else:
                        jobs.on_cell(result)
                        submit(after_cell.pop(result.key, []))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise


def make_executor(parallelism: Parallelism, *, ray_address: str | None = None, device: str = "cpu"):
    if parallelism.executor == "process":
        return ProcessExecutor(parallelism)
    if parallelism.executor == "ray":
        return RayExecutor(parallelism, ray_address, device)
    return LocalExecutor(parallelism)
