"""A run's results: tidy frames assembled from its cells, written to and read back from the run folder.

``report`` re-renders from these files alone (:func:`load_result`); nothing here trains or predicts.

A run folder is finished when the CLI wrote ``finished.json`` (:func:`mark_finished`) as its very last file; it
records the size and SHA-256 of the result files ``report`` and ``leaderboard`` read, which
:func:`unfinished_reason` checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import metrics
from .. import storage as io
from ..config import Experiment, RunConfig
from ..errors import EmoaugError
from .aggregate import BASELINE, arm_comparisons, fold_level_metrics, generator_summary
from .arms import ARMS, MAIN
from .curve import curve_fold_metrics, ratio_curve


@dataclass
class RunResult:
    run_dir: Path
    config: RunConfig
    labels: tuple[str, ...]
    predictions: pd.DataFrame  # one row per (generator, arm, seed, fold, test item)
    fold_metrics: pd.DataFrame  # one row per (generator, arm, seed, fold, metric)
    summary: pd.DataFrame  # one row per (generator, arm, metric): pooled, fold_mean, fold_std
    confusions: dict[str, pd.DataFrame]  # generator -> row-normalised percent of the main arm
    quality: pd.DataFrame  # one row per (generator, seed, fold, emotion, measure)
    timings: pd.DataFrame  # one row per (generator, seed, fold)
    generators: pd.DataFrame  # one row per generator: metrics, quality, cost (emoaug.bench.aggregate)
    arm_confusions: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)  # (generator, arm), not main
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)  # paired vs none (emoaug.bench.aggregate)
    # the classic real-only reference (empty with --reference off): its summary rows (as ``summary``) and one
    # row as in ``generators`` (its metrics and the paired comparison with none)
    reference_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    reference: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the synthetic-ratio curve (empty without one): one row per (generator, arm, ratio), emoaug.bench.curve
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)
    # set by emoaug.run (not stored in the run folder): the tables as printed, MLflow's store and run id
    rendered: str = ""
    mlflow_uri: str | None = None
    mlflow_run_id: str | None = None
    timings_line: str = ""

    @property
    def experiment(self) -> Experiment:
        """What the results are of (renderers read this; the execution only says where it ran)."""
        return self.config.experiment


def assemble_results(run_dir: Path, config: RunConfig, cells: list, labels: tuple[str, ...],
                     reference: pd.DataFrame | None = None, curve_cells: list | None = None) -> RunResult:
    """Turn cells (fresh or stored), the reference's predictions and the synthetic-ratio curve's other cells
    (``curve_cells``: (ratio, cell) pairs) into tidy metric tables and write them into the run folder."""
    predictions = pd.concat([c.predictions for c in cells], ignore_index=True)
    quality_parts = [c.quality for c in cells if not c.quality.empty]
    quality = pd.concat(quality_parts, ignore_index=True) if quality_parts else pd.DataFrame(
        columns=["generator", "seed", "fold", "emotion", "measure", "value"])
    timings = pd.DataFrame([{"generator": c.meta["generator"], "seed": c.meta["seed"], "fold": c.meta["fold"],
                             **{f"{k}_s": v for k, v in c.meta["seconds"].items()},
                             "n_synthetic_rows": c.meta["n_synthetic_rows"]} for c in cells])
    fold_metrics = fold_level_metrics(predictions, labels)
    summary = metrics.summarise(predictions, labels, by=("generator", "arm"))
    all_confusions = {key: metrics.confusion_percent(p["y_true"], p["y_pred"], labels)
                      for key, p in predictions.groupby(["generator", "arm"], sort=False)}
    confusions = {g: table for (g, arm), table in all_confusions.items() if arm == MAIN}
    arm_confusions = {key: table for key, table in all_confusions.items() if key[1] != MAIN}
    run = Path(run_dir)
    io.write_csv(run / "predictions.csv", predictions)
    io.write_csv(run / "fold_metrics.csv", fold_metrics)
    io.write_csv(run / "summary.csv", summary)
    io.write_csv(run / "quality.csv", quality)
    io.write_csv(run / "timings.csv", timings)
    generators = generator_summary(summary[summary["arm"] == MAIN], quality, timings,
                                   fold_metrics[fold_metrics["arm"] == MAIN])
    io.write_csv(run / "generators.csv", generators)
    comparisons = arm_comparisons(fold_metrics)
    io.write_csv(run / "comparisons.csv", comparisons)
    for generator, table in confusions.items():
        io.write_csv(run / "confusion" / f"{io.safe_name(generator)}.csv", table.reset_index(names="true"))
    for (generator, arm), table in arm_confusions.items():
        io.write_csv(run / "confusion" / arm / f"{io.safe_name(generator)}.csv", table.reset_index(names="true"))
    reference_summary, reference_row = reference_results(run, reference, labels, summary, fold_metrics)
    curve = curve_results(run, config.experiment, fold_metrics, timings, curve_cells, labels)
    return RunResult(run, config, labels, predictions, fold_metrics, summary, confusions, quality, timings,
                     generators, arm_confusions, comparisons, reference_summary, reference_row, curve)


def curve_results(run: Path, experiment: Experiment, fold_metrics: pd.DataFrame, timings: pd.DataFrame,
                  curve_cells: list | None, labels: tuple[str, ...]) -> pd.DataFrame:
    """The synthetic-ratio curve (``ratio_curve.csv``, its points in ``curve_fold_metrics.csv``); empty
    without ``--synthetic-ratio`` giving several ratios."""
    for stale in ("ratio_curve.csv", "curve_fold_metrics.csv"):  # from an earlier run into this folder
        (run / stale).unlink(missing_ok=True)
    if not experiment.curve_ratios:
        return pd.DataFrame()
    points = curve_fold_metrics(fold_metrics, timings, experiment.synthetic_ratio, curve_cells or [], labels)
    curve = ratio_curve(points)
    io.write_csv(run / "curve_fold_metrics.csv", points)
    io.write_csv(run / "ratio_curve.csv", curve)
    return curve


def reference_results(run: Path, reference: pd.DataFrame | None, labels: tuple[str, ...], summary: pd.DataFrame,
                      fold_metrics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the reference's summary rows, its generators-style row paired with none's real-only classifier)."""
    if reference is None or reference.empty:
        return pd.DataFrame(), pd.DataFrame()
    reference_summary = metrics.summarise(reference, labels, by=("generator", "arm"))
    is_none_main = (summary["generator"] == BASELINE) & (summary["arm"] == MAIN)
    none_folds = fold_metrics[(fold_metrics["generator"] == BASELINE) & (fold_metrics["arm"] == MAIN)]
    both = generator_summary(pd.concat([summary[is_none_main], reference_summary], ignore_index=True),
                             pd.DataFrame(columns=["generator", "emotion", "measure", "value"]),
                             pd.DataFrame(columns=["generator", "generator_fit_s", "generate_s", "classifier_s",
                                                   "n_synthetic_rows"]),
                             pd.concat([none_folds, fold_level_metrics(reference, labels)], ignore_index=True))
    row = both[both["generator"] != BASELINE].reset_index(drop=True)
    io.write_csv(run / "reference_predictions.csv", reference)
    io.write_csv(run / "reference_summary.csv", reference_summary)
    io.write_csv(run / "reference.csv", row)
    return reference_summary, row


