"""Corpus loaders: naming schemes, speakers, genders, label sets, merges, bad files, errors."""

from __future__ import annotations

import re
import shutil
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from tests.helpers import (
    emotion_signal,
    make_cremad,
    make_csv,
    make_emodb,
    make_folder,
    make_iemocap,
    make_ravdess,
    write_riff_wav,
    write_wav,
)

from emoaug.datasets import available_corpora, corpus_module, load_corpus
from emoaug.datasets.base import MANIFEST_COLUMNS
from emoaug.datasets.folder import SpeakerWarning
from emoaug.splits import audit_splits, make_splits
from emoaug.errors import BadAudioError, EmoaugError

SIX = ("neutral", "happy", "sad", "angry", "fear", "disgust")


def _reasons(scan) -> dict[str, str]:
    return {entry["path"].rsplit("/", 1)[-1]: entry["reason"] for entry in scan.skipped}


def _check_manifest(scan) -> None:
    items = scan.items
    assert list(items.columns) == [*MANIFEST_COLUMNS, *getattr(corpus_module(scan.corpus), "EXTRA_COLUMNS", ())]
    assert isinstance(items.index, pd.RangeIndex) and items["item_id"].is_unique
    assert items["item_id"].tolist() == sorted(items["item_id"])
    assert items["item_id"].str.startswith(f"{scan.corpus}/").all()
    assert items["speaker"].str.startswith(f"{scan.corpus}/").all()
    assert set(items["emotion"]) <= set(scan.labels)
    assert items["sha1"].str.fullmatch(r"[0-9a-f]{40}").all()
    assert (items["duration"] > 0).all()


# --------------------------------------------------------------------------- emodb


def test_emodb_six_classes(tmp_path):
    root = make_emodb(tmp_path, speakers=("03", "08", "10", "13"), seconds=0.3)
    scan = load_corpus("emodb", root)
    _check_manifest(scan)
    assert scan.labels == SIX
    assert len(scan.items) == 4 * 2 * 6 and scan.n_speakers == 4
    assert scan.excluded == {"boredom": 8} and scan.skipped == []
    assert scan.items["emotion"].value_counts().to_dict() == dict.fromkeys(SIX, 8)
    genders = scan.items.groupby("speaker")["gender"].first().to_dict()
    assert genders == {"emodb/03": "male", "emodb/08": "female", "emodb/10": "male", "emodb/13": "female"}
    row = scan.items.set_index("item_id").loc["emodb/03a01Wa"]
    assert (row.emotion, row.raw_label, row.text_id, row.sample_rate, row.channels) == ("angry", "W", "a01", 16000, 1)
    assert row.duration == pytest.approx(0.3)


def test_emodb_all_and_four_class_label_sets(tmp_path):
    root = make_emodb(tmp_path, speakers=("09", "11"), seconds=0.3)
    everything = load_corpus("emodb", root, labels="all")
    assert everything.labels == (*SIX, "boredom") and len(everything.items) == 2 * 2 * 7
    assert everything.excluded == {}
    four = load_corpus("emodb", root, labels="4class")
    assert four.labels == ("neutral", "happy", "sad", "angry") and len(four.items) == 2 * 2 * 4
    assert four.excluded == {"boredom": 4, "disgust": 4, "fear": 4}


def test_emodb_accepts_the_wav_folder_itself(tmp_path):
    make_emodb(tmp_path, speakers=("12",), letters="WN", seconds=0.3, in_wav_subdir=False)
    assert len(load_corpus("emodb", tmp_path).items) == 4


