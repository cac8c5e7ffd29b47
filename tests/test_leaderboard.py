"""`run_bench.py leaderboard`: finished runs folded into one table, only identical protocols side by side."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from emoaug.cli import main
from emoaug.reports.tables import REFERENCE_LABEL, SPEAKER_NORM_NOTE
from tests.helpers import cells_index, make_emodb, write_clip

BASE = ("--profile", "smoke", "--protocol", "none", "--no-mlflow")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four finished runs and one unfinished folder under one --out:
    a: none + specaugment (+ the classic reference); b: none + dcgan, same protocol; c: specaugment at another
    synthetic ratio (another protocol); d: specaugment on a copy of the corpus with one file changed; e: run a
    with --speaker-norm (another protocol, flagged)."""
    tmp = tmp_path_factory.mktemp("leaderboard")
    root = make_emodb(tmp / "emodb", speakers=("03", "08", "09", "10"))
    copy = tmp / "emodb_copy"
    shutil.copytree(root, copy)
    write_clip(copy / "wav" / "03a01Wa.wav", "angry", sr=16000, seconds=1.0, seed=99)  # other audio, same name
    out, store = tmp / "runs", tmp / "store"

    def run(name: str, data: Path, *extra: str) -> None:
        assert main(["--corpus", "emodb", "--data-root", str(data), "--out", str(out), "--store", str(store),
                     "--run-name", name, *BASE, *extra]) == 0

    run("a", root, "--gen", "specaugment")
    run("b", root, "--gen", "dcgan", "--reference", "off")
    run("c", root, "--gen", "specaugment", "--synthetic-ratio", "1", "--reference", "off")
    run("d", copy, "--gen", "specaugment", "--reference", "off")
    run("e", root, "--gen", "specaugment", "--speaker-norm")
    (out / "unfinished").mkdir()
    shutil.copy(out / "a" / "config.json", out / "unfinished" / "config.json")
    return out


@pytest.fixture(scope="module")
def board(runs):
    assert main(["leaderboard", "--out", str(runs)]) == 0
    return pd.read_csv(runs / "leaderboard.csv")


def test_runs_of_one_protocol_share_a_group_and_other_protocols_get_their_own(board):
    groups = board.groupby("protocol")["run"].agg(set)
    assert sorted(map(sorted, groups)) == [["a", "b", "d"], ["c"], ["e"]]
    main_group = board[board["run"].isin(["a", "b", "d"])]
    original = main_group[main_group["data"] != board.loc[board["run"] == "d", "data"].iloc[0]]
    assert sorted(original["generator"]) == sorted(["none", "specaugment", "dcgan", REFERENCE_LABEL])


def test_a_row_shared_by_two_runs_appears_once(board):
    # none of the original corpus is in runs a and b (same cells): one row, the other run counted
    none = board[(board["generator"] == "none") & (board["run"].isin(["a", "b"]))]
    assert len(none) == 1 and none["also_in_runs"].iloc[0] == 1


def test_numbers_are_the_runs_own(board, runs):
    for run in ("a", "b", "c"):
        generators = pd.read_csv(runs / run / "generators.csv").set_index("generator")
        for row in board[(board["run"] == run) & (board["generator"] != REFERENCE_LABEL)].itertuples():
            assert row.ua == pytest.approx(generators.loc[row.generator, "ua"])
            assert row.real_ua == pytest.approx(generators.loc["none", "ua"])
            if row.generator != "none":
                assert row.ua_paired_diff == pytest.approx(generators.loc[row.generator, "ua_paired_diff"])
    classic = board[(board["generator"] == REFERENCE_LABEL) & (board["run"] == "a")].iloc[0]
    assert classic["ua"] == pytest.approx(pd.read_csv(runs / "a" / "reference.csv")["ua"].iloc[0])


def test_a_changed_corpus_copy_is_its_own_row(board):
    specaugment = board[(board["generator"] == "specaugment") & board["run"].isin(["a", "d"])]
    assert len(specaugment) == 2 and specaugment["data"].nunique() == 2


def test_markdown_and_html_say_what_differs_and_what_was_left_out(runs, board):
    markdown = (runs / "leaderboard.md").read_text()
    assert "the protocols differ in: synthetic_ratio, speaker_norm" in markdown
    assert "Protocol A" in markdown and "Protocol B" in markdown and "Protocol C" in markdown
    assert "left out: unfinished: unfinished" in markdown
    assert "emodb (" in markdown  # two copies of emodb in one group: the content hash names them
    page = (runs / "leaderboard.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "synthetic_ratio" in page and page.count("<table") == 3


def test_a_speaker_normalised_run_computes_its_own_cells_and_says_so_everywhere(runs, board):
    # other rows, so other keys: nothing of run a (same corpus, same generators) is reused
    a, e = cells_index(runs / "a"), cells_index(runs / "e")
    assert set(a["key"]).isdisjoint(e["key"]) and e["computed_by_this_run"].all()
    for table in (runs / "e" / "tables").glob("*.md"):
        assert SPEAKER_NORM_NOTE in table.read_text(), table.name
    assert not any(SPEAKER_NORM_NOTE in t.read_text() for t in (runs / "a" / "tables").glob("*.md"))
    assert "standardised per speaker" in (runs / "e" / "tables" / "generators.md").read_text()
    assert "SPEAKER-NORMALISED" in (runs / "e" / "report.html").read_text()
    assert "SPEAKER-NORMALISED" in (runs / "leaderboard.md").read_text()
    assert set(board[board["run"] == "e"]["generator"]) == {"none", "specaugment", REFERENCE_LABEL}


def test_no_finished_run_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "missing"):
        assert main(["leaderboard", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "--out" in err


def test_a_damaged_run_folder_is_left_out_with_a_line(runs, tmp_path, capsys):
    out = tmp_path / "runs"
    shutil.copytree(runs / "a", out / "good")
    for name in ("damaged", "old"):
        shutil.copytree(runs / "a", out / name)
        (out / name / "generators.csv").write_bytes(b"\x00\xff garbage\n\x01")
        (out / name / "manifest.csv").write_text("")
    (out / "old" / "finished.json").unlink()  # written before the marker: the files themselves are read
    (out / "old" / "report.html").touch()
    assert main(["leaderboard", "--out", str(out)]) == 0
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board["run"]) == {"good"}
    markdown = (out / "leaderboard.md").read_text()
    assert "left out: damaged: damaged (manifest.csv has 0 bytes" in markdown  # its record in finished.json
    assert "left out: old: unreadable results" in markdown
    err = capsys.readouterr().err
    assert "damaged" in err and "old" in err and "Traceback" not in err  # one warning line each
