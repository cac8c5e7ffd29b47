"""MLflow tracking. Results are always written locally first; tracking failures never lose them."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import STORE_LOCK_WAIT_S, TRACKING_REQUEST_TIMEOUT_S
from .arms import MAIN

log = logging.getLogger("emoaug")

EXPERIMENT = "emoaug"
MAX_PARAM_LENGTH = 500  # MLflow caps values; long ones (lists of ids) are in the config.json artifact
# MLflow's loggers and those of the libraries it logs through (each name and every logger below it)
MLFLOW_LOGGERS = ("mlflow", "alembic", "sqlalchemy", "huey")


class TrackingStoreError(Exception):
    """A tracking store that cannot be used; the message is one line naming the store and the reason."""


def default_tracking_uri(out_dir: str | Path) -> str:
    # MLflow 3 refuses the old ./mlruns file store as a default; a sqlite file keeps runs local.
    return f"sqlite:///{Path(out_dir).resolve() / 'mlflow.db'}"


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested config -> flat ``a.b.c`` params with string values MLflow accepts."""
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return out
    text = str(value)
    return {prefix: text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."}


def metric_key(*parts: str) -> str:
    return ".".join("".join(c if c.isalnum() or c in "_-./ " else "_" for c in p) for p in parts)


def arm_metrics(summary: pd.DataFrame, generator: str, arm: str) -> dict[str, float]:
    """One child run's metrics under the same names for every generator and arm: ``ua`` (pooled),
    ``ua_fold_mean``, ``ua_fold_std``, ``wa``, ... so MLflow's run comparison lines them up."""
    rows = summary[(summary["generator"] == generator) & (summary["arm"] == arm)]
    values = {}
    for row in rows.itertuples(index=False):
        for stat, suffix in (("pooled", ""), ("fold_mean", "_fold_mean"), ("fold_std", "_fold_std")):
            value = getattr(row, stat)
            if pd.notna(value):
                values[metric_key(f"{row.metric}{suffix}")] = float(value)
    return values


def paired_metrics(comparisons: pd.DataFrame, generator: str, arm: str) -> dict[str, float]:
    """The paired comparison with ``none`` of this (generator, arm): ``ua_diff_vs_none``, its CI, p and minimum
    detectable effect ``ua_diff_mde`` (infinite where Wilcoxon cannot reach alpha; MLflow's SQL store keeps
    that as the largest float)."""
    if comparisons.empty or "generator" not in comparisons:
        return {}
    rows = comparisons[(comparisons["generator"] == generator) & (comparisons["arm"] == arm)]
    values = {}
    for row in rows.to_dict("records"):
        metric = row.get("metric", "ua")
        for column, name in (("mean_diff", "diff_vs_none"), ("ci_low", "diff_ci_low"),
                             ("ci_high", "diff_ci_high"), ("mde", "diff_mde"), ("p_value", "p_vs_none"),
                             ("p_holm", "p_holm_vs_none")):
            if column in row and pd.notna(row[column]):
                values[metric_key(f"{metric}_{name}")] = float(row[column])
    return values


def curve_metrics(curve: pd.DataFrame | None, generator: str, arm: str) -> dict[str, float]:
    """This (generator, arm)'s synthetic-ratio curve: ``ratio_<r>/ua_fold_mean``, ``ratio_<r>/ua_diff_vs_none``,
    its CI, minimum detectable effect and Holm-corrected p per ratio (a ratio is no MLflow step, so it is in the
    name)."""
    if curve is None or curve.empty:
        return {}
    rows = curve[(curve["generator"] == generator) & (curve["arm"] == arm)]
    values = {}
    for row in rows.to_dict("records"):
        for column, name in (("ua_fold_mean", "ua_fold_mean"), ("ua_paired_diff", "ua_diff_vs_none"),
                             ("ua_ci_low", "ua_diff_ci_low"), ("ua_ci_high", "ua_diff_ci_high"),
                             ("ua_mde", "ua_diff_mde"), ("ua_p_holm", "ua_p_holm_vs_none"),
                             ("n_synthetic_rows", "n_synthetic_rows")):
            if pd.notna(row.get(column)):  # ua_mde is absent from curves written before it existed
                values[metric_key(f"ratio_{row['synthetic_ratio']:g}/{name}")] = float(row[column])
    return values


def generator_quality(generators: pd.DataFrame, generator: str) -> dict[str, float]:
    """Generated-set quality and cost of one generator (MAD, FD, fit and sampling seconds, ...)."""
    if generators.empty:
        return {}
    row = generators[generators["generator"] == generator]
    if row.empty:
        return {}
    columns = ("mad", "fd", "fd_real", "judge_ua", "nn_ratio_emb", "copy_fraction_emb", "diversity_mel",
               "generator_fit_s", "generate_s", "classifier_s", "items_per_s")
    record = row.iloc[0]
    return {name: float(record[name]) for name in columns if name in record and pd.notna(record[name])}


def _quiet_mlflow() -> None:
    """No telemetry, and no INFO chatter about database migrations in the middle of our output."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # An unreachable tracking server must fail in seconds, not stall the end of a run for minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(TRACKING_REQUEST_TIMEOUT_S))
    import mlflow  # noqa: F401  (mlflow sets its logger levels on import; override them afterwards)

    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _experiment_id(mlflow, tracking_uri: str, out_dir: Path) -> str:
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:"):
        location = (Path(out_dir).resolve() / "mlartifacts").as_uri()
    return mlflow.create_experiment(EXPERIMENT, artifact_location=location)


def _find_run(client, experiment_id: str, tags: Mapping[str, str]) -> str | None:
    """The run carrying all ``tags`` (a re-run of the same command updates it instead of adding one)."""
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    found = client.search_runs([experiment_id], filter_string=query, max_results=1)
    return found[0].info.run_id if found else None


def log_benchmark(*, tracking_uri: str, out_dir: Path, run_dir: Path, result) -> str:
    """Log one benchmark run: a parent run (resolved config as params, the run folder as artifacts) and one
    child run per (generator, arm) with the same metric names (``ua``, ``wa``, ``macro_f1``, ... and their
    fold statistics), the generator's resolved config as params and tags to filter on. Returns the parent's
    id. A re-run of the same command (same run folder and config) updates its runs instead of adding runs.

    A local sqlite store is written under an inter-process lock and checked first (see :func:`sqlite_store`);
    any failure is raised for the caller to report in one line (:func:`describe_failure`), while MLflow's
    own logging of it is silenced."""
    _quiet_mlflow()
    db = sqlite_store_path(tracking_uri)
    with _mlflow_logging_silenced(), (sqlite_store(db) if db else contextlib.nullcontext()):
        return _log_benchmark(tracking_uri, Path(out_dir), Path(run_dir), result)


def _log_benchmark(tracking_uri: str, out_dir: Path, run_dir: Path, result) -> str:
    import mlflow
    from mlflow.tracking import MlflowClient

    config = result.experiment
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = _experiment_id(mlflow, tracking_uri, out_dir)
    client = MlflowClient(tracking_uri)
    identity = {"emoaug.run_dir": str(run_dir.resolve()), "emoaug.fingerprint": config.fingerprint()}
    tags = {**identity, "corpus": config.corpus, "profile": config.profile, "split": config.split,
            "protocols": ",".join(config.protocols), "test_corpus": config.test_corpus or "",
            "generators": ",".join(config.generators), "labels": ",".join(result.labels)}
    parent_id = _find_run(client, experiment_id, {**identity, "emoaug.level": "benchmark"})
    with mlflow.start_run(run_id=parent_id, experiment_id=None if parent_id else experiment_id,
                          run_name=run_dir.name) as parent:
        mlflow.set_tags({**tags, "emoaug.level": "benchmark"})
        if parent_id is None:
            mlflow.log_params({**flatten("", config.to_dict()),
                               **flatten("execution", result.config.execution.to_dict())})
        for path in (run_dir / name for name in RUN_ARTIFACTS):
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            elif path.exists():
                mlflow.log_artifact(str(path))
        mlflow.log_metrics(reference_metrics(getattr(result, "reference", None)))
        for generator, arm in result.summary[["generator", "arm"]].drop_duplicates().itertuples(index=False):
            _log_child(mlflow, client, experiment_id, parent.info.run_id, tags, result, generator, arm)
        return parent.info.run_id


def log_timings(*, tracking_uri: str, run_id: str, metrics: Mapping[str, float], timings_file: Path) -> None:
    """The run's phase timings on its parent run (``time_<phase>_s``, peaks) and ``timings.json`` as an
    artifact: logged after the rest, since the tracking phase itself is one of them."""
    _quiet_mlflow()
    db = sqlite_store_path(tracking_uri)
    with _mlflow_logging_silenced(), (sqlite_store(db) if db else contextlib.nullcontext()):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        stamp = int(time.time() * 1000)
        from mlflow.entities import Metric

        client.log_batch(run_id, metrics=[Metric(key, float(value), stamp, 0) for key, value in metrics.items()])
        client.log_artifact(run_id, str(timings_file))


def reference_metrics(reference) -> dict[str, float]:
    """The classic reference on the parent run: ``classic_ua``, ``classic_ua_fold_mean``, ... and
    ``classic_ua_diff_vs_none`` (classic minus none's network, paired by cell)."""
    if reference is None or reference.empty:
        return {}
    row = reference.iloc[0]
    names = [f"{m}{s}" for m in ("wa", "ua", "macro_f1", "weighted_f1") for s in ("", "_fold_mean", "_fold_std")]
    values = {f"classic_{name}": row.get(name) for name in names}
    values["classic_ua_diff_vs_none"] = row.get("ua_paired_diff")
    return {key: float(value) for key, value in values.items() if value is not None and pd.notna(value)}


# ---------------------------------------------------------------------------- the store: faults and races
def sqlite_store_path(tracking_uri: str) -> Path | None:
    """The database file of a local ``sqlite:///PATH`` tracking URI; None for a server, another database,
    an in-memory or a ``file:`` URI database."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url  # MLflow's own URL parser for these URIs
    from sqlalchemy.exc import ArgumentError

    try:
        database = make_url(tracking_uri).database
    except ArgumentError:
        return None  # MLflow reports the malformed URI itself
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


@contextlib.contextmanager
def sqlite_store(db: Path, wait_s: float = STORE_LOCK_WAIT_S) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` while logging into the sqlite store ``db``, after checking
    (under the lock) that the store can be written.

    Why a lock and not a retry: MLflow creates a fresh store in several steps (``create_all``, then alembic
    migrations that rewrite tables and stamp ``alembic_version``). Two processes interleaving them fail at any
    step ("table latest_metrics already exists", "duplicate column name", "Online migration expected to match
    one row") and can leave a half-migrated schema that fails every later run, which no retry repairs; the
    creation of the experiment and the re-run's lookup of its parent run race the same way. So every emoaug
    process holds one lock for its whole logging: the first creates the schema, the others wait (seconds)
    and then find it complete. ``flock`` is released by the kernel when the holder exits, even when killed, so
    the lock never goes stale; the lock file stays (removing it would let a third process lock a new inode).
    It does not exclude a non-emoaug process (``mlflow ui``) creating the schema at the same moment.
    """
    try:
        db.parent.mkdir(parents=True, exist_ok=True)  # as MLflow does for a sqlite URI
    except OSError as err:
        raise TrackingStoreError(f"cannot create the folder of the MLflow store {db} "
                                 f"({err.strerror or type(err).__name__})") from None
    with _exclusive_lock(Path(f"{db}.lock"), db, wait_s):
        check_sqlite_store(db)
        yield


@contextlib.contextmanager
def _exclusive_lock(lock: Path, db: Path, wait_s: float) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no flock; concurrent runs there can still race (as in MLflow itself)
        fcntl = None
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666) if fcntl else None
    except OSError:  # nothing can be created beside the store: check_sqlite_store reports why it is unusable
        fd = None
    if fd is None:
        yield
        return
    try:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingStoreError(f"the MLflow store {db} stayed locked by another process for "
                                             f"{wait_s:.0f} s ({lock})") from None
                if not told:
                    log.info("waiting for another run logging into the MLflow store %s", db)
                    told = True
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_sqlite_store(db: Path) -> None:
    """Raise :class:`TrackingStoreError` naming ``db`` when the sqlite store cannot be written (a read-only
    file, folder or file system; not a database). MLflow itself would retry opening it for about 100 s,
    logging each attempt, and then fail with a page of SQLAlchemy errors."""
    import sqlite3

    try:
        connection = sqlite3.connect(str(db), timeout=60)
        try:
            # A write that changes nothing: the header's user_version, which MLflow does not use. Unlike
            # BEGIN IMMEDIATE it writes a page, so it needs the journal beside the file: a read-only folder
            # with a writable database fails here too. (A new, empty file is what MLflow creates anyway.)
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            connection.execute(f"PRAGMA user_version = {version}")
            connection.commit()
        finally:
            connection.close()
    except sqlite3.Error as err:
        raise TrackingStoreError(f"cannot write the MLflow store {db} ({err})") from None


@contextlib.contextmanager
def _mlflow_logging_silenced() -> Iterator[None]:
    """MLflow, SQLAlchemy and alembic log a failing store at length before raising (a warning per retry, the
    SQL, the exception text); the caller reports the raised error in one line, so their loggers are silenced
    while we log. (A successful logging prints nothing through them.) Loggers below these names that have no
    level of their own follow them; those with one are set too; all are restored afterwards."""
    manager = logging.Logger.manager
    names = {*MLFLOW_LOGGERS, *(name for name, item in list(manager.loggerDict.items())
                                if isinstance(item, logging.Logger) and item.level != logging.NOTSET
                                and name.split(".", 1)[0] in MLFLOW_LOGGERS)}
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def describe_failure(err: BaseException, tracking_uri: str) -> str:
    """One line for a failed :func:`log_benchmark`: the store and the reason. Underneath MLflow's and
    SQLAlchemy's wrappers (whose first line may be an autoflush hint) the reason is the innermost sqlite or
    OS error, e.g. "attempt to write a readonly database" or "[Errno 111] Connection refused"."""
    if isinstance(err, TrackingStoreError):
        return str(err)
    import sqlite3

    reason, seen, current = err, set(), err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (sqlite3.Error, OSError)):
            reason = current
        current = current.__cause__ or current.__context__
    text = str(reason).strip().splitlines()
    line = f"store {tracking_uri} ({type(reason).__name__}" + (f": {text[0]})" if text else ")")
    if tracking_uri.startswith(("http://", "https://")) and isinstance(reason, OSError):
        timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", TRACKING_REQUEST_TIMEOUT_S)  # _quiet_mlflow's
        line += (f"; no MLflow server answered within {timeout} s: check that one runs there "
                 "(mlflow server --host HOST --port PORT) or pass --no-mlflow")
    return line


