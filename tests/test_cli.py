"""Command-line behaviour: listing, describe, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emoaug.cli import main
from tests.helpers import make_emodb, write_wav

ROOT = Path(__file__).resolve().parents[1]


def run_main(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_registry(capsys):
    code, out, _ = run_main(capsys, "list", "--json")
    listing = json.loads(out)
    assert code == 0
    assert {"emodb", "ravdess", "cremad", "iemocap", "folder", "csv", "synthetic"} <= set(listing["corpora"])
    assert {"none", "specaugment"} <= set(listing["generators"])
    assert {"cnn_blstm", "resnet50"} <= set(listing["classifiers"])
    assert set(listing["profiles"]) == {"smoke", "quick", "paper", "paper-full"}
    assert {"kim2024", "malik2023", "emogen"} <= set(listing["presets"])


def test_launcher_script_runs_list():
    proc = subprocess.run([sys.executable, str(ROOT / "run_bench.py"), "list"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "specaugment" in proc.stdout and "emodb" in proc.stdout


def test_describe_reports_counts_and_skipped_files(tmp_path, capsys):
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08", "10"), texts=("a01",))
    (root / "wav" / "09a01Wa.wav").write_bytes(b"")  # zero-length file
    (root / "wav" / "09a02Wa.wav").write_bytes(b"RIFF0000WAVEjunk")  # corrupt header
    write_wav(root / "wav" / "09a04Xa.wav", make_tone(), 16000)  # unknown emotion letter X
    code, out, _ = run_main(capsys, "describe", "--corpus", "emodb", "--data-root", str(root), "--json")
    info = json.loads(out)
    assert code == 0
    assert info["corpus"] == "emodb"
    assert info["n_items"] == 3 * 6  # 3 speakers x 6 of the 7 emotions (boredom excluded by 6class)
    assert info["n_speakers"] == 3
    assert info["per_emotion"] == {e: 3 for e in ("neutral", "happy", "sad", "angry", "fear", "disgust")}
    assert info["total_duration_s"] == pytest.approx(18.0, abs=0.1)
    skipped = {Path(s["path"]).name: s["reason"] for s in info["skipped"]}
    assert set(skipped) == {"09a01Wa.wav", "09a02Wa.wav", "09a04Xa.wav"}
    assert all(reason for reason in skipped.values())


def make_tone():
    import numpy as np

    return 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000).astype("float32")


def test_describe_fail_policy_names_the_file(tmp_path, capsys):
    root = make_emodb(tmp_path / "emodb", speakers=("03",), texts=("a01",))
    (root / "wav" / "03a02Wa.wav").write_bytes(b"")
    code, _, err = run_main(capsys, "describe", "--corpus", "emodb", "--data-root", str(root),
                            "--on-bad-file", "fail")
    assert code == 2
    line = err.strip()
    assert "\n" not in line and "03a02Wa.wav" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--corpus", "nosuchcorpus"], "nosuchcorpus"),
        (["--corpus", "emodb"], "--data-root"),  # no root and no EMOAUG_DATA: say how to point at it
        (["--corpus", "emodb", "--data-root", "/no/such/dir"], "/no/such/dir"),
        (["--gen", "none,nosuchgen"], "nosuchgen"),
        (["--gen", "no.such.module:Gen"], "no.such.module:Gen"),
        (["--profile", "huge"], "--profile"),
        (["--classifier", "vgg"], "--classifier"),
        (["--preset", "nosuchpreset"], "--preset"),
        (["--labels", "7class", "--corpus", "emodb", "--data-root", "DATA"], "--labels"),
        (["--device", "tpu"], "--device"),
        (["--synthetic-ratio", "-1"], "--synthetic-ratio"),
        (["--folds", "1"], "--folds"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path, capsys, argv, expected):
    data = make_emodb(tmp_path / "emodb", speakers=("03", "08"), texts=("a01",))
    argv = [str(data) if a == "DATA" else a for a in argv]
    if "--profile" not in argv:
        argv += ["--profile", "smoke"]
    code, _, err = run_main(capsys, *argv, "--out", str(tmp_path / "runs"), "--no-mlflow")
    assert code == 2
    message = err.strip().splitlines()
    assert len(message) == 1, err
    assert message[0].startswith("emoaug: error:") and expected in message[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("summary.csv"))


def test_empty_corpus_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(capsys, "describe", "--corpus", "emodb", "--data-root", str(tmp_path / "empty"))
    assert code == 2
    assert str(tmp_path / "empty") in err and len(err.strip().splitlines()) == 1


def test_argparse_rejects_unknown_split(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--split", "random"])
    assert exc.value.code == 2
    assert "--split" in capsys.readouterr().err
