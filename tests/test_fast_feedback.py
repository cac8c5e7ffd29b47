"""Fast feedback: listing, help and option errors never import torch, MLflow or a generator module; small
corpora whose training folds lack an emotion run to the end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emoaug.cli import main
from tests.helpers import make_emodb

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "mlflow", "librosa", "emoaug.generators.none", "ray")

PROBE = """
import contextlib, io, json, sys
from emoaug.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        code = main(json.loads(sys.argv[1]))
    except SystemExit as exit:
        code = exit.code
heavy = [name for name in json.loads(sys.argv[2]) if name in sys.modules]
print(json.dumps({"code": code, "err": err.getvalue(), "heavy": heavy}))
"""


def probe(argv: list[str], tmp_path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env={"EMOAUG_CACHE": str(tmp_path / "cache"),
                                                                 "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["list"], 0, ""),
        (["list", "--json"], 0, ""),
        (["--help"], 0, ""),
        (["--corpus", "ravdess"], 2, "--data-root"),
        (["--corpus", "emodb", "--data-root", "/no/such/dir"], 2, "/no/such/dir"),
        (["--corpus", "nosuchcorpus"], 2, "nosuchcorpus"),
        (["--gen", "none,nosuchgen"], 2, "nosuchgen"),
        (["--profile", "huge"], 2, "--profile"),
        (["--preset", "nosuchpreset"], 2, "--preset"),
        (["--labels", "7class"], 2, "--labels"),
        (["--device", "tpu"], 2, "--device"),
        (["--folds", "1"], 2, "--folds"),
        (["--synthetic-ratio", "inf"], 2, "--synthetic-ratio"),
        (["--gen-opt", "nosuchgen.steps=3"], 2, "--gen-opt"),
        (["--split", "random"], 2, "--split"),
    ],
)
def test_listing_help_and_option_errors_import_nothing_heavy(tmp_path, argv, code, says):
    result = probe(argv, tmp_path)
    assert result["code"] == code, result
    assert says in result["err"]
    if code == 2:
        assert len(result["err"].strip().splitlines()) == 1 or "usage:" in result["err"]
    assert result["heavy"] == [], f"{argv} imported {result['heavy']}"


def test_training_folds_without_an_emotion_get_no_synthetic_rows_of_it_and_the_run_finishes(tmp_path, capsys):
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08", "09", "10"), letters="WLAFTN")  # no disgust
    make_emodb(root, speakers=("11",), letters="WLEAFTN")  # one speaker holds every disgust item
    args = ["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--gen", "none,specaugment,dcgan",
            "--out", str(tmp_path / "runs"), "--store", str(tmp_path / "store"), "--no-mlflow"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("emotions absent from a training fold") == 1 and "disgust" in err
    run_dir = next((tmp_path / "runs").iterdir())
    split = json.loads((run_dir / "split.json").read_text())["folds"]
    lacking = {f["index"] for f in split if not any(i.endswith("Ea") for i in f["train"])}
    assert lacking  # the fold that tests speaker 11 trains without disgust
    for meta_path in (run_dir / "cells" / "specaugment").glob("*.json"):
        meta = json.loads(meta_path.read_text())
        if meta["fold"] in lacking:
            assert meta["emotions_absent_from_training"] == ["disgust"]
            assert meta["synthetic_per_class"]["disgust"] == 0
    predictions = pd.read_csv(run_dir / "predictions.csv")
    sampled = predictions[(predictions["arm"] == "clarity_sampled") & predictions["fold"].isin(lacking)]
    assert not sampled.empty and "disgust" not in set(sampled["y_true"])
