"""Verify on read: stored entries and run folders record their files' sizes and SHA-256 and are checked when read;
files and folders follow the umask.

A stored cell edited or truncated (even at a line boundary) is one warning naming it and a recomputation, never a
silent reuse; entries written before digests existed still load when they pass the count check. ``report`` and
``leaderboard`` skip a damaged or unfinished run folder with one line and render the others.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest

from emoaug import storage
from emoaug.bench.cells import CellResult
from emoaug.bench.results import FINISHED, load_result
from emoaug.bench.store import CellStore
from emoaug.cli import main
from emoaug.errors import EmoaugError
from tests.helpers import cells_index, make_emodb, only_run_dir


# ------------------------------------------------------------------------------------------------ units: the store
def a_cell(key: str = "ab" + "0" * 38, n: int = 6) -> CellResult:
    predictions = pd.DataFrame({"arm": ["main"] * n + ["synthetic_only"] * n, "generator": "vae", "seed": 0,
                                "fold": 0, "item_id": [f"i{k}" for k in range(n)] * 2,
                                "y_true": ["sad", "angry"] * n, "y_pred": ["angry"] * (2 * n)})
    meta = {"key": key, "generator": "vae", "seed": 0, "fold": 0, "n_test_rows": 2 * n, "n_test_items": n}
    return CellResult(key, predictions, pd.DataFrame({"measure": ["mad"], "value": [0.5]}), meta)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def cut_lines(path: Path, keep: int) -> None:
    """Cut a text file at a line boundary: the header and ``keep`` rows stay (still a valid CSV)."""
    path.write_text("".join(path.read_text().splitlines(keepends=True)[: keep + 1]))


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda f: (f / "predictions.csv").write_text(
            (f / "predictions.csv").read_text().replace(",angry\n", ",happy\n")), "SHA-256 differs"),
        (lambda f: cut_lines(f / "predictions.csv", 4), "bytes"),
        (lambda f: (f / "quality.csv").unlink(), "quality.csv is missing"),
        (lambda f: (f / "meta.json").unlink(), "meta.json missing"),
        (lambda f: (f / "manifest.json").write_text("{not json"), "manifest.json is unreadable"),
    ],
    ids=["edited", "truncated-at-a-line", "file-deleted", "meta-deleted", "manifest-garbage"],
)
def test_a_damaged_cell_is_one_warning_and_removed(tmp_path, caplog, damage, says):
    store, cell = CellStore(tmp_path), a_cell()
    store.save_cell(cell)
    folder = store.cell_dir(cell.key)
    assert store.load_cell(cell.key) is not None and not warnings_of(caplog)
    damage(folder)
    assert store.load_cell(cell.key) is None
    lines = warnings_of(caplog)
    assert len(lines) == 1 and str(folder) in lines[0] and says in lines[0] and "recomputing" in lines[0]
    assert not folder.exists()  # recomputed, then stored again
    store.save_cell(cell)
    assert store.load_cell(cell.key) is not None


@pytest.mark.parametrize(
    ("meta_change", "keep", "loads"),
    [({}, 6 + 6, True),  # intact
     ({}, 6 + 3, False),  # cut inside the second arm: the arms disagree
     ({"n_test_rows": 5}, 6 + 6, False),  # more main-arm rows than test rows
     ({"n_test_items": 6}, 6 + 6, True), ({"n_test_items": 6}, 5, False)],
    ids=["old-intact", "old-cut-in-second-arm", "old-more-rows-than-recorded", "new-counts-intact", "new-counts-cut"],
)
def test_a_cell_without_manifest_loads_only_when_its_counts_agree(tmp_path, caplog, meta_change, keep, loads):
    cell = a_cell()
    cell.meta.pop("n_test_items")  # written before n_test_items was recorded: n_test_rows counts segments
    cell.meta.update(meta_change)
    store = CellStore(tmp_path)
    store.save_cell(cell)
    folder = store.cell_dir(cell.key)
    (folder / storage.MANIFEST).unlink()  # written before manifests existed
    cut_lines(folder / "predictions.csv", keep)
    found = store.load_cell(cell.key)
    assert (found is not None) == loads
    lines = warnings_of(caplog)
    assert lines == [] if loads else (len(lines) == 1 and "main-arm" in lines[0] and str(folder) in lines[0])


def test_single_file_entries_are_checked_against_their_sidecar(tmp_path, caplog):
    import torch

    store = CellStore(tmp_path)
    store.save_checkpoint("cd" + "1" * 38, {"w": torch.ones(3)})
    path = store.checkpoint_path("cd" + "1" * 38)
    sidecar = storage.digest_path(path)
    assert json.loads(sidecar.read_text())["size"] == path.stat().st_size
    torch.save({"w": torch.zeros(3)}, path)  # another valid file under the same name: loads, but is not ours
    assert store.load_checkpoint("cd" + "1" * 38) is None
    lines = warnings_of(caplog)
    assert len(lines) == 1 and str(path) in lines[0] and "moved aside" in lines[0]
    assert not path.exists() and not sidecar.exists() and path.with_name(path.name + ".corrupt").exists()

    caplog.clear()
    store.save_checkpoint("cd" + "1" * 38, {"w": torch.ones(3)})
    sidecar.unlink()  # written before sidecars existed: trusted when it loads
    assert torch.equal(store.load_checkpoint("cd" + "1" * 38)["w"], torch.ones(3)) and not warnings_of(caplog)


def test_an_edited_reference_fold_is_recomputed(tmp_path, caplog):
    key = "ef" + "2" * 38
    path = CellStore(tmp_path).reference_path(key)
    path.parent.mkdir(parents=True)
    # any stored shape will do: the digest is checked before the content is parsed
    path.write_text(json.dumps({"key": key, "value": 1}))
    storage.write_digest(path)
    path.write_text(json.dumps({"key": key, "value": 2}))
    assert CellStore(tmp_path).load_reference(key) is None
    lines = warnings_of(caplog)
    assert len(lines) == 1 and str(path) in lines[0] and "SHA-256" in lines[0]
    assert not path.exists() and not storage.digest_path(path).exists()


def test_written_files_and_folders_follow_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        store = CellStore(tmp_path / "store")
        cell = a_cell()
        store.save_cell(cell)
        folder = store.cell_dir(cell.key)
        storage.write_json(tmp_path / "run" / "config.json", {"a": 1})
        files = [*folder.iterdir(), tmp_path / "run" / "config.json"]
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [folder, *files]}
    finally:
        os.umask(old)
    assert modes[folder.name] == 0o775
    assert all(modes[p.name] == 0o664 for p in files), modes
    assert storage.current_umask() == old


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run (none + vae, the classic reference) and its store."""
    tmp = tmp_path_factory.mktemp("verify")
    root = make_emodb(tmp / "emodb", speakers=("03", "08", "09", "10"), texts=("a01",))
    args = ["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--gen", "none,vae",
            "--protocol", "augment", "--no-mlflow"]
    assert main([*args, "--out", str(tmp / "runs"), "--store", str(tmp / "store")]) == 0
    return tmp, args