def test_emodb_names_off_the_scheme_are_skipped_with_reasons(tmp_path):
    root = make_emodb(tmp_path, speakers=("14",), letters="N", seconds=0.3)
    clip = emotion_signal("neutral", seconds=0.3)
    for name in ("notes.wav", "03a03Na.wav", "03a01Xa.wav", "99a01Na.wav"):
        write_wav(root / "wav" / name, clip, 16000)
    scan = load_corpus("emodb", root)
    assert len(scan.items) == 2
    reasons = _reasons(scan)
    assert "EmoDB scheme" in reasons["notes.wav"]
    assert "'a03'" in reasons["03a03Na.wav"]
    assert "'X'" in reasons["03a01Xa.wav"]
    assert "'99'" in reasons["99a01Na.wav"]
    with pytest.raises(BadAudioError, match="does not follow|unknown"):
        load_corpus("emodb", root, on_bad_file="fail")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("zero_length", "zero-length file"),
        ("text", "not a readable audio file"),
        ("nan", "NaN or infinite"),
        ("silent", "all-silent"),
        ("no_samples", "empty audio"),
    ],
)
def test_bad_audio_is_skipped_or_fails(tmp_path, kind, reason):
    root = make_emodb(tmp_path, speakers=("15",), letters="WN", seconds=0.3)
    bad = root / "wav" / "15a01Wa.wav"
    clip = emotion_signal("angry", seconds=0.3)
    if kind == "zero_length":
        bad.write_bytes(b"")
    elif kind == "text":
        bad.write_text("<html>403 Forbidden</html>")
    elif kind == "nan":
        write_riff_wav(bad, np.where(np.arange(len(clip)) == 3, np.nan, clip), 16000, bits=32, float_format=True)
    elif kind == "silent":
        write_wav(bad, np.zeros(len(clip)), 16000)
    else:
        write_wav(bad, np.zeros(0), 16000)
    scan = load_corpus("emodb", root)
    assert len(scan.items) == 3 and "emodb/15a01Wa" not in set(scan.items["item_id"])
    assert reason in _reasons(scan)["15a01Wa.wav"]
    with pytest.raises(BadAudioError, match=reason):
        load_corpus("emodb", root, on_bad_file="fail")


def test_awkward_but_valid_wavs_load(tmp_path):
    root = make_emodb(tmp_path, speakers=("16",), letters="T", seconds=0.5)
    clip = emotion_signal("sad", seconds=0.5)
    wav = root / "wav"
    write_riff_wav(wav / "16b01Ta.wav", clip, 16000, chunks_before_fmt=[(b"LIST", b"INFOx")], pad_odd_chunks=False)
    write_riff_wav(wav / "16b02Ta.wav", np.stack([clip, clip], 1), 44100, bits=24, data_size=0)
    write_riff_wav(wav / "16b03Ta.wav", clip, 16000, drop_tail_bytes=2000)
    items = load_corpus("emodb", root, min_duration=0.1).items.set_index("item_id")  # 16b02Ta: 0.18 s
    assert len(items) == 5
    assert (items.loc["emodb/16b02Ta", "channels"], items.loc["emodb/16b02Ta", "sample_rate"]) == (2, 44100)
    assert items.loc["emodb/16b03Ta", "duration"] == pytest.approx(0.5 - 1000 / 16000)


# --------------------------------------------------------------------------- ravdess


def test_ravdess_speech_only_recursive_with_stereo(tmp_path):
    make_ravdess(tmp_path / "download" / "Audio_Speech", actors=(1, 2, 3, 4), stereo_actors=(2,), add_song_and_video=True)
    scan = load_corpus("ravdess", tmp_path)
    _check_manifest(scan)
    assert len(scan.items) == 4 * 6 and scan.n_speakers == 4
    assert scan.excluded == {"calm": 4, "surprise": 4}
    # song and audio-visual files are not errors, just not this corpus: listed as unused files
    assert {e["stage"] for e in scan.skipped} == {"layout"}
    assert all(re.search(r"/0[12]-|/03-02-", e["path"]) and "outside the layout" in e["reason"] for e in scan.skipped)
    assert not scan.items["item_id"].str.match(r"ravdess/0[12]-|ravdess/03-02-").any()
    genders = scan.items.groupby("speaker")["gender"].first().to_dict()
    assert genders == {"ravdess/01": "male", "ravdess/02": "female", "ravdess/03": "male", "ravdess/04": "female"}
    channels = scan.items.groupby("speaker")["channels"].max().to_dict()
    assert channels["ravdess/02"] == 2 and channels["ravdess/01"] == 1
    fear = scan.items.set_index("item_id").loc["ravdess/03-01-06-01-01-01-03"]
    assert (fear.emotion, fear.raw_label, fear.text_id) == ("fear", "06", "01")


def test_ravdess_all_labels_and_bad_names(tmp_path):
    root = make_ravdess(tmp_path, actors=(5,))
    clip = emotion_signal("sad", seconds=0.3)
    for name in ("03-01-09-01-01-01-05.wav", "03-01-04-01-01-01-25.wav", "Actor_05.wav"):
        write_wav(root / "Actor_05" / name, clip, 16000)
    scan = load_corpus("ravdess", root, labels="all")
    assert scan.labels == ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise")
    assert len(scan.items) == 8
    reasons = _reasons(scan)
    assert "emotion code '09'" in reasons["03-01-09-01-01-01-05.wav"]
    assert "actor '25'" in reasons["03-01-04-01-01-01-25.wav"]
    assert "RAVDESS scheme" in reasons["Actor_05.wav"]


