"""Small corpora (issue 22): the validation-speaker count is an option (--val-speakers N), and a profile whose
default count leaves a fold too few training speakers holds out fewer, saying so in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emoaug.cli import main
from tests.helpers import make_emodb

FEWER = "validation speakers: 0 per fold"


@pytest.fixture(scope="module")
def lopsided(tmp_path_factory) -> Path:
    """4 speakers, one with four times the items of each other: the smoke profile's 2 stratified folds put it
    alone in one fold, leaving the other fold 1 training speaker (the profile's default holds out 1)."""
    root = tmp_path_factory.mktemp("data") / "emodb"
    make_emodb(root, speakers=("03",), texts=("a01", "a02", "a04", "a05"), seconds=0.5)
    return make_emodb(root, speakers=("08", "10", "13"), texts=("a01",), seconds=0.5)


def args_for(root: Path, tmp: Path, out: str, *extra: str) -> list[str]:
    return ["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--gen", "none", "--protocol",
            "none", "--reference", "off", "--executor", "local", "--out", str(tmp / out), "--store",
            str(tmp / "store"), "--cache-dir", str(tmp / "cache"), "--no-mlflow", *extra]


def run_config(out: Path) -> dict:
    (run_dir,) = [p for p in out.iterdir() if (p / "config.json").exists()]
    return json.loads((run_dir / "config.json").read_text())


def test_the_smoke_profile_runs_a_4_speaker_corpus_with_fewer_validation_speakers(lopsided, tmp_path, capsys):
    assert main(args_for(lopsided, tmp_path, "auto")) == 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if FEWER in line]) == 1 and "Traceback" not in err
    config = run_config(tmp_path / "auto")
    assert config["experiment"]["classifier"]["val_speakers"] == 0  # config.json names what was trained
    (run_dir,) = [p for p in (tmp_path / "auto").iterdir() if p.is_dir() and p.name.startswith("emodb")]
    folds = json.loads((run_dir / "split.json").read_text())["folds"]
    assert len(folds) == 2 and all(fold["val"] == [] for fold in folds)

    # an explicit --val-speakers 0 is the same classifier: same keys, so every cell comes from the store
    assert main(args_for(lopsided, tmp_path, "explicit", "--val-speakers", "0")) == 0
    err = capsys.readouterr().err
    assert FEWER not in err and "(2 stored, 0 to compute)" in err, err
    assert run_config(tmp_path / "explicit")["fingerprint"] == config["fingerprint"]


def test_an_explicit_count_the_corpus_cannot_give_is_a_one_line_error(lopsided, tmp_path, capsys):
    assert main(args_for(lopsided, tmp_path, "runs", "--val-speakers", "1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--val-speakers 0" in err[-1] and "Traceback" not in "\n".join(err)
    assert not [line for line in err if FEWER in line]  # never changed behind the user's back


def test_a_negative_val_speakers_is_a_one_line_option_error(lopsided, tmp_path, capsys):
    assert main(args_for(lopsided, tmp_path, "runs", "--val-speakers", "-1")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--val-speakers" in err and "-1" in err
    assert not (tmp_path / "runs").exists()  # refused before anything was read or written