def copy_of(finished, tmp_path: Path) -> tuple[list[str], Path]:
    tmp, args = finished
    shutil.copytree(tmp / "runs", tmp_path / "runs")
    shutil.copytree(tmp / "store", tmp_path / "store")
    return [*args, "--out", str(tmp_path / "runs"), "--store", str(tmp_path / "store")], tmp_path / "runs"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["y_pred = y_true", "cut at a line"])
def test_an_edited_or_truncated_stored_cell_is_recomputed_never_reused(finished, tmp_path, capsys, how):
    args, runs = copy_of(finished, tmp_path)
    run_dir = only_run_dir(runs)
    first = pd.read_csv(run_dir / "predictions.csv")
    none_cell = cells_index(run_dir).query("generator == 'none'")["key"].iloc[0]
    victim = CellStore(tmp_path / "store").cell_dir(none_cell) / "predictions.csv"
    frame = pd.read_csv(victim, dtype={"item_id": str})
    if how == "y_pred = y_true":
        frame["y_pred"] = frame["y_true"]
        frame.to_csv(victim, index=False)
    else:
        cut_lines(victim, len(frame) // 2)
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if str(victim.parent) in line and "recomputing" in line]
    assert "Traceback" not in err
    assert cells_index(run_dir)["computed_by_this_run"].sum() == 1  # that cell only
    pd.testing.assert_frame_equal(first, pd.read_csv(run_dir / "predictions.csv"))


@pytest.mark.slow
def test_a_run_ends_with_its_marker_and_report_skips_a_damaged_folder(finished, tmp_path, capsys):
    tmp, _ = finished
    run_dir = only_run_dir(tmp / "runs")
    recorded = json.loads((run_dir / FINISHED).read_text())["files"]
    assert {"config.json", "predictions.csv", "generators.csv", "manifest.csv"} <= set(recorded)
    assert (run_dir / FINISHED).stat().st_mtime >= (run_dir / "report.html").stat().st_mtime

    out = tmp_path / "runs"
    for name in ("good", "bad"):
        shutil.copytree(run_dir, out / name)
    (out / "bad" / "config.json").write_text("{ not json")
    (out / "good" / "report.html").unlink()
    capsys.readouterr()
    assert main(["report", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad" in err[0] and "config.json" in err[0] and "damaged" in err[0]
    assert (out / "good" / "report.html").is_file()


@pytest.mark.slow
def test_report_and_leaderboard_name_values_outside_the_label_set_and_unfinished_folders(finished, tmp_path,
                                                                                         capsys):
    tmp, _ = finished
    run_dir = only_run_dir(tmp / "runs")
    out = tmp_path / "runs"
    for name in ("good", "unknown", "legacy", "stopped"):
        shutil.copytree(run_dir, out / name)
    predictions = out / "unknown" / "predictions.csv"
    predictions.write_text(predictions.read_text().replace(",angry,", ",furious,", 1))
    with pytest.raises(EmoaugError, match="y_(true|pred) values outside the run's labels \\(furious\\)"):
        load_result(out / "unknown")
    (out / "legacy" / FINISHED).unlink()  # written before the marker: its report.html is its last file
    (out / "stopped" / FINISHED).unlink()
    (out / "stopped" / "report.html").unlink()  # stopped while rendering (e.g. a full disk)

    capsys.readouterr()
    assert main(["report", "--out", str(out / "unknown")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "predictions.csv" in err
    assert main(["leaderboard", "--out", str(out)]) == 0
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board["run"]) <= {"good", "legacy"} and set(board["also_in_runs"]) == {1}  # the same rows twice
    markdown = (out / "leaderboard.md").read_text()
    assert [line for line in markdown.splitlines() if line.startswith("- left out:")] == [
        line for line in markdown.splitlines() if line.startswith(("- left out: stopped", "- left out: unknown"))]
    assert "left out: stopped: unfinished (no finished.json" in markdown
    assert "left out: unknown: damaged (predictions.csv" in markdown
    assert main(["report", "--out", str(out / "stopped")]) == 2
    assert "finished.json" in capsys.readouterr().err