def test_duplicate_copies_are_skipped_not_double_counted(tmp_path):
    make_ravdess(tmp_path / "first", actors=(7,), emotion_codes=("01", "05"))
    shutil.copytree(tmp_path / "first", tmp_path / "second")
    scan = load_corpus("ravdess", tmp_path)
    assert len(scan.items) == 2
    assert len(scan.skipped) == 2 and all("duplicate item id" in e["reason"] for e in scan.skipped)


# --------------------------------------------------------------------------- cremad


def test_cremad_genders_from_demographics_and_zero_byte_file(tmp_path):
    make_cremad(tmp_path, demographics={1001: "Male", 1002: "Female"}, zero_length=["1076_MTI_SAD_XX.wav"])
    scan = load_corpus("cremad", tmp_path)
    _check_manifest(scan)
    assert len(scan.items) == 4 * 2 * 6 and scan.n_speakers == 4
    assert _reasons(scan) == {"1076_MTI_SAD_XX.wav": "zero-length file"}
    genders = scan.items.groupby("speaker")["gender"].first().to_dict()
    assert genders == {"cremad/1001": "male", "cremad/1002": "female", "cremad/1003": "", "cremad/1004": ""}
    row = scan.items.set_index("item_id").loc["cremad/1003_TIE_DIS_XX"]
    assert (row.emotion, row.raw_label, row.text_id) == ("disgust", "DIS", "TIE")
    with pytest.raises(BadAudioError, match="1076_MTI_SAD_XX.wav: zero-length file"):
        load_corpus("cremad", tmp_path, on_bad_file="fail")


def test_cremad_flat_folder_levels_and_bad_names(tmp_path):
    make_cremad(tmp_path, actors=(1091,), sentences=("WSI",), level="HI", in_audiowav=False)
    clip = emotion_signal("sad", seconds=0.3)
    for name in ("1092_WSI_SAD_HI.wav", "1091_XYZ_SAD_HI.wav", "1091_WSI_BOR_HI.wav", "1091_WSI_SAD_QQ.wav"):
        write_wav(tmp_path / name, clip, 16000)
    scan = load_corpus("cremad", tmp_path, labels="4class")
    assert len(scan.items) == 4 and set(scan.items["gender"]) == {""}
    assert scan.excluded == {"disgust": 1, "fear": 1}
    reasons = _reasons(scan)
    assert "actor '1092'" in reasons["1092_WSI_SAD_HI.wav"]
    assert "sentence code 'XYZ'" in reasons["1091_XYZ_SAD_HI.wav"]
    assert "emotion code 'BOR'" in reasons["1091_WSI_BOR_HI.wav"]
    assert "level 'QQ'" in reasons["1091_WSI_SAD_QQ.wav"]


# --------------------------------------------------------------------------- iemocap


def test_iemocap_excited_merges_into_happy_for_class_sets(tmp_path):
    root = make_iemocap(tmp_path / "IEMOCAP_full_release", sessions=(1, 2))
    scan = load_corpus("iemocap", root, labels="4class")
    _check_manifest(scan)
    # per session: 2 dialogs x 2 speakers x codes; hap + exc -> happy, fru and xxx excluded
    counts = scan.items["emotion"].value_counts().to_dict()
    assert counts == {"happy": 16, "neutral": 8, "sad": 8, "angry": 8}
    happy_raw = scan.items.loc[scan.items["emotion"] == "happy", "raw_label"].value_counts().to_dict()
    assert happy_raw == {"hap": 8, "exc": 8}
    assert scan.excluded == {"frustrated": 8, "no_agreement": 8}
    assert sorted(scan.items["speaker"].unique()) == [
        "iemocap/Ses01F", "iemocap/Ses01M", "iemocap/Ses02F", "iemocap/Ses02M"
    ]  # fmt: skip
    row = scan.items.set_index("item_id").loc["iemocap/Ses01M_script01_1_F000"]
    assert (row.speaker, row.gender, row.text_id, row.emotion) == ("iemocap/Ses01F", "female", "script01_1", "neutral")
    assert list(scan.items.columns)[-1] == "session"
    assert scan.items.groupby("speaker")["session"].agg(set).to_dict() == {
        "iemocap/Ses01F": {"Ses01"}, "iemocap/Ses01M": {"Ses01"}, "iemocap/Ses02F": {"Ses02"},
        "iemocap/Ses02M": {"Ses02"}}


