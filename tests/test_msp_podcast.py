"""MSP-Podcast loader on a fixture built like the release (Labels/labels_consensus.csv beside Audios/), with its
quirks: Unknown speakers, missing audio, duplicate rows, unlabelled audio, broken label tables; and its release
partitions under --split standard."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from emoaug.cli import main
from emoaug.datasets import available_corpora, corpus_module, load_corpus
from emoaug.datasets.base import MANIFEST_COLUMNS
from emoaug.errors import BadAudioError, EmoaugError
from emoaug.splits import audit_splits, make_splits
from tests.helpers import _stable_seed, write_clip

HEADER = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
CANONICAL = {"A": "angry", "S": "sad", "H": "happy", "N": "neutral", "F": "fear", "D": "disgust", "U": "surprise",
             "C": "other", "O": "other", "X": "neutral"}
# (speaker id, gender, partition) -> codes of its segments
SPEAKERS = (
    ("127", "Female", "Train"), ("128", "Male", "Train"), ("301", "Female", "Development"),
    ("455", "Male", "Test1"), ("902", "Female", "Test2"),
)
CODES = ("A", "S", "H", "N")


def segment(podcast: int, turn: int) -> str:
    return f"MSP-PODCAST_{podcast:04d}_{turn:04d}"


def make_msp_podcast(root: Path, *, extra_rows: tuple[str, ...] = (), codes=CODES, speakers=SPEAKERS,
                     seconds: float = 0.3) -> Path:
    """``root/Audios/<segment>.wav`` and ``root/Labels/labels_consensus.csv``: per speaker one podcast with one
    segment per code, plus ``extra_rows`` (raw CSV lines, no audio written). Returns the release folder."""
    root = Path(root)
    lines = [HEADER]
    for podcast, (speaker, gender, partition) in enumerate(speakers, start=1):
        for turn, code in enumerate(codes, start=1):
            name = segment(podcast, turn)
            write_clip(root / "Audios" / f"{name}.wav", CANONICAL[code], sr=16000, seconds=seconds,
                       seed=_stable_seed(name))
            lines.append(f"{name}.wav,{code},{3 + turn / 10:.1f},4.0,{2 + turn / 10:.1f},{speaker},{gender},"
                         f"{partition}")
    lines += extra_rows
    (root / "Labels").mkdir(parents=True, exist_ok=True)
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "Labels" / "labels_detailed.csv").write_text("FileName,Annotator\n")  # not read: an other file
    return root


def _reasons(scan) -> dict[str, tuple[str, str]]:
    return {Path(entry["path"]).name: (entry["stage"], entry["reason"]) for entry in scan.skipped}


def test_items_labels_speakers_and_columns(tmp_path):
    root = make_msp_podcast(tmp_path / "MSP-PODCAST-Publish-1.11")
    scan = load_corpus("msp-podcast", root, labels="4class")
    items = scan.items
    assert list(items.columns) == [*MANIFEST_COLUMNS, "split_set", "arousal", "valence", "dominance"]
    assert len(items) == 20 and scan.labels == ("neutral", "happy", "sad", "angry")
    assert items["emotion"].value_counts().to_dict() == dict.fromkeys(("angry", "sad", "happy", "neutral"), 5)
    assert sorted(items["speaker"].unique()) == [f"msp-podcast/{s}" for s in ("127", "128", "301", "455", "902")]
    row = items.set_index("item_id").loc["msp-podcast/MSP-PODCAST_0002_0003"]
    assert (row.speaker, row.gender, row.emotion, row.raw_label, row.text_id, row.split_set) == (
        "msp-podcast/128", "male", "happy", "H", "", "Train")
    assert (row.arousal, row.valence, row.dominance) == (3.3, 4.0, 2.3)
    assert row.path.endswith("Audios/MSP-PODCAST_0002_0003.wav")
    assert items.groupby("split_set")["speaker"].nunique().to_dict() == {
        "Development": 1, "Test1": 1, "Test2": 1, "Train": 2}
    # the label table is read; the other table is an other file; nothing else is left over
    assert [(Path(e["path"]).name, e["stage"], e["reason"]) for e in scan.skipped] == [
        ("labels_detailed.csv", "layout", "not audio (.csv)")]
    # parent of the release folder works too
    assert len(load_corpus("msp-podcast", tmp_path, labels="4class").items) == 20


def test_codes_map_to_canonical_labels_and_no_agreement_is_excluded(tmp_path):
    root = make_msp_podcast(tmp_path, codes=("A", "S", "H", "U", "F", "D", "C", "N", "O", "X"),
                            speakers=SPEAKERS[:2])
    six = load_corpus("msp-podcast", root)  # 6class
    assert six.labels == ("neutral", "happy", "sad", "angry", "fear", "disgust")
    assert six.items["emotion"].value_counts().to_dict() == dict.fromkeys(six.labels, 2)
    assert six.excluded == {"contempt": 2, "no_agreement": 2, "other": 2, "surprise": 2}
    every = load_corpus("msp-podcast", root, labels="all")
    assert every.labels == ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise", "contempt", "other")
    assert every.excluded == {"no_agreement": 2}  # X: no agreement, in no label set
    assert dict(zip(every.items["raw_label"], every.items["emotion"])) == {
        "A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust", "C": "contempt",
        "N": "neutral", "O": "other"}


def test_quirks_become_skipped_entries_or_documented_items(tmp_path):
    root = make_msp_podcast(tmp_path, speakers=SPEAKERS[:2])
    audios = root / "Audios"
    for name, emotion in (("MSP-PODCAST_0050_0001", "sad"), ("MSP-PODCAST_0050_0002", "angry"),
                          ("MSP-PODCAST_0051_0001", "happy"), ("MSP-PODCAST_0052_0001", "happy"),
                          ("MSP-PODCAST_0053_0001", "sad"), ("MSP-PODCAST_0054_0001", "sad")):
        write_clip(audios / "sub" / f"{name}.wav", emotion, sr=16000, seconds=0.3, seed=_stable_seed(name))
    extra = (
        # two segments of unknown speakers: each its own speaker (the second without extension, at depth)
        "MSP-PODCAST_0050_0001.wav,S,2.0,2.0,3.0,Unknown,Unknown,Train",
        "MSP-PODCAST_0050_0002,A,,2.0,5.0,Unknown,Female,Train",  # no arousal rating: NaN
        # a duplicate of an identical row is one item; conflicting rows skip the file
        "MSP-PODCAST_0051_0001.wav,H,5.0,6.0,4.0,127,Female,Train",
        "MSP-PODCAST_0051_0001.wav,H,5.0,6.0,4.0,127,Female,Train",
        "MSP-PODCAST_0052_0001.wav,H,5.0,6.0,4.0,128,Male,Train",
        "MSP-PODCAST_0052_0001.wav,A,5.0,6.0,4.0,128,Male,Train",
        # labelled, but no audio
        "MSP-PODCAST_0099_0001.wav,N,4.0,4.0,4.0,128,Male,Test1",
        # an unknown emotion code; a row without a file name
        "MSP-PODCAST_0053_0001.wav,Z,4.0,4.0,4.0,128,Male,Train",
        ",N,4.0,4.0,4.0,128,Male,Train",
    )
    table = root / "Labels" / "labels_consensus.csv"
    table.write_text(table.read_text() + "\n".join(extra) + "\n")
    write_clip(root / "stray.wav", "sad", sr=16000, seconds=0.3, seed=1)  # beside Audios/: outside the layout

    scan = load_corpus("msp-podcast", root, labels="4class")
    items = scan.items.set_index("item_id")
    assert len(items) == 8 + 3
    unknown = items.loc[["msp-podcast/MSP-PODCAST_0050_0001", "msp-podcast/MSP-PODCAST_0050_0002"]]
    assert unknown["speaker"].tolist() == ["msp-podcast/unknown-MSP-PODCAST_0050_0001",
                                           "msp-podcast/unknown-MSP-PODCAST_0050_0002"]  # never pooled
    assert unknown["gender"].tolist() == ["", "female"]
    assert items.loc["msp-podcast/MSP-PODCAST_0051_0001", "speaker"] == "msp-podcast/127"
    reasons = _reasons(scan)
    assert reasons["MSP-PODCAST_0052_0001.wav"] == (
        "scan", "conflicting rows in labels_consensus.csv (they differ in EmoClass)")
    stage, reason = reasons["MSP-PODCAST_0099_0001.wav"]
    assert stage == "scan" and reason.startswith("labelled in Labels/labels_consensus.csv, but the audio file is "
                                                 "missing")
    assert reasons["MSP-PODCAST_0054_0001.wav"] == (
        "layout", "audio without a row in Labels/labels_consensus.csv (unlabelled segment)")
    assert reasons["MSP-PODCAST_0053_0001.wav"][1].startswith("unknown MSP-Podcast emotion code (EmoClass 'Z'")
    nameless = [e for e in scan.skipped if e["reason"] == "label row without a FileName"]
    assert len(nameless) == 1 and nameless[0]["path"] == f"{table}:{len(SPEAKERS[:2]) * 4 + len(extra) + 1}"
    assert reasons["stray.wav"] == ("layout", "audio file outside the layout (MSP-PODCAST_0001_0008.wav at any "
                                              "depth under DIR/Audios/, labelled in DIR/Labels/labels_consensus.csv)")
    assert items.loc["msp-podcast/MSP-PODCAST_0051_0001", ["arousal", "valence", "dominance"]].tolist() == [
        5.0, 6.0, 4.0]
    assert math.isnan(items.loc["msp-podcast/MSP-PODCAST_0050_0002", "arousal"])
    assert items.loc["msp-podcast/MSP-PODCAST_0050_0002", "dominance"] == 5.0
    # a bad row is a bad file under --on-bad-file fail; unlabelled audio alone is not
    with pytest.raises(BadAudioError, match="conflicting rows|missing|unknown MSP-Podcast emotion code|FileName"):
        load_corpus("msp-podcast", root, labels="4class", on_bad_file="fail")


def test_unlabelled_audio_does_not_stop_a_failing_run(tmp_path):
    root = make_msp_podcast(tmp_path, speakers=SPEAKERS[:2])
    write_clip(root / "Audios" / "MSP-PODCAST_0077_0001.wav", "sad", sr=16000, seconds=0.3, seed=3)
    scan = load_corpus("msp-podcast", root, labels="4class", on_bad_file="fail")
    assert len(scan.items) == 8 and "unlabelled segment" in _reasons(scan)["MSP-PODCAST_0077_0001.wav"][1]


@pytest.mark.parametrize(("content", "message"), [
    (None, r"no label table: neither labels_consensus.csv nor labels_concensus.csv is in .*Labels"),
    ("FileName,Emotion,SpkrID\nMSP-PODCAST_0001_0001.wav,A,127\n",
     r"labels_consensus.csv is not an MSP-Podcast consensus label table: missing column\(s\) EmoClass, Split_Set"),
    ("", r"labels_consensus.csv is not an MSP-Podcast consensus label table: missing column\(s\) FileName"),
    (b"\xff\xfe\x00F\x00i\x00l\x00e", r"cannot read the label table .*labels_consensus.csv"),
])
def test_missing_or_malformed_label_table_is_one_error_naming_the_file(tmp_path, content, message):
    root = make_msp_podcast(tmp_path, speakers=SPEAKERS[:1])
    table = root / "Labels" / "labels_consensus.csv"
    if content is None:
        table.unlink()
    elif isinstance(content, bytes):
        table.write_bytes(content)
    else:
        table.write_text(content)
    with pytest.raises(EmoaugError, match=message) as info:
        load_corpus("msp-podcast", root)
    assert "\n" not in str(info.value)


def test_older_spelling_of_the_label_table(tmp_path):
    root = make_msp_podcast(tmp_path, speakers=SPEAKERS[:1])
    (root / "Labels" / "labels_consensus.csv").rename(root / "Labels" / "labels_concensus.csv")
    assert len(load_corpus("msp-podcast", root, labels="4class").items) == 4


def test_standard_split_is_the_release_partitions(tmp_path):
    # two segments of one podcast whose speakers are unknown, one in Train and one in Test1
    unknown = ("MSP-PODCAST_0060_0001.wav,S,3.0,3.0,3.0,Unknown,Unknown,Train",
               "MSP-PODCAST_0060_0002.wav,S,3.0,3.0,3.0,Unknown,Unknown,Test1")
    root = make_msp_podcast(tmp_path, extra_rows=unknown)
    for name in ("MSP-PODCAST_0060_0001", "MSP-PODCAST_0060_0002"):
        write_clip(root / "Audios" / f"{name}.wav", "sad", sr=16000, seconds=0.3, seed=_stable_seed(name))
    items = load_corpus("msp-podcast", root, labels="4class").items
    (fold,) = make_splits(items, "standard", seed=0)
    partition = items.set_index("item_id")["split_set"]
    assert set(partition[fold.train]) == {"Train"} and len(fold.train) == 9
    assert set(partition[fold.val]) == {"Development"} and len(fold.val) == 4
    assert set(partition[fold.test]) == {"Test1"} and len(fold.test) == 5
    assert "msp-podcast/MSP-PODCAST_0060_0002" in fold.test and "msp-podcast/MSP-PODCAST_0060_0001" in fold.train
    audit = audit_splits(items, [fold], "standard")
    assert audit["standard"] == "release partitions (train Train, validation Development, test Test1)"
    assert audit["left_out"] == {"Test2": 4} and audit["speaker_independent"] is True  # unknown speakers: no leak
    assert all(not shared for shared in audit["folds"][0]["speaker_overlap"].values())


def test_describe_prints_the_corpus(tmp_path, capsys):
    assert "msp-podcast" in available_corpora()
    module = corpus_module("msp-podcast")
    assert module.NAME == "msp-podcast" and "labels_consensus.csv" in module.WHERE_TO_GET
    root = make_msp_podcast(tmp_path / "MSP-PODCAST", speakers=SPEAKERS[:2])
    assert main(["describe", "--corpus", "msp-podcast", "--data-root", str(root), "--labels", "4class"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"msp-podcast at .*MSP-PODCAST: 8 items, 2 speakers", out)
    assert re.search(r"angry\s+2", out)
    assert main(["describe", "--corpus", "msp-podcast", "--data-root", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["per_speaker"] == {"msp-podcast/127": 4, "msp-podcast/128": 4}
