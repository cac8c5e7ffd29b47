"""--synthetic-ratio with several ratios: its own cells per ratio, the generator trained once, the curve's
numbers, table, figure and MLflow metrics; on every executor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emoaug import stats
from emoaug.bench.curve import ratio_curve
from emoaug.bench.executors import Jobs
from emoaug.bench.plan import CellSpec
from emoaug.bench.resolve import parse_synthetic_ratios, resolve_run_config
from emoaug.cli import main
from tests.helpers import cells_index, make_emodb, only_run_dir

try:
    import ray  # noqa: F401

    HAVE_RAY = True
except ImportError:
    HAVE_RAY = False

CURVE = ("--gen", "specaugment,dcgan", "--protocol", "none", "--reference", "off", "--synthetic-ratio", "0.25,0.5,2")
FOLDS, SEEDS = 2, 1


@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return make_emodb(tmp_path_factory.mktemp("data") / "emodb", speakers=("03", "08", "09", "10"))


def run_args(root: Path, out: Path, store: Path, *extra: str) -> list[str]:
    return ["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--out", str(out),
            "--store", str(store), *extra]




def cell_metas(run_dir: Path, generator: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run_dir / "cells").rglob(f"{generator}/fold*_seed*.json"))]


@pytest.fixture(scope="module")
def curve_run(emodb_root, tmp_path_factory):
    """One local curve run with MLflow on a real sqlite store; smoke's own ratio (0.5) is in the list."""
    tmp = tmp_path_factory.mktemp("curve")
    assert main(run_args(emodb_root, tmp / "runs", tmp / "store", *CURVE, "--executor", "local")) == 0
    return SimpleRun(only_run_dir(tmp / "runs"), tmp)


class SimpleRun:
    def __init__(self, run_dir: Path, tmp: Path):
        self.dir, self.tmp = run_dir, tmp


# ------------------------------------------------------------------------------------------------ options
def test_several_ratios_keep_the_profiles_ratio_for_the_tables_when_listed():
    assert parse_synthetic_ratios(None, 1.0) == (1.0, [])
    assert parse_synthetic_ratios("2", 1.0) == (2.0, [])
    assert parse_synthetic_ratios("4,0.25,1,2", 1.0) == (1.0, [0.25, 1.0, 2.0, 4.0])
    assert parse_synthetic_ratios("4,0.25", 1.0) == (4.0, [0.25, 4.0])  # not listed: the first given


