"""MSP-IMPROV loader on a fixture built like the release, and Malik et al. Table 3 (IEMOCAP -> MSP-IMPROV)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from emoaug.cli import main
from emoaug.datasets import available_corpora, corpus_module, load_corpus
from emoaug.datasets.base import MANIFEST_COLUMNS
from emoaug.errors import BadAudioError, EmoaugError
from emoaug.splits import audit_splits, make_splits
from tests.helpers import _stable_seed, emotion_signal, make_iemocap, write_clip, write_wav

CONSENSUS = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral", "O": "other", "X": "neutral"}
# (clip without speaker: sentence+scenario emotion, kind of recording, turn, consensus letter) per actor;
# {g} is the actor's gender letter, {o} the other one's
CLIPS = (
    ("S01A", "T", "{o}{g}01", "A"),
    ("S01H", "R", "{g}{g}01", "H"),
    ("S02S", "P", "{g}{o}01", "S"),
    ("S02N", "S", "{o}{g}02", "N"),
    ("S03A", "P", "{g}{o}02", "O"),
    ("S03H", "S", "{g}{o}03", "X"),
)


def clip_id(sentence: str, gender: str, session: int, kind: str, turn: str) -> str:
    other = "M" if gender == "F" else "F"
    return f"{sentence}-{gender}{session:02d}-{kind}-{turn.format(g=gender, o=other)}"


def make_msp_improv(root: Path, sessions=(1, 2), *, with_audio_folder: bool = True, label_name: str = "Evalution.txt",
                    encoding: str = "utf-8", clips=CLIPS, seconds: float = 0.4) -> Path:
    """``root/Audio/session{n}/<S01A>/<kind>/MSP-IMPROV-<clip>.wav`` (+ the .avi beside it) for F0n and M0n, and
    ``root/<label_name>`` with a ``UTD-IMPROV-<clip>.avi; <letter>; A:..`` summary line and two evaluator lines
    per clip. Returns the release folder."""
    root = Path(root)
    audio = root / "Audio" if with_audio_folder else root
    lines = []
    for session in sessions:
        for gender in "FM":
            for sentence, kind, turn, letter in clips:
                clip = clip_id(sentence, gender, session, kind, turn)
                folder = audio / f"session{session}" / sentence / kind
                write_clip(folder / f"MSP-IMPROV-{clip}.wav", CONSENSUS[letter], sr=16000, seconds=seconds,
                           seed=_stable_seed(clip))
                (folder / f"MSP-IMPROV-{clip}.avi").write_bytes(b"RIFF....AVI ")
                lines += [f"UTD-IMPROV-{clip}.avi; {letter}; A:3.000000; V:2.500000; D:3.000000 ; N:3.200000;",
                          "p01; Angry; Frustrated; A:3.0; V:2.0; D:3.0; N:3.0;",
                          "p02; Neutral; ; A:3.0; V:3.0; D:3.0; N:3.5;", ""]
    root.mkdir(parents=True, exist_ok=True)
    (root / label_name).write_text("\n".join(lines) + "\n", encoding=encoding)
    return root


def _reasons(scan) -> dict[str, str]:
    return {Path(entry["path"]).name: entry["reason"] for entry in scan.skipped}


def test_items_labels_speakers_and_scenarios(tmp_path):
    root = make_msp_improv(tmp_path / "MSP-IMPROV", sessions=(1, 2))
    scan = load_corpus("msp-improv", root, labels="4class")
    items = scan.items
    assert list(items.columns) == [*MANIFEST_COLUMNS, "scenario", "session"]
    assert items["item_id"].is_unique and items["item_id"].tolist() == sorted(items["item_id"])
    # 2 sessions x 2 actors x 4 clips with an A/H/S/N consensus; O is "other", X no agreement
    assert len(items) == 16 and scan.labels == ("neutral", "happy", "sad", "angry")
    assert items["emotion"].value_counts().to_dict() == dict.fromkeys(("angry", "happy", "sad", "neutral"), 4)
    assert scan.excluded == {"no_agreement": 4, "other": 4}
    assert sorted(items["speaker"].unique()) == ["msp-improv/F01", "msp-improv/F02", "msp-improv/M01",
                                                 "msp-improv/M02"]
    assert items.groupby("speaker")["gender"].first().to_dict() == {
        "msp-improv/F01": "female", "msp-improv/F02": "female", "msp-improv/M01": "male", "msp-improv/M02": "male"}
    row = items.set_index("item_id").loc["msp-improv/MSP-IMPROV-S01A-M02-T-FM01"]
    assert (row.speaker, row.gender, row.emotion, row.raw_label, row.scenario, row.text_id) == (
        "msp-improv/M02", "male", "angry", "A", "T", "S01")
    assert row.path.endswith("Audio/session2/S01A/T/MSP-IMPROV-S01A-M02-T-FM01.wav")
    # the session is the actor's number: both actors of a session share it
    assert items.groupby("speaker")["session"].agg(set).to_dict() == {
        "msp-improv/F01": {"session1"}, "msp-improv/F02": {"session2"}, "msp-improv/M01": {"session1"},
        "msp-improv/M02": {"session2"}}
    read = items.set_index("item_id").loc["msp-improv/MSP-IMPROV-S01H-F01-R-FF01"]
    assert (read.emotion, read.scenario, read.text_id) == ("happy", "R", "S01")
    assert items.groupby("scenario")["text_id"].agg(lambda t: sorted(set(t))).to_dict() == {
        "P": [""], "R": ["S01"], "S": [""], "T": ["S01"]}  # other turns say free words
    # the label file is read, the videos beside the audio are other files, nothing else is left over
    assert {Path(e["path"]).suffix for e in scan.skipped} == {".avi"}
    assert all(e["stage"] == "layout" and e["reason"] == "not audio (.avi)" for e in scan.skipped)
    assert len(scan.skipped) == 2 * 2 * len(CLIPS)


def test_all_labels_keep_other_and_drop_no_agreement(tmp_path):
    root = make_msp_improv(tmp_path / "MSP-IMPROV", sessions=(3,))
    scan = load_corpus("msp-improv", root, labels="all")
    assert scan.labels == ("neutral", "happy", "sad", "angry", "other")
    assert scan.items["emotion"].value_counts().to_dict() == dict.fromkeys(scan.labels, 2)
    assert scan.excluded == {"no_agreement": 2}
    assert set(scan.items.loc[scan.items["emotion"] == "other", "raw_label"]) == {"O"}


@pytest.mark.parametrize(("where", "label_name", "with_audio_folder", "encoding"), [
    ("release", "Evaluation.txt", True, "utf-8-sig"),  # the corrected spelling some copies use, saved with a BOM
    ("parent", "Evalution.txt", True, "utf-8"),  # DIR holds the release folder
    ("release", "Evalution.txt", False, "utf-8"),  # session folders beside the label file, no Audio/
])
def test_layout_variants(tmp_path, where, label_name, with_audio_folder, encoding):
    release = make_msp_improv(tmp_path / "MSP-IMPROV", sessions=(4,), label_name=label_name,
                              with_audio_folder=with_audio_folder, encoding=encoding)
    scan = load_corpus("msp-improv", release if where == "release" else tmp_path, labels="4class")
    assert len(scan.items) == 8 and scan.n_speakers == 2
    assert {Path(e["path"]).suffix for e in scan.skipped} == {".avi"}


def test_skipped_files_say_why(tmp_path):
    root = make_msp_improv(tmp_path, sessions=(5,))
    clip = emotion_signal("sad", seconds=0.4)
    folder = root / "Audio" / "session5" / "S04N" / "P"
    names = {
        "notes.wav": "name does not follow the MSP-IMPROV scheme",
        "MSP-IMPROV-S04N-F05-P-FM01.wav": "no label for S04N-F05-P-FM01 in Evalution.txt",
        "MSP-IMPROV-S04N-F05-Q-FM01.wav": "unknown MSP-IMPROV recording kind 'Q' (T, R, P, S)",
        "MSP-IMPROV-S04N-F07-P-FM01.wav": "unknown MSP-IMPROV session '07' in F07 (01..06)",
        "MSP-IMPROV-S21N-F05-P-FM01.wav": "unknown MSP-IMPROV sentence '21' (01..20)",
        "MSP-IMPROV-S04N-M05-P-MF09.wav": "unknown MSP-IMPROV consensus code 'Z' for S04N-M05-P-MF09",
    }
    for name in names:
        write_wav(folder / name, clip, 16000)
    with open(root / "Evalution.txt", "a") as table:
        table.write("UTD-IMPROV-S04N-M05-P-MF09.avi; Z; A:3.0; V:3.0; D:3.0 ; N:3.0;\n")
        table.write("UTD-IMPROV-S02N-F05-S-MF02.avi; A; A:3.0; V:3.0; D:3.0 ; N:3.0;\n")  # says N above
    write_wav(root / "stray.wav", clip, 16000)  # beside Audio/: not where the layout reads audio
    scan = load_corpus("msp-improv", root, labels="4class")
    assert len(scan.items) == 7
    reasons = _reasons(scan)
    conflicting = "conflicting consensus labels for S02N-F05-S-MF02 in Evalution.txt"
    assert reasons["MSP-IMPROV-S02N-F05-S-MF02.wav"] == conflicting
    for name, reason in names.items():
        assert reason in reasons[name], (name, reasons[name])
    assert "audio file outside the layout" in reasons["stray.wav"]
    assert scan.excluded == {"no_agreement": 2, "other": 2}  # no consensus: kept out of every label set
    with pytest.raises(BadAudioError, match="does not follow|unknown|no label|conflicting"):
        load_corpus("msp-improv", root, labels="4class", on_bad_file="fail")


def test_missing_label_file_is_named(tmp_path):
    root = make_msp_improv(tmp_path, sessions=(6,))
    (root / "Evalution.txt").unlink()
    with pytest.raises(EmoaugError, match=r"none of the 12 file\(s\).*no label file: neither Evalution.txt nor "
                                          r"Evaluation.txt is in"):
        load_corpus("msp-improv", root)


def test_standard_split_is_leave_one_session_out(tmp_path):
    root = make_msp_improv(tmp_path / "MSP-IMPROV", sessions=(1, 2, 3))
    items = load_corpus("msp-improv", root, labels="4class").items
    folds = make_splits(items, "standard", seed=0)
    speaker = items.set_index("item_id")["speaker"]
    assert [sorted(set(speaker[f.test])) for f in folds] == [
        [f"msp-improv/F0{n}", f"msp-improv/M0{n}"] for n in (1, 2, 3)]  # both actors of a session together
    for fold in folds:
        assert len(set(speaker[fold.val])) == 1 and not set(speaker[fold.val]) & set(speaker[fold.train])
    audit = audit_splits(items, folds, "standard")
    assert audit["standard"] == "leave-one-session-out (3 sessions)"
    assert audit["test_coverage"]["every_item_tested_once"]


def test_registry_and_describe(tmp_path, capsys):
    assert "msp-improv" in available_corpora()
    module = corpus_module("msp-improv")
    assert module.NAME == "msp-improv" and "Evalution.txt" in module.WHERE_TO_GET
    root = make_msp_improv(tmp_path / "MSP-IMPROV", sessions=(1,))
    assert main(["describe", "--corpus", "msp-improv", "--data-root", str(root), "--labels", "4class"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"msp-improv at .*MSP-IMPROV: 8 items, 2 speakers", out)
    assert re.search(r"angry\s+2", out) and re.search(r"neutral\s+2", out)
    assert "excluded by --labels 4class: {'no_agreement': 2, 'other': 2}" in out
    assert "12 file(s) skipped at layout: not audio: " in out and "MSP-IMPROV-S01A-F01-T-MF01.avi" in out
    assert main(["describe", "--corpus", "msp-improv", "--data-root", str(root), "--labels", "4class",
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["per_speaker"] == {"msp-improv/F01": 4, "msp-improv/M01": 4}
    assert info["per_gender"] == {"female": 4, "male": 4}


def test_iemocap_to_msp_improv_prints_malik_table3_with_the_paper_rows(tmp_path, capsys):
    iemocap = make_iemocap(tmp_path / "IEMOCAP_full_release", sessions=(1, 2), codes=("neu", "hap", "sad", "ang"))
    msp = make_msp_improv(tmp_path / "MSP-IMPROV", sessions=(1,))
    out = tmp_path / "runs"
    code = main(["--gen", "specaugment", "--corpus", "iemocap", "--data-root", str(iemocap), "--test-corpus",
                 "msp-improv", "--test-data-root", str(msp), "--labels", "4class", "--protocol", "none",
                 "--profile", "smoke", "--epochs", "1", "--reference", "off", "--out", str(out), "--no-mlflow"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "[malik2023_table03]" in printed and "tested on msp-improv" in printed
    run_dir = next(p for p in out.iterdir() if p.is_dir())
    tested = pd.read_csv(run_dir / "test_manifest.csv")
    assert set(tested["corpus"]) == {"msp-improv"} and len(tested) == 8 and "scenario" in tested.columns
    t03 = pd.read_csv(run_dir / "tables" / "malik2023_table03.csv", dtype=str).fillna("")
    ours = t03[t03["source"] == "ours"]
    paper = t03[t03["source"] == "paper"].set_index("generator / study")
    assert list(ours["generator / study"]) == ["specaugment"]
    assert ours["real+syn"].str.fullmatch(r"\d+\.\d+").all()
    assert len(paper) == 5 and paper.loc["Malik et al. (IDDPM+BERT)", "real+syn"] == "48.22"
    assert paper.loc["Bao et al. (CycleGAN)", "real"] == "45.58"
    note = (run_dir / "tables" / "malik2023_table03.md").read_text()
    assert "70 %" in note and "every item of the test corpus" in note