def test_iemocap_standard_split_is_leave_one_session_out(tmp_path):
    root = make_iemocap(tmp_path, sessions=(1, 2, 3), codes=("neu", "hap", "sad", "ang"))
    items = load_corpus("iemocap", root, labels="4class").items
    folds = make_splits(items, "standard", seed=0)
    speaker = items.set_index("item_id")["speaker"]
    assert [sorted(set(speaker[f.test])) for f in folds] == [
        [f"iemocap/Ses0{n}F", f"iemocap/Ses0{n}M"] for n in (1, 2, 3)]  # both speakers of a session together
    audit = audit_splits(items, folds, "standard")
    assert audit["standard"] == "leave-one-session-out (3 sessions)"
    assert audit["test_coverage"]["every_item_tested_once"]


def test_iemocap_all_keeps_excited_and_drops_no_agreement(tmp_path):
    make_iemocap(tmp_path / "IEMOCAP_full_release", sessions=(3,))
    scan = load_corpus("iemocap", tmp_path, labels="all")  # parent of the release folder also works
    assert scan.labels == ("neutral", "happy", "sad", "angry", "excited", "frustrated")
    assert scan.items["emotion"].value_counts().to_dict() == dict.fromkeys(scan.labels, 4)
    assert scan.excluded == {"no_agreement": 4}


def test_iemocap_wav_without_label_is_skipped(tmp_path):
    root = make_iemocap(tmp_path, sessions=(4,), codes=("sad",))
    write_wav(root / "Session4/sentences/wav/Ses04F_impro01/Ses04F_impro01_M099.wav", emotion_signal("sad"), 16000)
    scan = load_corpus("iemocap", root, labels="4class")
    assert len(scan.items) == 4
    assert "no label" in _reasons(scan)["Ses04F_impro01_M099.wav"]


# --------------------------------------------------------------------------- folder / csv


def test_folder_aliases_speakers_and_unknown_folders(tmp_path):
    root = make_folder(tmp_path, emotions=("anger", "Happiness", "sad", "neutral", "whatever"), per_speaker=2)
    scan = load_corpus("folder", root, labels="4class")
    _check_manifest(scan)
    assert len(scan.items) == 4 * 2 * 2
    assert scan.items["emotion"].value_counts().to_dict() == dict.fromkeys(("angry", "happy", "sad", "neutral"), 4)
    assert sorted(scan.items["speaker"].unique()) == ["folder/spk1", "folder/spk2"]
    assert set(scan.items.loc[scan.items["emotion"] == "happy", "raw_label"]) == {"Happiness"}
    assert len(scan.skipped) == 4 and all("unknown emotion folder 'whatever'" in e["reason"] for e in scan.skipped)


def test_folder_without_speaker_prefix_warns_and_uses_one_speaker_per_file(tmp_path):
    root = make_folder(tmp_path, emotions=("joy", "fearful"), speakers=None, per_speaker=3, ext="flac")
    with pytest.warns(SpeakerWarning, match="6 file"):
        scan = load_corpus("folder", root)
    assert len(scan.items) == 6 and scan.n_speakers == 6


def test_csv_manifest_by_file_or_folder(tmp_path):
    table = make_csv(tmp_path, emotions=("angry", "happy", "sad", "neutral"), speakers=("a", "b"), per_speaker=2)
    for root in (table, tmp_path):
        scan = load_corpus("csv", root, labels="4class")
        _check_manifest(scan)
        assert len(scan.items) == 16 and scan.n_speakers == 2
        assert scan.items.groupby("speaker")["gender"].first().to_dict() == {"csv/a": "female", "csv/b": "male"}
        assert set(scan.items["text_id"]) == {"t0", "t1"}


def test_csv_unknown_label_and_missing_file_are_skipped(tmp_path):
    rows = [
        {"path": "audio/a_angry_0.wav", "emotion": "ennui", "speaker": "a"},
        {"path": "audio/not_there.wav", "emotion": "sad", "speaker": "a"},
    ]
    table = make_csv(tmp_path, rows, emotions=("angry",), speakers=("a",), per_speaker=1)
    scan = load_corpus("csv", table)
    assert len(scan.items) == 1
    reasons = [e["reason"] for e in scan.skipped]
    assert any("unknown emotion label 'ennui'" in r and "line 3" in r for r in reasons)
    assert "missing file" in reasons