def run_folders(out: Path) -> list[Path]:
    """``out`` itself when it is a run folder (it holds ``config.json``), else its subfolders that are (sorted)."""
    out = Path(out)
    if (out / "config.json").is_file():
        return [out]
    return sorted(p for p in out.iterdir() if (p / "config.json").is_file())


STORED_RESULTS = ("predictions.csv", "fold_metrics.csv", "summary.csv", "quality.csv", "timings.csv", "generators.csv")
FINISHED = "finished.json"
#: what ``report`` and ``leaderboard`` read, recorded in finished.json when present (plus confusion/**.csv)
RECORDED = ("config.json", "experiment.toml", "manifest.csv", *STORED_RESULTS, "comparisons.csv",
            "reference_summary.csv", "reference.csv", "ratio_curve.csv")


def mark_finished(run_dir: Path) -> Path:
    """Write ``finished.json`` -- the last file of a run -- with the size and SHA-256 of every result file."""
    run_dir = Path(run_dir)
    names = [name for name in RECORDED if (run_dir / name).is_file()]
    names += sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "confusion").rglob("*.csv"))
    return io.write_json(run_dir / FINISHED, {"files": {name: io.file_record(run_dir / name) for name in names}})


def unfinished_reason(run_dir: Path, required: tuple[str, ...]) -> str | None:
    """Why ``run_dir`` is not a finished, intact run folder (one phrase), or None.

    Missing ``required`` files make it unfinished. With ``finished.json``, every file it records must be
    unchanged. Folders written before emoaug wrote that marker count as finished when their ``report.html``
    (then the last file of a run) is no older than their results: so a run that stopped while rendering
    (e.g. a full disk) is left out, and a run re-rendered by ``report`` still counts."""
    run_dir = Path(run_dir)
    missing = [name for name in required if not (run_dir / name).is_file()]
    if missing:
        return f"unfinished ({', '.join(missing)} missing)"
    marker = run_dir / FINISHED
    if marker.is_file():
        try:
            records = list(io.read_json(marker)["files"].items())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            return f"damaged ({FINISHED} is unreadable: {type(err).__name__})"
        for name, record in records:
            if Path(name).is_absolute() or ".." in Path(name).parts:
                return f"damaged ({FINISHED} names {name!r}, outside the run folder)"
            problem = io.record_mismatch(run_dir / name, record)
            if problem:
                return f"damaged ({problem}, since the run finished)"
        return None
    report = run_dir / "report.html"
    results = [run_dir / name for name in RECORDED if (run_dir / name).is_file()]
    if report.is_file() and report.stat().st_mtime >= max(p.stat().st_mtime for p in results):
        return None
    return f"unfinished (no {FINISHED}: the run stopped before its end)"


