"""The Python API: ``emoaug.run(...)`` and ``emoaug.load_run(path)`` (the command line is a thin layer over it).

::

    import emoaug

    result = emoaug.run(corpus="emodb", data_root="data/emodb/wav", gen="none,specaugment", seeds=3)
    result.generators          # one row per generator: UA, paired ΔUA vs none with CI, MAD, FD, cost
    result.comparisons         # every arm paired with none
    again = emoaug.load_run(result.run_dir)   # the same frames, read from the run folder

``run`` takes the command line's options by their Python names (``--gen-opt`` -> ``gen_opt``, lists where the
command line takes commas) and/or an experiment file (``config="exp.toml"``, overridden by the keyword
options). It returns :class:`emoaug.bench.results.RunResult`: pandas frames of the summary, comparisons,
predictions, fold metrics, quality, the classic reference and the synthetic-ratio curve, with the run folder,
the resolved config and the MLflow run id.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import EmoaugError

log = logging.getLogger("emoaug")


def run(config: str | Path | None = None, *, progress: bool = False, mlflow: bool = True,
        **options: Any) -> Any:
    """Run (or resume, or assemble from stored cells) one benchmark and return its
    :class:`~emoaug.bench.results.RunResult`. ``config``: an experiment file; ``mlflow=False`` writes local
    results only. Bad options raise :class:`~emoaug.errors.EmoaugError` with one line."""
    return run_resolved(resolve(config, options), progress=progress, mlflow=mlflow)


def load_run(path: str | Path) -> Any:
    """A finished run folder read back as the :class:`~emoaug.bench.results.RunResult` ``run`` returned
    (nothing is recomputed; an unfinished or damaged folder is one-line EmoaugError)."""
    from .bench.results import load_result

    return load_result(Path(path))


def resolve(config_file: str | Path | None, options: Mapping[str, Any]) -> Any:
    """The :class:`~emoaug.config.RunConfig` of an experiment file (if any) overridden by ``options``."""
    from .bench.resolve import resolve_run_config

    merged = dict(read_config_file(config_file)) if config_file is not None else {}
    given = dict(options)
    if "gen_opt" in given:  # the file's --gen-opt strings first, these after them (later ones win)
        given["gen_opt"] = [*merged.get("gen_opt", []), *given["gen_opt"]]
    merged.update(given)
    # the command line's environment defaults, so that a script and the command line run alike
    merged.setdefault("executor", os.environ.get("EMOAUG_EXECUTOR", "auto"))
    merged.setdefault("threads", int(os.environ.get("EMOAUG_THREADS") or 0))
    for key in ("gen", "protocol", "synthetic_ratio"):  # Python lists where the command line takes commas
        if isinstance(merged.get(key), (list, tuple)):
            merged[key] = ",".join(str(v) for v in merged[key])
    try:
        return resolve_run_config(**merged)
    except TypeError as err:  # an option name resolve_run_config does not take
        raise EmoaugError(f"emoaug.run: {err}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    from .run_options import run_option_schema
    from .experiments import read_experiment_file

    return read_experiment_file(path, run_option_schema())


def run_resolved(config: Any, *, progress: bool = False, mlflow: bool = True) -> Any:
    """Run ``config`` (a RunConfig), render its tables and report, log it to MLflow, mark the folder finished."""
    from .bench.results import mark_finished
    from .bench.runner import default_run_dir, run_benchmark
    from .bench.timings import RunTimings
    from .reports.run_report import render_run

    run_dir = default_run_dir(config)
    check_run_dir(run_dir)
    timings = RunTimings()
    result = run_benchmark(config, progress=progress, timings=timings)
    with timings.phase("rendering"):
        result.rendered = render_run(run_dir, result)
    timings.write(run_dir)  # before tracking, so that the run folder holds it even if MLflow fails
    if mlflow:
        with timings.phase("tracking"):
            result.mlflow_uri, result.mlflow_run_id = track(config, run_dir, result)
        timings.write(run_dir)
        if result.mlflow_run_id is not None:
            track_timings(result.mlflow_uri, result.mlflow_run_id, timings, run_dir)
    mark_finished(result.run_dir)  # the very last file: report and leaderboard count only marked runs
    result.timings_line = timings.line()
    return result


def check_run_dir(run_dir: Path) -> None:
    """A re-run writes into the run folder the same command wrote before: like --out itself (checked with the
    options), it must be a folder this process can write into, or the run would stop at its first result."""
    if run_dir.exists() and not (run_dir.is_dir() and os.access(run_dir, os.W_OK | os.X_OK)):
        raise EmoaugError(f"--out: cannot write into the run folder {run_dir}")


def track(config: Any, run_dir: Path, result: Any) -> tuple[str, str | None]:
    """Log to MLflow: a parent run for the benchmark run, a child per (generator, arm). Returns (the tracking
    URI, the parent's id or None). A failure is one warning line naming the store and the reason: the local
    results are complete already."""
    from .bench.tracking import default_tracking_uri, describe_failure, log_benchmark

    execution = config.execution
    uri = execution.tracking_uri or default_tracking_uri(execution.out_dir)
    try:
        run_id = log_benchmark(tracking_uri=uri, out_dir=Path(execution.out_dir), run_dir=run_dir, result=result)
    except Exception as err:  # noqa: BLE001 -- tracking is a copy: its failure must not lose local results
        log.warning("MLflow logging failed: %s; results are kept in %s", describe_failure(err, uri), run_dir)
        return uri, None
    return uri, run_id


def track_timings(uri: str, run_id: str, timings: Any, run_dir: Path) -> None:
    from .bench.timings import TIMINGS_FILE
    from .bench.tracking import describe_failure, log_timings

    try:
        log_timings(tracking_uri=uri, run_id=run_id, metrics=timings.metrics(), timings_file=run_dir / TIMINGS_FILE)
    except Exception as err:  # noqa: BLE001 -- as above: the timings are in the run folder already
        log.warning("MLflow logging of the timings failed: %s", describe_failure(err, uri))
