"""End-to-end runs through the command line on fixture corpora (smoke profile, seconds each)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from emoaug.cli import main
from emoaug.featureset import FeatureSet
from emoaug.generators.base import Generator
from tests.helpers import cells_index, make_emodb, only_run_dir

SPEAKERS = ("03", "08", "09", "10", "11", "13")
TEXTS = ("a01", "a02")
# Every item id of the fixture corpus (--gen imports this module afresh, so no state is shared with the test).
ALL_IDS = [f"emodb/{s}{t}{letter}a" for s in SPEAKERS for t in TEXTS for letter in "WLEAFTN"]


class LeakyGenerator(Generator):
    """Deliberately broken: claims to have been fit on every item of the corpus."""

    name = "leaky"

    def _fit(self, train: FeatureSet) -> None:
        self.fitted_item_ids = sorted(set(self.fitted_item_ids) | set(ALL_IDS))
        self.template = train.subset([0])

    def _generate(self, n_per_class, seed):
        return self.template


class LeakyPartGenerator(LeakyGenerator):
    """Fits itself honestly, but an inner model (like diffusion's emotion embedding) read every item."""

    name = "leaky-part"

    def _fit(self, train: FeatureSet) -> None:
        self.template = train.subset([0])

    def fitted_parts(self):
        return {"inner classifier": (list(ALL_IDS), set())}


@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return make_emodb(tmp_path_factory.mktemp("data") / "emodb", speakers=SPEAKERS, texts=TEXTS)


def smoke_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--out", str(out), *extra]


def test_smoke_run_writes_tables_audit_and_mlflow(emodb_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(smoke_args(emodb_root, out)) == 0
    printed = capsys.readouterr().out
    assert "UA %" in printed and "WA = overall accuracy" in printed and "speaker-independent" in printed
    run_dir = only_run_dir(out)

    summary = pd.read_csv(run_dir / "summary.csv")
    assert list(dict.fromkeys(summary["generator"])) == ["none", "specaugment"]
    assert {"wa", "ua", "macro_f1", "weighted_f1"} <= set(summary["metric"])
    rates = summary[summary["metric"] != "n"]
    assert rates["pooled"].between(0, 1).all() and rates["fold_mean"].between(0, 1).all()

    manifest = pd.read_csv(run_dir / "manifest.csv")
    predictions = pd.read_csv(run_dir / "predictions.csv")
    per_test_item = predictions[predictions["arm"] != "clarity_sampled"]  # sampled rows are generated items
    assert set(per_test_item["arm"]) == {"main", "synthetic_only", "clarity_true_label", "clarity_predicted_label"}
    for _, part in per_test_item.groupby(["generator", "arm", "seed"]):
        assert sorted(part["item_id"]) == sorted(manifest["item_id"])  # every item tested exactly once

    audit = json.loads((run_dir / "split_audit.json").read_text())
    for fold in audit["folds"]:
        assert all(not speakers for speakers in fold["speaker_overlap"].values())
    config = json.loads((run_dir / "config.json").read_text())
    experiment, execution = config["experiment"], config["execution"]
    assert experiment["corpus"] == "emodb" and experiment["classifier"]["arch"] == "cnn_blstm"
    assert config["torch_threads"] == execution["threads"] == 1  # EMOAUG_THREADS in conftest
    assert execution["executor"] == "local" and execution["jobs"] == 1
    assert not set(experiment) & set(execution)
    assert (run_dir / "tables" / "generators.md").read_text().count("|") > 10
    assert (run_dir / "figures" / "confusion_none.png").stat().st_size > 1000

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out.resolve() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("emoaug")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("emoaug.level") == "benchmark"]
    children = [r for r in runs if r.data.tags.get("emoaug.level") == "arm"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.params["corpus"] == "emodb" and parent.data.params["classifier.arch"] == "cnn_blstm"
    # one child per (generator, arm), every one with the same metric names, so MLflow can compare them
    arms = {(r.data.tags["generator"], r.data.tags["arm"]) for r in children}
    assert arms == set(map(tuple, summary[["generator", "arm"]].drop_duplicates().to_numpy()))
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert all({"ua", "wa", "macro_f1", "ua_fold_mean", "ua_fold_std"} <= set(r.data.metrics) for r in children)
    by_arm = {(r.data.tags["generator"], r.data.tags["arm"]): r for r in children}
    pooled_ua = summary.query("generator == 'none' and arm == 'main' and metric == 'ua'")["pooled"].item()
    assert by_arm["none", "main"].data.metrics["ua"] == pytest.approx(pooled_ua)
    assert "ua_diff_vs_none" in by_arm["specaugment", "main"].data.metrics
    assert by_arm["specaugment", "main"].data.params["gen.time_masks"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"tables", "figures", "audio", "split_audit.json", "leakage_audit.json", "config.json",
            "generators.csv", "quality.csv", "cells.json", "reference.csv"} <= artifacts
    reference = pd.read_csv(run_dir / "reference.csv").iloc[0]  # the classic row, on the parent run
    assert parent.data.metrics["classic_ua"] == pytest.approx(reference["ua"])
    assert parent.data.metrics["classic_ua_diff_vs_none"] == pytest.approx(reference["ua_paired_diff"])
    wavs = {a.path for a in client.list_artifacts(parent.info.run_id, "audio/specaugment")}
    assert wavs and all(path.endswith(".wav") for path in wavs)

    # phase timings: one line at the end, timings.json in the run folder and on the parent run
    assert printed.strip().splitlines()[-1].startswith("timings: scan ")
    timings = json.loads((run_dir / "timings.json").read_text())
    phases = timings["phases_s"]
    assert list(phases) == [p for p in ("scan", "features", "functionals", "splits", "planning", "cells",
                                        "reference", "results", "rendering", "tracking") if p in phases]
    assert {"scan", "features", "functionals", "cells", "rendering", "tracking"} <= set(phases)
    assert sum(phases.values()) <= timings["total_s"] + 1e-6 and phases["cells"] > 0
    cells_record = timings["cells"]
    assert cells_record["cells_computed"] == len(summary.drop_duplicates("generator")) * 2  # 2 folds x 1 seed
    assert cells_record["reference_folds_computed"] == 2 and 0 < cells_record["compute_s"]
    assert timings["peak_rss_mb"]["driver"] > 50
    assert "timings.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert parent.data.metrics["time_cells_s"] == pytest.approx(phases["cells"], abs=1e-3)
    assert parent.data.metrics["time_tracking_s"] == pytest.approx(phases["tracking"], abs=1e-3)

    # the same command again updates these runs instead of logging duplicates, computing nothing
    assert main(smoke_args(emodb_root, out)) == 0
    again = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in runs)
    timings = json.loads((run_dir / "timings.json").read_text())
    assert "cells" not in timings["phases_s"] and timings["counts"]["reference_folds_stored"] == 2



def test_rerun_reuses_stored_cells_and_recomputes_a_lost_one_with_identical_numbers(emodb_root, tmp_path):
    store = tmp_path / "store"
    args = smoke_args(emodb_root, tmp_path / "runs", "--no-mlflow", "--store", str(store))
    assert main(args) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    first = pd.read_csv(run_dir / "predictions.csv")
    cells = cells_index(run_dir)
    assert cells["computed_by_this_run"].all()
    lost = cells.iloc[-1]["key"]
    shutil.rmtree(store / "cells" / lost[:2] / lost)  # as if the run had been killed before this cell finished

    assert main(args) == 0
    again = cells_index(run_dir)
    assert list(again["key"]) == list(cells["key"])
    assert again.set_index("key")["computed_by_this_run"].to_dict() == {k: k == lost for k in cells["key"]}
    pd.testing.assert_frame_equal(first, pd.read_csv(run_dir / "predictions.csv"))


def test_mlflow_failure_keeps_local_results(emodb_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(smoke_args(emodb_root, out, "--gen", "none", "--tracking-uri", "nosuchscheme://nowhere")) == 0
    err = capsys.readouterr().err
    assert "MLflow logging failed" in err
    assert (only_run_dir(out) / "summary.csv").exists()


def test_leaky_generator_fails_the_run(emodb_root, tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(smoke_args(emodb_root, out, "--gen", "tests.test_e2e:LeakyGenerator", "--no-mlflow"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "leaky" in err[-1].lower() or "LeakyGenerator" in err[-1]
    assert "validation/test items" in err[-1]


def test_leak_through_a_generators_inner_model_fails_the_run(emodb_root, tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(smoke_args(emodb_root, out, "--gen", "tests.test_e2e:LeakyPartGenerator", "--no-mlflow"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "inner classifier" in err[-1] and "validation/test items" in err[-1]
    assert not (only_run_dir(out) / "leakage_audit.json").exists()


def test_paper_split_is_flagged_speaker_dependent(emodb_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(smoke_args(emodb_root, out, "--gen", "none", "--split", "paper", "--no-mlflow")) == 0
    printed = capsys.readouterr().out
    assert "SPEAKER-DEPENDENT" in printed
    assert "over 1 fold(s) x 1 seed(s)" in printed  # the one 8:2 split that ran, not --folds
    audit = json.loads((only_run_dir(out) / "split_audit.json").read_text())
    assert audit["speaker_dependent"] is True


def test_report_rerenders_tables_figures_and_html_from_stored_results_alone(emodb_root, tmp_path, capsys):
    import shutil

    out = tmp_path / "runs"
    assert main(smoke_args(emodb_root, out, "--no-mlflow")) == 0
    run_dir = only_run_dir(out)
    before = {name: (run_dir / "tables" / name).read_text() for name in ("generators.md", "generators.csv")}
    # without cells or normalisers anything that tried to recompute would fail
    for name in ("tables", "figures", "cells", "normalisers"):
        shutil.rmtree(run_dir / name)
    (run_dir / "report.html").unlink()
    capsys.readouterr()

    assert main(["report", "--out", str(out)]) == 0
    assert "WA = overall accuracy" in capsys.readouterr().out
    for name, text in before.items():
        assert (run_dir / "tables" / name).read_text() == text
    assert (run_dir / "figures" / "confusion_none.png").exists()
    page = (run_dir / "report.html").read_text()
    assert "SER on emodb" in page and "WA = overall accuracy" in page
    assert page.count('src="data:image/png;base64,') >= 3  # confusions of both generators, recall bars, grid
    assert 'src="data:audio/wav;base64,' in page and "Split audit" in page and "Resolved configuration" in page

    # Drawn again only where the inputs or the written bytes changed (render_keys.json): an edited figure, and the
    # grid and audio of example rows that changed; everything else is left as it was written.
    import torch

    drawn = snapshot_of_renders(run_dir)
    (run_dir / "figures" / "confusion_none.png").write_bytes(b"edited by hand")
    examples = sorted((run_dir / "examples").glob("*.pt"))[0]
    stored = torch.load(examples, weights_only=True)
    stored["generated"]["x"] = stored["generated"]["x"] * 0.5
    torch.save(stored, examples)
    assert main(["report", "--out", str(out)]) == 0
    again = snapshot_of_renders(run_dir)
    assert again.keys() == drawn.keys()
    audio = {name for name in drawn if name.startswith(f"audio/{examples.stem}/")}
    assert audio and {name for name in drawn if again[name] != drawn[name]} == {
        "figures/confusion_none.png", f"figures/real_vs_{examples.stem}.png", *audio}
    assert (run_dir / "figures" / "confusion_none.png").read_bytes().startswith(b"\x89PNG")


def snapshot_of_renders(run_dir: Path) -> dict[str, tuple[int, int]]:
    """Figure and audio files -> (inode, mtime): a file written again (atomically, by rename) gets a new inode."""
    files = [p for part in ("figures", "audio") for p in (run_dir / part).rglob("*") if p.is_file()]
    return {p.relative_to(run_dir).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def test_report_on_a_folder_without_runs_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path)]) == 2
    assert "no run folders" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "missing" in err[0] and "not a folder" in err[0]


def test_report_skips_an_unfinished_run_among_finished_ones(emodb_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(smoke_args(emodb_root, out, "--gen", "none", "--no-mlflow")) == 0
    unfinished = out / "emodb-smoke-unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    capsys.readouterr()
    assert main(["report", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "summary.csv" in captured.err
    assert main(["report", "--out", str(unfinished)]) == 2  # asked for by name: a one-line error
    assert "run the benchmark to the end first" in capsys.readouterr().err