def _log_child(mlflow, client, experiment_id: str, parent_id: str, tags: dict, result, generator: str,
               arm: str) -> None:
    config = result.experiment
    child_tags = {**tags, "emoaug.level": "arm", "generator": generator, "arm": arm,
                  "mlflow.parentRunId": parent_id}
    child_id = _find_run(client, experiment_id, {"mlflow.parentRunId": parent_id, "generator": generator,
                                                 "arm": arm})
    with mlflow.start_run(run_id=child_id, experiment_id=None if child_id else experiment_id,
                          run_name=f"{generator} / {arm}", nested=True):
        mlflow.set_tags(child_tags)
        if child_id is None:
            params = {"generator": generator, "arm": arm, "corpus": config.corpus, "profile": config.profile,
                      "split": config.split, "synthetic_ratio": config.synthetic_ratio,
                      "curve_ratios": ",".join(f"{r:g}" for r in config.curve_ratios),
                      "classifier": config.classifier.arch if config.classifier else "",
                      **{f"gen.{k}": v for k, v in flatten("", config.generator_configs.get(generator, {})).items()}}
            mlflow.log_params(params)
        values = arm_metrics(result.summary, generator, arm)
        values.update(paired_metrics(result.comparisons, generator, arm))
        values.update(curve_metrics(getattr(result, "curve", None), generator, arm))
        if arm == MAIN:
            values.update(generator_quality(result.generators, generator))
        mlflow.log_metrics(values)


RUN_ARTIFACTS = ("report.html", "tables", "figures", "confusion", "audio", "config.json", "experiment.toml",
                 "split.json", "split_audit.json", "skipped.json", "leakage_audit.json", "cells.json", "summary.csv",
                 "fold_metrics.csv", "comparisons.csv", "predictions.csv", "generators.csv", "quality.csv",
                 "timings.csv", "reference.csv", "reference_folds.json", "reference_summary.csv",
                 "reference_predictions.csv", "ratio_curve.csv", "curve_fold_metrics.csv")