@pytest.mark.parametrize(
    ("bad_path", "message"), [("/etc/passwd", "is absolute"), ("audio/../../outside.wav", "leaves the CSV's folder")]
)
def test_csv_refuses_paths_outside_its_folder(tmp_path, bad_path, message):
    rows = [{"path": bad_path, "emotion": "sad", "speaker": "a"}]
    table = make_csv(tmp_path / "set", rows, emotions=("sad",), speakers=("a",), per_speaker=1)
    with pytest.raises(EmoaugError, match=f"manifest.csv line 3: path .*{message}"):
        load_corpus("csv", table)


def test_csv_missing_columns(tmp_path):
    (tmp_path / "manifest.csv").write_text("file,label\nx.wav,sad\n")
    with pytest.raises(EmoaugError, match="missing column"):
        load_corpus("csv", tmp_path)


# --------------------------------------------------------------------------- registry and errors


def test_registry_lists_every_corpus_and_rejects_unknown():
    assert {"emodb", "ravdess", "cremad", "iemocap", "folder", "csv", "synthetic"} <= set(available_corpora())
    with pytest.raises(EmoaugError, match="unknown corpus 'tess'.*emodb"):
        load_corpus("tess", "/tmp")
    for name in available_corpora():
        if name == "synthetic":
            continue
        module = corpus_module(name)
        assert module.NAME == name and module.WHERE_TO_GET and module.ALL_EMOTIONS


def test_missing_root_and_no_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("EMOAUG_DATA", raising=False)
    with pytest.raises(EmoaugError, match=r"corpus 'emodb' needs its files: .*emodb.*--data-root DIR or set EMOAUG_DATA"):
        load_corpus("emodb")
    with pytest.raises(EmoaugError, match=f"data root {tmp_path / 'nope'} does not exist"):
        load_corpus("emodb", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmoaugError, match=f"no audio files found under {tmp_path / 'empty'}"):
        load_corpus("cremad", tmp_path / "empty")


def test_environment_variable_names_the_parent_folder(tmp_path, monkeypatch):
    make_emodb(tmp_path / "emodb", speakers=("03",), letters="N", seconds=0.3)
    monkeypatch.setenv("EMOAUG_DATA", str(tmp_path))
    assert len(load_corpus("emodb").items) == 2
    with pytest.raises(EmoaugError, match="from EMOAUG_DATA"):
        load_corpus("ravdess")


def test_only_bad_names_is_an_error_naming_the_first(tmp_path):
    write_wav(tmp_path / "wav" / "hello.wav", emotion_signal("sad", seconds=0.3), 16000)
    with pytest.raises(EmoaugError, match="none of the 1 file.*hello.wav"):
        load_corpus("emodb", tmp_path)


def test_unknown_policy_and_label_set(tmp_path):
    root = make_emodb(tmp_path, speakers=("03",), letters="N", seconds=0.3)
    with pytest.raises(EmoaugError, match="--on-bad-file"):
        load_corpus("emodb", root, on_bad_file="ignore")
    with pytest.raises(EmoaugError, match="--labels"):
        load_corpus("emodb", root, labels="7class")


def test_label_set_with_nothing_left_is_an_error(tmp_path):
    root = make_emodb(tmp_path, speakers=("03",), letters="L", seconds=0.3)
    with pytest.raises(EmoaugError, match="no usable files with --labels 6class.*boredom 2"):
        load_corpus("emodb", root)


def test_synthetic_generates_itself_when_no_root(tmp_path, monkeypatch):
    # Stand-in for emoaug.datasets.synthetic: the registry must call ensure_corpus() for a missing root.
    generated = make_emodb(tmp_path / "gen", speakers=("03",), letters="WN", seconds=0.3)
    emodb = corpus_module("emodb")

    def scan(root):
        records, skipped = emodb.scan(root)
        return [{**r, "corpus": "synthetic", "item_id": r["item_id"].replace("emodb", "synthetic"),
                 "speaker": r["speaker"].replace("emodb", "synthetic")} for r in records], skipped  # fmt: skip

    fake = SimpleNamespace(NAME="synthetic", ALL_EMOTIONS=SIX, WHERE_TO_GET="generated", scan=scan,
                           ensure_corpus=lambda cache_dir=None, seed=0: generated)  # fmt: skip
    monkeypatch.setitem(sys.modules, "emoaug.datasets.synthetic", fake)
    monkeypatch.delenv("EMOAUG_DATA", raising=False)
    scan_result = load_corpus("synthetic")
    assert scan_result.root == str(generated.resolve()) and len(scan_result.items) == 4
