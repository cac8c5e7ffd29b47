"""End to end with every built-in generator (smoke profile, a fixture corpus), and generator checkpoint reuse."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from emoaug.cli import main
from tests.helpers import make_emodb

ALL_GENERATORS = ["vae", "dcgan", "cyclegan", "diffusion", "specaugment", "none"]


def test_every_generator_runs_end_to_end_through_the_command_line(tmp_path, capsys):
    """The whole chain for every built-in at once: tables, audio, figures, MAD, audits. A small EmoDB fixture (72
    items) keeps it to seconds: each generator's own cell is also run by the contract kit (test_contract), and
    the embedded corpus end to end by test_e2e_protocols and the README's default job."""
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08", "09", "10", "11", "13"), letters="WEAFTN", seconds=0.8)
    out = tmp_path / "runs"
    # --reference off: the classic row has its own tests (test_classic)
    code = main(["--gen", ",".join(ALL_GENERATORS), "--corpus", "emodb", "--data-root", str(root),
                 "--profile", "smoke", "--reference", "off", "--out", str(out), "--no-mlflow"])
    printed = capsys.readouterr().out
    assert code == 0
    run_dir = next(out.iterdir())
    table = pd.read_csv(run_dir / "generators.csv").set_index("generator")
    assert list(table.index) == ["none", *[g for g in ALL_GENERATORS if g != "none"]]  # the reference first
    augmenters = [g for g in ALL_GENERATORS if g != "none"]
    for column in ("wa", "ua", "macro_f1"):
        assert table[column].between(0, 1).all()
    for column in ("mad", "fd", "judge_ua", "diversity_mel"):
        assert table.loc[augmenters, column].notna().all(), column
    assert (table.loc[augmenters, "n_synthetic_rows"] > 0).all()
    assert (table.loc[augmenters, "ua_pairs"] == 2).all()  # paired with `none` on both folds of the one seed
    assert table.loc[augmenters, "ua_p"].between(0, 1).all()
    for generator in augmenters:
        assert generator in printed
        assert list((run_dir / "audio" / generator).glob("*.wav")), generator
        assert (run_dir / "figures" / f"real_vs_{generator}.png").exists()
    assert (run_dir / "figures" / "recall_per_emotion.png").stat().st_size > 1000
    mad = pd.read_csv(run_dir / "tables" / "malik2023_table01.csv").set_index("emotion")
    assert list(mad.index) == ["neutral", "happy", "sad", "angry", "fear", "disgust", "total"]
    # the table holds 4 decimals: the total of the unrounded values may differ from the sum of the rounded ones
    assert mad.loc["total", "MAD diffusion"] == pytest.approx(mad.loc[mad.index[:-1], "MAD diffusion"].sum(), abs=4e-4)
    audit = json.loads((run_dir / "leakage_audit.json").read_text())
    audited = {check["what"] for check in audit["checks"]}
    assert audit["passed"] and {"normaliser", "generator 'diffusion'",
                                "generator 'diffusion': emotion-embedding classifier"} <= audited


def test_trained_generators_are_restored_from_checkpoints(tmp_path):
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08", "09", "10"), texts=("a01",))
    args = ["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--gen", "none,vae",
            "--out", str(tmp_path / "runs"), "--no-mlflow", "--store", str(tmp_path / "store")]
    assert main(args) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    first = pd.read_csv(run_dir / "predictions.csv")
    metas = sorted((run_dir / "cells" / "vae").glob("*.json"))
    assert metas and not any(json.loads(m.read_text())["generator_restored_from_checkpoint"] for m in metas)

    # Other protocols: new cells (other keys), but the same training rows, seed and config: same generator.
    assert main([*args, "--protocol", "augment", "--out", str(tmp_path / "other")]) == 0
    run_dir = next((tmp_path / "other").iterdir())
    metas = sorted((run_dir / "cells" / "vae").glob("*.json"))
    assert metas and all(json.loads(m.read_text())["generator_restored_from_checkpoint"] for m in metas)
    cells = json.loads((run_dir / "cells.json").read_text())["cells"]
    assert [c["computed_by_this_run"] for c in cells if c["generator"] == "vae"] == [True] * len(metas)
    assert not any(c["computed_by_this_run"] for c in cells if c["generator"] == "none")  # reused

    def main_arm(frame):  # the first run also had dcgan (the clarity protocol's baseline)
        return frame[(frame["arm"] == "main") & frame["generator"].isin(["none", "vae"])].reset_index(drop=True)

    pd.testing.assert_frame_equal(main_arm(first), main_arm(pd.read_csv(run_dir / "predictions.csv")))