@pytest.mark.parametrize("bad", ["0.5,x", "0.5,-1", "inf,1", "0,1,2", "1,,2", "1,100"])
def test_a_bad_ratio_list_is_a_one_line_error_before_anything_is_read(emodb_root, tmp_path, capsys, bad):
    assert main(run_args(emodb_root, tmp_path / "runs", tmp_path / "store", "--synthetic-ratio", bad)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--synthetic-ratio" in err
    assert not (tmp_path / "runs").exists()


def test_a_run_without_a_curve_keeps_its_run_folder_name():
    plain = resolve_run_config(profile="smoke")
    same_ratio = resolve_run_config(profile="smoke", synthetic_ratio="0.5")
    curve = resolve_run_config(profile="smoke", synthetic_ratio="0.5,1")
    assert plain.fingerprint() == same_ratio.fingerprint() != curve.fingerprint()
    plain, curve = plain.experiment, curve.experiment
    assert plain.curve_ratios == [] and curve.curve_ratios == [0.5, 1.0] and curve.synthetic_ratio == 0.5


def test_cells_sharing_a_generator_checkpoint_wait_for_the_first():
    def spec(key: str, judge: str, ckpt: str | None) -> CellSpec:
        return CellSpec(key, None, None, fold=0, seed=0, judge_key=judge, checkpoint_key=ckpt)

    cells = [spec("a", "j0", "c0"), spec("b", "j0", None), spec("c", "j1", "c1"), spec("d", "j0", "c0"),
             spec("e", "j1", "c1"), spec("f", "j0", "c0")]
    jobs = Jobs(workload=None, judges=[], cells=cells, known_judges={}, checkpoint=lambda s: None,
                on_judge=print, on_cell=print)
    first, waiting = jobs.first_and_waiting()
    assert [s.key for s in first] == ["a", "b", "c"]
    assert {k: [s.key for s in v] for k, v in waiting.items()} == {"a": ["d", "f"], "c": ["e"]}


def test_holm_runs_over_every_point_of_the_curve():
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        for fold in range(4):
            base = 0.5 + 0.01 * rng.standard_normal()
            rows.append(("none", 0.0, seed, fold, base))
            for generator, gain in (("g1", 0.02), ("g2", -0.01)):
                for ratio in (0.5, 1.0):
                    rows.append((generator, ratio, seed, fold, base + gain * ratio + 0.005 * rng.standard_normal()))
    points = pd.DataFrame(rows, columns=["generator", "synthetic_ratio", "seed", "fold", "value"])
    points = points.assign(arm="main", metric="ua", n_synthetic_rows=points["synthetic_ratio"] * 100)
    points = pd.concat([points, points.assign(metric="wa")], ignore_index=True)
    curve = ratio_curve(points)
    assert list(curve["generator"]) == ["none", "g1", "g1", "g2", "g2"]
    own = curve[curve["generator"] != "none"]
    ua = points[points["metric"] == "ua"].pivot_table(index=["seed", "fold"], columns=["generator", "synthetic_ratio"],
                                                      values="value")
    for row in own.itertuples():
        diff = ua[(row.generator, row.synthetic_ratio)] - ua[("none", 0.0)]
        assert row.ua_paired_diff == pytest.approx(diff.mean())
        assert row.ua_ci_low <= row.ua_paired_diff <= row.ua_ci_high and row.ua_pairs == 12
        assert row.ua_mde == pytest.approx(stats.minimum_detectable_effect(diff.std(ddof=1), 12))  # 12 pairs: reachable
    assert np.allclose(own["ua_p_holm"], stats.holm(own["ua_p"].to_numpy()))  # one family of 4 points
    assert (own["ua_p_holm"] >= own["ua_p"]).all() and pd.isna(curve.iloc[0]["ua_p"])


# ------------------------------------------------------------------------------------------------ a run
def test_each_ratio_is_its_own_cells_and_the_generator_is_trained_once(curve_run):
    index = cells_index(curve_run.dir)
    assert len(index[~index["curve"]]) == FOLDS * SEEDS * 3  # none, specaugment, dcgan at the tables' ratio
    curve_cells = index[index["curve"]]
    assert sorted(set(curve_cells["synthetic_ratio"])) == [0.25, 2.0]  # 0.5 is the table cell itself
    assert len(curve_cells) == FOLDS * SEEDS * 2 * 2 and curve_cells["key"].is_unique
    # dcgan: trained in the table cells, restored (same checkpoint key) in every curve cell
    dcgan = cell_metas(curve_run.dir, "dcgan")
    assert sum(not m["generator_restored_from_checkpoint"] for m in dcgan) == FOLDS * SEEDS
    assert all(m["generator_restored_from_checkpoint"] for m in dcgan if m["curve"])
    assert len({m["checkpoint_key"] for m in dcgan}) == FOLDS * SEEDS


def test_the_curve_matches_the_cells_it_is_made_of(curve_run):
    run = curve_run.dir
    curve = pd.read_csv(run / "ratio_curve.csv")
    assert list(curve["generator"]) == ["none", *["specaugment"] * 3, *["dcgan"] * 3]
    assert list(curve["synthetic_ratio"]) == [0, 0.25, 0.5, 2, 0.25, 0.5, 2]
    # more synthetic rows per real row at each ratio (the training folds differ in size: compare per cell)
    for generator in ("specaugment", "dcgan"):
        rows = curve[curve["generator"] == generator]
        assert rows["n_synthetic_rows"].is_monotonic_increasing
    # the tables' ratio is the table cell: its UA is the generator table's fold mean
    generators = pd.read_csv(run / "generators.csv").set_index("generator")
    at_table = curve[curve["synthetic_ratio"] == 0.5].set_index("generator")
    for generator in ("specaugment", "dcgan"):
        assert at_table.loc[generator, "ua_fold_mean"] == pytest.approx(generators.loc[generator, "ua_fold_mean"])
    none = curve[curve["generator"] == "none"].iloc[0]
    assert none["ua_fold_mean"] == pytest.approx(generators.loc["none", "ua_fold_mean"])
    # a curve cell's UA recomputed from its own predictions
    from emoaug.metrics import classification_metrics

    labels = tuple(json.loads((run / "config.json").read_text())["labels_resolved"])
    uas = []
    for path in sorted((run / "cells" / "ratio2" / "dcgan").glob("fold*_seed?.csv")):
        cell = pd.read_csv(path)
        main_arm = cell[cell["arm"] == "main"]
        uas.append(classification_metrics(main_arm["y_true"], main_arm["y_pred"], labels)["ua"])
        assert set(cell["arm"]) == {"main"}  # curve cells compute no synthetic-only or clarity arm
    row = curve[(curve["generator"] == "dcgan") & (curve["synthetic_ratio"] == 2)].iloc[0]
    assert row["ua_fold_mean"] == pytest.approx(np.mean(uas))
    # the main results hold the table cells only
    assert set(pd.read_csv(run / "timings.csv")["n_synthetic_rows"]) == set(
        pd.read_csv(run / "curve_fold_metrics.csv").query("synthetic_ratio in (0, 0.5)")["n_synthetic_rows"])


def test_table_figure_report_and_mlflow_show_the_curve(curve_run, capsys):
    run = curve_run.dir
    table = pd.read_csv(run / "tables" / "ratio_curve.csv")
    assert list(table.columns[:3]) == ["generator", "ratio", "synthetic rows"] and len(table) == 7
    assert (run / "figures" / "ratio_curve.png").stat().st_size > 10_000
    assert "ratio_curve" in (run / "report.html").read_text()
    (run / "tables" / "ratio_curve.csv").unlink()
    assert main(["report", "--out", str(run)]) == 0  # re-rendered from ratio_curve.csv alone
    assert pd.read_csv(run / "tables" / "ratio_curve.csv").equals(table)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{curve_run.tmp / 'runs' / 'mlflow.db'}")
    children = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  "tags.generator = 'dcgan' and tags.arm = 'main'")
    assert len(children) == 1
    logged = children[0].data.metrics
    curve = pd.read_csv(run / "ratio_curve.csv")
    point = curve[(curve["generator"] == "dcgan") & (curve["synthetic_ratio"] == 2)].iloc[0]
    assert logged["ratio_2/ua_diff_vs_none"] == pytest.approx(point["ua_paired_diff"])
    assert {"ratio_0.25/ua_fold_mean", "ratio_0.5/ua_p_holm_vs_none"} <= set(logged)
    assert children[0].data.params["curve_ratios"] == "0.25,0.5,2"


