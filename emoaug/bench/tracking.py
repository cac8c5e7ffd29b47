"""MLflow tracking. Results are always written locally first; tracking failures never lose them."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .arms import MAIN

log = logging.getLogger("emoaug")

EXPERIMENT = "emoaug"
MAX_PARAM_LENGTH = 500  # MLflow caps values; long ones (lists of ids) are in the config.json artifact


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
    """The paired comparison with ``none`` of this (generator, arm): ``ua_diff_vs_none``, its CI and p."""
    if comparisons.empty or "generator" not in comparisons:
        return {}
    rows = comparisons[(comparisons["generator"] == generator) & (comparisons["arm"] == arm)]
    values = {}
    for row in rows.to_dict("records"):
        metric = row.get("metric", "ua")
        for column, name in (("mean_diff", "diff_vs_none"), ("ci_low", "diff_ci_low"),
                             ("ci_high", "diff_ci_high"), ("p_value", "p_vs_none"), ("p_holm", "p_holm_vs_none")):
            if column in row and pd.notna(row[column]):
                values[metric_key(f"{metric}_{name}")] = float(row[column])
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
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
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
    id. A re-run of the same command (same run folder and config) updates its runs instead of adding runs."""
    _quiet_mlflow()
    import mlflow
    from mlflow.tracking import MlflowClient

    config = result.config
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = _experiment_id(mlflow, tracking_uri, out_dir)
    client = MlflowClient(tracking_uri)
    identity = {"emoaug.run_dir": str(Path(run_dir).resolve()), "emoaug.fingerprint": config.fingerprint()}
    tags = {**identity, "corpus": config.corpus, "profile": config.profile, "split": config.split,
            "protocols": ",".join(config.protocols), "test_corpus": config.test_corpus or "",
            "generators": ",".join(config.generators), "labels": ",".join(result.labels)}
    parent_id = _find_run(client, experiment_id, {**identity, "emoaug.level": "benchmark"})
    with mlflow.start_run(run_id=parent_id, experiment_id=None if parent_id else experiment_id,
                          run_name=Path(run_dir).name) as parent:
        mlflow.set_tags({**tags, "emoaug.level": "benchmark"})
        if parent_id is None:
            mlflow.log_params(flatten("", config.to_dict()))
        for path in (Path(run_dir) / name for name in RUN_ARTIFACTS):
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            elif path.exists():
                mlflow.log_artifact(str(path))
        for generator, arm in result.summary[["generator", "arm"]].drop_duplicates().itertuples(index=False):
            _log_child(mlflow, client, experiment_id, parent.info.run_id, tags, result, generator, arm)
        return parent.info.run_id


def _log_child(mlflow, client, experiment_id: str, parent_id: str, tags: dict, result, generator: str,
               arm: str) -> None:
    config = result.config
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
                      "classifier": config.classifier.arch if config.classifier else "",
                      **{f"gen.{k}": v for k, v in flatten("", config.generator_configs.get(generator, {})).items()}}
            mlflow.log_params(params)
        values = arm_metrics(result.summary, generator, arm)
        values.update(paired_metrics(result.comparisons, generator, arm))
        if arm == MAIN:
            values.update(generator_quality(result.generators, generator))
        mlflow.log_metrics(values)


RUN_ARTIFACTS = ("report.html", "tables", "figures", "confusion", "audio", "config.json", "split.json",
                 "split_audit.json", "skipped.json", "leakage_audit.json", "cells.json", "summary.csv",
                 "fold_metrics.csv", "comparisons.csv", "predictions.csv", "generators.csv", "quality.csv",
                 "timings.csv")
