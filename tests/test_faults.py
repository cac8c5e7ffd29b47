"""Damaged stored results and hostile options: a one-line message, recomputation, finished results intact.

(The start of issue 11's fault catalogue: the cases of the cell store, --out and the tracking server.)
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from emoaug.cli import main
from tests.helpers import make_csv, make_emodb, only_run_dir


@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return make_emodb(tmp_path_factory.mktemp("data") / "emodb", speakers=("03", "08", "09", "10"), texts=("a01",))


def args_for(root: Path, tmp: Path, *extra: str) -> list[str]:
    return ["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--gen", "none,vae",
            "--protocol", "augment", "--out", str(tmp / "runs"), "--store", str(tmp / "store"), "--no-mlflow", *extra]


@pytest.fixture(scope="module")
def finished(emodb_root, tmp_path_factory) -> Path:
    """A folder holding one finished run (``runs/``) and its cell store (``store/``), made once per module."""
    tmp = tmp_path_factory.mktemp("finished")
    assert main(args_for(emodb_root, tmp)) == 0
    return tmp


def damage(path: Path, how: str) -> None:
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(b"PK\x03\x04 not really a zip or a pickle")


@pytest.mark.parametrize(
    ("target", "how"),
    [
        ("cells/*/*/meta.json", "truncate"),
        ("cells/*/*/predictions.csv", "empty"),
        ("judges/*/*.pt", "truncate"),
        ("judges/*/*.pt", "garbage"),
        ("checkpoints/*/*.pt", "truncate"),
    ],
)
def test_damaged_store_entries_are_recomputed_with_one_warning(emodb_root, finished, tmp_path, capsys, target, how):
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)  # a finished run and its store, one copy per case
    args = args_for(emodb_root, tmp_path)
    first = pd.read_csv(only_run_dir(tmp_path / "runs") / "predictions.csv")
    victims = sorted((tmp_path / "store").glob(target))
    assert victims, target
    damage(victims[0], how)
    if target.startswith(("judges", "checkpoints")):  # only used when a cell needs computing: lose one
        for meta in (tmp_path / "store").glob("cells/*/*/meta.json"):
            meta.unlink()
    capsys.readouterr()

    assert main(args) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "weights_only" not in err
    if not target.startswith("cells"):
        assert str(victims[0]) in err and "moved aside" in err
    pd.testing.assert_frame_equal(first, pd.read_csv(only_run_dir(tmp_path / "runs") / "predictions.csv"))


def test_out_pointing_at_a_file_is_a_one_line_error(emodb_root, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code = main([*args_for(emodb_root, tmp_path)[:-5], "--out", str(tmp_path / "afile"), "--no-mlflow"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "--out" in err and "afile" in err


def test_unreachable_tracking_server_fails_fast_with_one_warning_and_keeps_results(emodb_root, tmp_path, capsys):
    args = [*args_for(emodb_root, tmp_path)[:-1], "--tracking-uri", "http://127.0.0.1:9"]  # nothing listens
    assert main(args) == 0  # results are local first; tracking is a copy
    capsys.readouterr()
    start = time.monotonic()
    assert main(args) == 0  # every cell stored: almost all of this is the tracking attempt
    seconds = time.monotonic() - start
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "MLflow logging failed" in line] and "Traceback" not in err
    assert (only_run_dir(tmp_path / "runs") / "summary.csv").exists()
    assert seconds < 60, f"the run stalled {seconds:.0f} s on an unreachable tracking server"


def test_synthetic_ratio_that_is_not_finite_is_a_one_line_error(emodb_root, tmp_path, capsys):
    for bad in ("inf", "nan", "-1"):
        assert main([*args_for(emodb_root, tmp_path), "--synthetic-ratio", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "--synthetic-ratio" in err
    assert not (tmp_path / "runs").exists()  # nothing was read or written


def test_a_leftover_partial_cell_of_a_killed_writer_is_removed(emodb_root, tmp_path):
    args = args_for(emodb_root, tmp_path)
    assert main(args) == 0
    cell = next((tmp_path / "store").glob("cells/*/*"))
    partial = cell.parent / f".{cell.name}.999999.abcdefgh.tmp"  # pid 999999: no such writer alive
    partial.mkdir()
    (partial / "predictions.csv").write_text("half")
    assert main(args) == 0
    assert not partial.exists()
    assert json.loads((only_run_dir(tmp_path / "runs") / "cells.json").read_text())["computed"] == 0


# ------------------------------------------------------------------------------------------------ CSV corpora
def describe(capsys, table: Path) -> tuple[int, dict | str]:
    code = main(["describe", "--corpus", "csv", "--data-root", str(table), "--labels", "4class", "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err.strip())


def test_a_csv_row_naming_the_folder_itself_is_skipped_with_a_reason(tmp_path, capsys):
    table = make_csv(tmp_path / "corpus", rows=[{"path": ".", "emotion": "angry", "speaker": "a"}])
    code, info = describe(capsys, table)
    assert code == 0 and info["n_items"] == 16
    assert any("names the CSV's folder" in entry["reason"] for entry in info["skipped"])


def test_a_semicolon_separated_csv_is_read(tmp_path, capsys):
    table = make_csv(tmp_path / "corpus")
    table.write_text(table.read_text().replace(",", ";"))
    code, info = describe(capsys, table)
    assert code == 0 and info["n_items"] == 16 and info["n_speakers"] == 2


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda text: text.replace("angry", "\u00e4ngry").encode("latin-1"), "not UTF-8"),
        (lambda text: (text + 'audio/x.wav,angry,"' + "a" * 200_000 + '"\n').encode(), "unreadable CSV"),
    ],
    ids=["latin-1", "field-over-the-csv-limit"],
)
def test_an_unreadable_csv_is_a_one_line_error_naming_it(tmp_path, capsys, mangle, says):
    table = make_csv(tmp_path / "corpus")
    table.write_bytes(mangle(table.read_text()))
    code, err = describe(capsys, table)
    assert code == 2 and err.count("\n") == 0 and str(table) in err and says in err


def test_an_npz_archive_in_the_feature_cache_is_recomputed(emodb_root, tmp_path, capsys):
    import numpy as np

    args = [*args_for(emodb_root, tmp_path, "--cache-dir", str(tmp_path / "cache")), "--gen", "none"]
    assert main(args) == 0
    first = pd.read_csv(only_run_dir(tmp_path / "runs") / "predictions.csv")
    victim = next((tmp_path / "cache" / "features").rglob("*.npy"))
    with open(victim, "wb") as handle:
        np.savez(handle, x=np.zeros(3))
    for meta in (tmp_path / "store").glob("cells/*/*/meta.json"):
        meta.unlink()
    capsys.readouterr()
    assert main([*args, "--fresh"]) == 0
    err = capsys.readouterr().err
    assert str(victim) in err and "Traceback" not in err
    pd.testing.assert_frame_equal(first, pd.read_csv(only_run_dir(tmp_path / "runs") / "predictions.csv"))


def test_leftovers_of_killed_writers_in_the_feature_cache_and_synthetic_cache_are_removed(emodb_root, tmp_path):
    from emoaug.datasets.synthetic import ensure_corpus

    dead = 999999  # no such writer alive
    staging = tmp_path / "synthetic" / f".gen1_seed0_voices1_sentences1_variation1.{dead}.abcdefgh.tmp"
    staging.mkdir(parents=True)
    (staging / "v00_s00_angry.wav").write_bytes(b"RIFF half")
    root = ensure_corpus(tmp_path / "synthetic", n_voices=1, n_sentences=1)
    assert not staging.exists() and (root / "metadata.json").is_file()

    args = args_for(emodb_root, tmp_path, "--cache-dir", str(tmp_path / "cache"))
    assert main(args) == 0
    shard = next((tmp_path / "cache" / "features").glob("*/??"))
    leftover = shard / f".{'0' * 40}.npy.{dead}.abcdefgh.tmp"
    leftover.write_bytes(b"\x93NUMPY half")
    assert main(args) == 0
    assert not leftover.exists()
