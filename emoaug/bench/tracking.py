"""MLflow tracking. Results are always written locally first; tracking failures never lose them."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
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


def summary_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """``<generator>.<metric>.<stat>`` for the main arm, ``<generator>.<arm>.<metric>.<stat>`` for the others."""
    values = {}
    for row in summary.itertuples(index=False):
        arm = getattr(row, "arm", MAIN)
        prefix = (row.generator,) if arm == MAIN else (row.generator, arm)
        for stat in ("pooled", "fold_mean", "fold_std"):
            value = getattr(row, stat)
            if pd.notna(value):
                values[metric_key(*prefix, row.metric, stat)] = float(value)
    return values


def _quiet_mlflow() -> None:
    """No telemetry, and no INFO chatter about database migrations in the middle of our output."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow  # noqa: F401  (mlflow sets its logger levels on import; override them afterwards)

    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def log_run(*, tracking_uri: str, out_dir: Path, run_name: str, params: Mapping[str, Any],
            metrics: Mapping[str, float], artifacts: Iterable[Path], tags: Mapping[str, str]) -> str:
    """Log one benchmark run; returns the MLflow run id."""
    _quiet_mlflow()
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        location = None
        if tracking_uri.startswith("sqlite:"):
            location = (Path(out_dir).resolve() / "mlartifacts").as_uri()
        experiment_id = mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags(dict(tags))
        mlflow.log_params(flatten("", dict(params)))
        mlflow.log_metrics(dict(metrics))
        for path in artifacts:
            path = Path(path)
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            elif path.exists():
                mlflow.log_artifact(str(path))
        return run.info.run_id