def test_another_ratio_list_reuses_every_cell_it_shares(curve_run, emodb_root):
    out = curve_run.tmp / "runs2"
    assert main(run_args(emodb_root, out, curve_run.tmp / "store", *CURVE[:-1], "0.5,2,4", "--no-mlflow",
                         "--executor", "local")) == 0
    index = cells_index(only_run_dir(out))
    computed = index[index["computed_by_this_run"]]
    assert set(computed["synthetic_ratio"]) == {4.0} and len(computed) == FOLDS * SEEDS * 2


@pytest.mark.parametrize("executor", ["process", pytest.param("ray", marks=pytest.mark.skipif(
    not HAVE_RAY, reason="Ray is an optional extra"))])
def test_parallel_executors_train_each_generator_once_and_give_the_same_curve(curve_run, emodb_root, tmp_path,
                                                                                executor):
    # the trainable generator alone (dcgan), at two of the local run's ratios: its points are the same cells
    assert main(run_args(emodb_root, tmp_path / "runs", tmp_path / "store", "--gen", "dcgan", "--protocol", "none",
                         "--reference", "off", "--synthetic-ratio", "0.5,2", "--executor", executor, "--jobs", "2",
                         "--threads", "1", "--no-mlflow")) == 0
    run = only_run_dir(tmp_path / "runs")
    dcgan = cell_metas(run, "dcgan")
    assert len(dcgan) == 2 * FOLDS * SEEDS
    assert sum(not m["generator_restored_from_checkpoint"] for m in dcgan) == FOLDS * SEEDS
    columns = ["generator", "synthetic_ratio", "n_synthetic_rows", "ua_fold_mean", "ua_fold_std", "ua_paired_diff",
               "ua_ci_low", "ua_ci_high", "ua_p"]  # not p_Holm: its family (the points of the curve) differs
    ours = pd.read_csv(run / "ratio_curve.csv")[columns]
    local = pd.read_csv(curve_run.dir / "ratio_curve.csv")[columns]
    local = local[local["generator"].isin(["none", "dcgan"]) & local["synthetic_ratio"].isin([0, 0.5, 2])]
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), local.reset_index(drop=True))


def test_ratio_0_adds_nothing_and_equals_the_real_only_classifier(emodb_root, tmp_path):
    """Nothing generated (ratio 0, or a small ratio of a small fold): no quality to measure, and the classifier
    trained on real + nothing is the real-only one, prediction for prediction."""
    assert main(run_args(emodb_root, tmp_path / "runs", tmp_path / "store", "--gen", "specaugment", "--protocol",
                         "none", "--reference", "off", "--no-mlflow", "--synthetic-ratio", "0")) == 0
    predictions = pd.read_csv(only_run_dir(tmp_path / "runs") / "predictions.csv")
    main_arm = predictions[predictions["arm"] == "main"].set_index(["generator", "seed", "fold", "item_id"])
    assert len(main_arm.loc["specaugment"]) == len(main_arm.loc["none"]) > 0
    pd.testing.assert_series_equal(main_arm.loc["specaugment"]["y_pred"], main_arm.loc["none"]["y_pred"])
    generators = pd.read_csv(only_run_dir(tmp_path / "runs") / "generators.csv").set_index("generator")
    assert generators.loc["specaugment", "n_synthetic_rows"] == 0
