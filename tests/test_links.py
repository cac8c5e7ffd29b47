"""Symbolic links in a corpus: a link staying inside the root is read; one leading outside it is skipped with
a reason unless --follow-links; ``describe`` lists every link with its target."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from emoaug.cli import main
from emoaug.config import Execution, Experiment
from emoaug.datasets import _drop_links_leaving_root, load_corpus
from emoaug.errors import BadAudioError
from emoaug.run_options import run_options, run_parser
from tests.helpers import make_emodb, write_clip

SR = 16000


def clip(path: Path, emotion: str, seed: int) -> Path:
    return write_clip(path, emotion, sr=SR, seconds=0.5, seed=seed)


@pytest.fixture()
def linked_folder(tmp_path) -> tuple[Path, Path]:
    """``root/surprise -> elsewhere`` (a folder of two clips outside the root) beside two real folders."""
    root, elsewhere = tmp_path / "corpus", tmp_path / "elsewhere"
    for seed, (emotion, speaker) in enumerate([("angry", "s1"), ("angry", "s2"), ("sad", "s1"), ("sad", "s2")]):
        clip(root / emotion / f"{speaker}_1.wav", emotion, seed)
    clip(elsewhere / "s1_1.wav", "surprise", 10)
    clip(elsewhere / "s2_1.wav", "surprise", 11)
    os.symlink(elsewhere, root / "surprise")
    return root, elsewhere


def test_a_linked_folder_outside_the_root_is_skipped_with_its_target(linked_folder):
    root, elsewhere = linked_folder
    scan = load_corpus("folder", root, labels="all")
    assert set(scan.items["emotion"]) == {"angry", "sad"} and len(scan.items) == 4
    outside = {e["path"]: e for e in scan.skipped if "outside the corpus root" in e["reason"]}
    assert sorted(outside) == [str(root / "surprise" / "s1_1.wav"), str(root / "surprise" / "s2_1.wav")]
    entry = outside[str(root / "surprise" / "s1_1.wav")]
    assert entry["stage"] == "layout"
    assert entry["reason"] == (f"symbolic link outside the corpus root (to {(elsewhere / 's1_1.wav').resolve()}; "
                               "use --follow-links to read it)")
    assert scan.links == [{"path": str(root / "surprise"), "target": str(elsewhere.resolve()), "outside_root": True}]


def test_follow_links_reads_what_a_link_outside_the_root_leads_to(linked_folder):
    root, _ = linked_folder
    scan = load_corpus("folder", root, labels="all", follow_links=True)
    assert sorted(scan.items["emotion"]) == ["angry", "angry", "sad", "sad", "surprise", "surprise"]
    assert not [e for e in scan.skipped if "symbolic" in e["reason"]]
    assert [link["outside_root"] for link in scan.links] == [True]


def test_a_link_staying_inside_the_root_is_read_as_before(tmp_path):
    root = tmp_path / "corpus"
    for seed, (emotion, speaker) in enumerate([("angry", "s1"), ("sad", "s1"), ("sad", "s2")]):
        clip(root / emotion / f"{speaker}_1.wav", emotion, seed)
    clip(root / "takes" / "raw.wav", "angry", 7)  # outside the layout, inside the root
    os.symlink("../takes/raw.wav", root / "angry" / "s2_1.wav")
    scan = load_corpus("folder", root, labels="all")
    assert str(root / "angry" / "s2_1.wav") in set(scan.items["path"])
    assert scan.links == [{"path": str(root / "angry" / "s2_1.wav"), "target": str((root / "takes" / "raw.wav")),
                           "outside_root": False}]


def test_a_csv_row_naming_a_link_outside_the_root_is_skipped_unless_followed(tmp_path):
    root, elsewhere = tmp_path / "csv", tmp_path / "elsewhere"
    rows = ["path,emotion,speaker"]
    for seed, (emotion, speaker) in enumerate([("angry", "a"), ("sad", "a"), ("angry", "b"), ("sad", "b")]):
        clip(root / f"{speaker}{seed}.wav", emotion, seed)
        rows.append(f"{speaker}{seed}.wav,{emotion},{speaker}")
    clip(elsewhere / "x.wav", "angry", 20)
    os.symlink(elsewhere / "x.wav", root / "c9.wav")
    rows.append("c9.wav,angry,c")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    scan = load_corpus("csv", root, labels="all")
    assert str(root / "c9.wav") not in set(scan.items["path"]) and len(scan.items) == 4
    assert [e["reason"] for e in scan.skipped if e["path"] == str(root / "c9.wav")] == [
        f"symbolic link outside the corpus root (to {(elsewhere / 'x.wav').resolve()}; use --follow-links to read it)"]
    followed = load_corpus("csv", root / "manifest.csv", labels="all", follow_links=True)
    assert str(root / "c9.wav") in set(followed.items["path"])


def test_a_file_link_outside_the_root_of_a_published_layout_is_skipped(tmp_path):
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08"), letters="WT", texts=("a01",), seconds=0.5)
    clip(tmp_path / "elsewhere" / "take.wav", "angry", 30)
    os.symlink(tmp_path / "elsewhere" / "take.wav", root / "wav" / "10a01Wa.wav")
    scan = load_corpus("emodb", root, labels="all")
    assert "emodb/10a01Wa" not in set(scan.items["item_id"]) and len(scan.items) == 4
    assert any(e["path"] == str(root / "wav" / "10a01Wa.wav") and e["reason"].startswith(
        "symbolic link outside the corpus root") for e in scan.skipped)
    assert "emodb/10a01Wa" in set(load_corpus("emodb", root, labels="all", follow_links=True).items["item_id"])


def test_the_fail_policy_stops_at_a_link_outside_the_root(linked_folder):
    root, _ = linked_folder
    with pytest.raises(BadAudioError, match="outside the corpus root"):
        load_corpus("folder", root, labels="all", on_bad_file="fail")


def test_describe_lists_links_with_their_targets(linked_folder, capsys):
    root, elsewhere = linked_folder
    assert main(["describe", "--corpus", "folder", "--data-root", str(root), "--labels", "all"]) == 0
    out = capsys.readouterr().out
    assert f"link {root / 'surprise'} -> {elsewhere.resolve()} (outside the corpus root; not read" in out
    assert f"skipped (layout) {root / 'surprise' / 's1_1.wav'}: symbolic link outside the corpus root" in out
    assert main(["describe", "--corpus", "folder", "--data-root", str(root), "--labels", "all", "--json",
                 "--follow-links"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_items"] == 6
    assert info["links"] == [{"path": str(root / "surprise"), "target": str(elsewhere.resolve()), "outside_root": True}]


def test_follow_links_reaches_the_run_config_and_its_fingerprint_only_when_given():
    assert run_options(run_parser().parse_args(["--follow-links"]))["follow_links"] is True
    assert run_options(run_parser().parse_args([]))["follow_links"] is False
    # it changes which files are items, hence results: part of the experiment, not of its execution
    assert Experiment(follow_links=True).fingerprint() != Experiment().fingerprint()
    assert "follow_links" in Experiment().to_dict() and "follow_links" not in Execution().to_dict()


def test_a_root_reached_through_a_link_is_not_outside_itself(linked_folder, tmp_path):
    root, _ = linked_folder
    os.symlink(root, tmp_path / "alias")
    scan = load_corpus("folder", tmp_path / "alias", labels="all")
    assert len(scan.items) == 4 and scan.root == str(root.resolve())
    # a layout handing over its root unresolved (the synthetic corpus) keeps its files too
    records = [{"path": str(tmp_path / "alias" / "angry" / "s1_1.wav")}]
    assert _drop_links_leaving_root(records, tmp_path / "alias", follow_links=False) == (records, [])