#: columns a run's result files must hold as numbers (an edited or damaged file is refused, not rendered)
NUMERIC = {"predictions.csv": ("seed", "fold"), "fold_metrics.csv": ("seed", "fold", "value"),
           "summary.csv": ("pooled", "fold_mean", "fold_std"), "quality.csv": ("seed", "fold", "value"),
           "timings.csv": ("seed", "fold"), "generators.csv": ("ua", "wa", "ua_fold_mean", "ua_paired_diff")}


def check_values(run_dir: Path, frames: dict[str, pd.DataFrame], labels: tuple[str, ...]) -> None:
    """One clear error when a stored result holds what the run cannot have written: a non-numeric value in a
    numeric column, or a true or predicted emotion outside the run's label set."""
    for name, frame in frames.items():
        wanted = [c for c in NUMERIC.get(name, ()) if c in frame.columns]
        if name == "predictions.csv":
            wanted += [c for c in frame.columns if c.startswith("prob_")]
        for column in wanted:
            where = first_non_numeric(frame[column])
            if where is not None:
                line, value = where
                raise EmoaugError(f"{run_dir}: {name} holds a non-numeric value in column {column}, line {line} "
                                  f"({value!r}; edited or damaged); run the benchmark again to rewrite it")
    predictions = frames["predictions.csv"]
    for column in ("y_true", "y_pred"):
        if column not in predictions.columns:
            raise EmoaugError(f"{run_dir}: predictions.csv has no {column} column; run the benchmark again")
        values = predictions[column]
        unknown = sorted({str(v) for v in values.dropna()} - set(labels)) + (["(empty)"] if values.isna().any()
                                                                              else [])
        if unknown:
            raise EmoaugError(f"{run_dir}: predictions.csv holds {column} values outside the run's labels "
                              f"({', '.join(unknown[:5])}); edited or damaged, run the benchmark again")


def first_non_numeric(values: pd.Series) -> tuple[int, str] | None:
    """(line in the CSV file, the text) of the first value that is not a number (blank cells are missing
    values, not errors), or None."""
    if pd.api.types.is_numeric_dtype(values):
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna()
    if not bad.any():
        return None
    row = int(bad.to_numpy().nonzero()[0][0])
    return row + 2, str(values.iloc[row])  # line 1 is the header


def load_result(run_dir: Path) -> RunResult:
    """A finished run's results from its folder alone (what ``report`` re-renders; nothing is recomputed)."""
    run_dir = Path(run_dir)
    missing = [name for name in ("config.json", *STORED_RESULTS) if not (run_dir / name).exists()]
    if missing:
        raise EmoaugError(f"{run_dir}: no stored results ({', '.join(missing)} missing); "
                          "run the benchmark to the end first")
    try:
        return read_result(run_dir)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # edited or damaged
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise EmoaugError(f"{run_dir}: unreadable results ({reason}); run the benchmark again to rewrite them") \
            from None


def read_result(run_dir: Path) -> RunResult:
    """:func:`load_result` once the files are known to exist (what cannot be parsed raises)."""
    try:
        stored = io.read_json(run_dir / "config.json")
    except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
        raise EmoaugError(f"{run_dir}: config.json is not JSON ({err}); run the benchmark again to rewrite it") \
            from None
    config = RunConfig.from_dict(stored)
    labels = tuple(str(label) for label in stored["labels_resolved"])
    frames = {name: pd.read_csv(run_dir / name, dtype={"item_id": str}) for name in STORED_RESULTS}
    check_values(run_dir, frames, labels)
    for name in ("predictions.csv", "fold_metrics.csv", "summary.csv"):
        if "arm" not in frames[name].columns:  # runs stored before arms existed had the main arm only
            frames[name].insert(1, "arm", MAIN)

    def confusion(path: Path) -> pd.DataFrame:
        return pd.read_csv(path).set_index("true").rename_axis(columns="predicted")

    confusions, arm_confusions = {}, {}
    for generator in frames["generators.csv"]["generator"]:
        confusions[generator] = confusion(run_dir / "confusion" / f"{io.safe_name(generator)}.csv")
        for arm in ARMS[1:]:
            path = run_dir / "confusion" / arm / f"{io.safe_name(generator)}.csv"
            if path.exists():
                arm_confusions[(generator, arm)] = confusion(path)
    optional = {name: pd.read_csv(run_dir / name) if (run_dir / name).exists() else pd.DataFrame()
                for name in ("comparisons.csv", "reference_summary.csv", "reference.csv",
                             "ratio_curve.csv")}  # absent from older runs (and runs without a curve)
    return RunResult(run_dir, config, labels, frames["predictions.csv"], frames["fold_metrics.csv"],
                     frames["summary.csv"], confusions, frames["quality.csv"], frames["timings.csv"],
                     frames["generators.csv"], arm_confusions, optional["comparisons.csv"],
                     optional["reference_summary.csv"], optional["reference.csv"], optional["ratio_curve.csv"])
