"""Speaker-independent folds, the paper's speaker-dependent split, and the audit that checks them."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from emoaug.errors import EmoaugError, LeakageError
from emoaug.splits import Fold, audit_splits, load_splits, make_splits, save_splits

EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "disgust")


def make_manifest(n_speakers: int = 8, texts: tuple[str, ...] = ("t1", "t2", "t3")) -> pd.DataFrame:
    """EmoDB-like: every speaker says the same texts in every emotion; genders alternate.

    A few items are dropped so speakers differ slightly, like real corpora.
    """
    rows = []
    for s in range(n_speakers):
        for t_index, text in enumerate(texts):
            for e_index, emotion in enumerate(EMOTIONS):
                if (s + t_index + e_index) % 7 == 0:  # irregular gaps
                    continue
                rows.append(
                    {
                        "item_id": f"fx/s{s:02d}_{text}_{emotion}",
                        "speaker": f"fx/s{s:02d}",
                        "gender": "male" if s % 2 == 0 else "female",
                        "emotion": emotion,
                        "text_id": text,
                    }
                )
    return pd.DataFrame(rows)


def speakers_of(manifest: pd.DataFrame, ids: list[str]) -> set[str]:
    return set(manifest.set_index("item_id").loc[ids, "speaker"])


def partition_signature(folds: list[Fold]) -> list[tuple]:
    return [(tuple(f.train), tuple(f.val), tuple(f.test)) for f in folds]


@pytest.fixture
def manifest() -> pd.DataFrame:
    return make_manifest()


# ----- kfold ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kfold_partitions_are_speaker_disjoint_and_test_every_item_once(manifest, seed):
    folds = make_splits(manifest, "kfold", n_folds=4, seed=seed)
    assert len(folds) == 4
    all_ids = set(manifest["item_id"])
    for fold in folds:
        train, val, test = (speakers_of(manifest, ids) for ids in (fold.train, fold.val, fold.test))
        assert not (train & test) and not (val & test) and not (train & val)
        assert set(fold.train) | set(fold.val) | set(fold.test) == all_ids
        assert fold.train == sorted(fold.train) and fold.test == sorted(fold.test)
        assert fold.speaker_independent
    tested = Counter(i for fold in folds for i in fold.test)
    assert set(tested) == all_ids and set(tested.values()) == {1}


def test_kfold_validation_is_whole_training_speakers_gender_balanced(manifest):
    # 8 speakers, 4 folds: 2 test speakers, 6 training speakers of which ~1/3 (= 2) validate.
    folds = make_splits(manifest, "kfold", n_folds=4, seed=3)
    gender = manifest.groupby("speaker")["gender"].first()
    for fold in folds:
        val = speakers_of(manifest, fold.val)
        assert len(val) == 2
        assert sorted(gender[list(val)]) == ["female", "male"]
        # whole speakers: every item of a validation speaker is in val
        assert set(manifest.loc[manifest["speaker"].isin(val), "item_id"]) == set(fold.val)


def test_kfold_val_speakers_option(manifest):
    folds = make_splits(manifest, "kfold", n_folds=4, seed=0, val_speakers=1)
    assert all(len(speakers_of(manifest, f.val)) == 1 for f in folds)
    folds = make_splits(manifest, "kfold", n_folds=4, seed=0, val_speakers=0)
    assert all(f.val == [] for f in folds)


def test_kfold_stratifies_speakers_with_skewed_emotions():
    # Half the speakers are mostly angry, half mostly sad: only a stratified assignment puts
    # both kinds into every test fold in equal numbers.
    rows = []
    for s in range(12):
        heavy = "angry" if s % 2 == 0 else "sad"
        for emotion in EMOTIONS:
            for k in range(6 if emotion == heavy else 1):
                item_id = f"sk/{s}_{emotion}_{k}"
                rows.append({"item_id": item_id, "speaker": f"sk/{s}", "emotion": emotion, "text_id": str(k)})
    items = pd.DataFrame(rows)
    heavy_angry = {f"sk/{s}" for s in range(0, 12, 2)}
    for seed in range(3):
        for fold in make_splits(items, "kfold", n_folds=3, seed=seed):
            test_speakers = speakers_of(items, fold.test)
            assert len(test_speakers) == 4
            assert len(test_speakers & heavy_angry) == 2


def test_kfold_is_deterministic_and_seed_dependent(manifest):
    first = make_splits(manifest, "kfold", n_folds=4, seed=0)
    again = make_splits(manifest.sample(frac=1.0, random_state=7), "kfold", n_folds=4, seed=0)  # row order irrelevant
    assert partition_signature(first) == partition_signature(again)
    partitions = {
        frozenset(frozenset(f.test) for f in make_splits(manifest, "kfold", n_folds=4, seed=s)) for s in range(5)
    }
    assert len(partitions) > 1


# ----- loso ----------------------------------------------------------------------------------------


def test_loso_one_fold_per_speaker_with_rotating_validation(manifest):
    folds = make_splits(manifest, "loso", seed=0)
    speakers = sorted(manifest["speaker"].unique())
    assert [speakers_of(manifest, f.test) for f in folds] == [{s} for s in speakers]
    val_speakers = []
    for fold in folds:
        (test_speaker,) = speakers_of(manifest, fold.test)
        val = speakers_of(manifest, fold.val)
        assert len(val) == 1 and test_speaker not in val
        assert not (speakers_of(manifest, fold.train) & (val | {test_speaker}))
        val_speakers.extend(val)
    assert sorted(val_speakers) == speakers  # rotation: each speaker validates exactly once
    other_seed = make_splits(manifest, "loso", seed=1)
    assert partition_signature(other_seed) != partition_signature(folds)
    assert partition_signature(make_splits(manifest, "loso", seed=0)) == partition_signature(folds)


# ----- paper ---------------------------------------------------------------------------------------


def test_paper_split_is_random_stratified_and_flagged_speaker_dependent(manifest):
    (fold,) = make_splits(manifest, "paper", seed=0)
    n = len(manifest)
    assert not fold.speaker_independent
    assert abs(len(fold.test) - 0.2 * n) <= 1
    assert abs(len(fold.val) - 0.1 * (len(fold.train) + len(fold.val))) <= 1
    assert set(fold.train) | set(fold.val) | set(fold.test) == set(manifest["item_id"])
    emotion = manifest.set_index("item_id")["emotion"]
    test_counts = Counter(emotion[fold.test])
    all_counts = Counter(manifest["emotion"])
    for label in EMOTIONS:
        assert abs(test_counts[label] - 0.2 * all_counts[label]) <= 1
    audit = audit_splits(manifest, [fold], "paper")
    assert audit["speaker_dependent"] is True and audit["speaker_independent"] is False
    assert "speaker-dependent" in audit["warning"]
    assert audit["folds"][0]["speaker_overlap"]["train_test"]  # reported, not raised
    assert partition_signature(make_splits(manifest, "paper", seed=0)) == partition_signature([fold])
    assert partition_signature(make_splits(manifest, "paper", seed=1)) != partition_signature([fold])


# ----- audit ---------------------------------------------------------------------------------------


def test_audit_reports_sizes_labels_and_coverage(manifest):
    folds = make_splits(manifest, "kfold", n_folds=4, seed=0)
    audit = audit_splits(manifest, folds, "kfold")
    json.dumps(audit)  # JSON-serialisable
    assert audit["speaker_independent"] is True and audit["test_coverage"]["every_item_tested_once"]
    for fold, report in zip(folds, audit["folds"]):
        assert report["sizes"] == {"train": len(fold.train), "val": len(fold.val), "test": len(fold.test)}
        for part in ("train", "val", "test"):
            assert sum(report["label_counts"][part].values()) == report["sizes"][part]
        assert report["n_speakers"]["test"] == len(speakers_of(manifest, fold.test))
        assert all(not shared for shared in report["speaker_overlap"].values())
        # every speaker says every text: all test texts also occur in train
        assert report["text_overlap"]["fraction_test_items_with_train_text"] == 1.0
    assert not audit_splits(manifest, folds[:-1], "kfold")["test_coverage"]["every_item_tested_once"]


def test_audit_reports_missing_labels():
    items = make_manifest(n_speakers=3)
    items = items[~((items["speaker"] == "fx/s02") & (items["emotion"] == "fear"))]
    s = items.set_index("item_id")["speaker"]
    fold = Fold(
        0, train=list(s.index[s == "fx/s00"]), val=list(s.index[s == "fx/s01"]), test=list(s.index[s == "fx/s02"])
    )
    report = audit_splits(items, [fold], "kfold")["folds"][0]
    assert report["labels_missing"]["test"] == ["fear"]
    assert report["label_counts"]["test"]["fear"] == 0


def test_text_overlap_hand_checked():
    items = pd.DataFrame(
        {
            "item_id": ["a1", "a2", "a3", "b1", "b2", "b3", "b4"],
            "speaker": ["A", "A", "A", "B", "B", "B", "B"],
            "emotion": ["sad", "sad", "angry", "sad", "angry", "angry", "sad"],
            "text_id": ["x", "x", "y", "x", "z", "", "x"],  # "" = unknown text, not counted
        }
    )
    fold = Fold(0, train=["a1", "a2", "a3"], val=[], test=["b1", "b2", "b3", "b4"])
    overlap = audit_splits(items, [fold], "kfold")["folds"][0]["text_overlap"]
    assert overlap == {
        "n_test_items_known_text": 3,
        "n_shared_texts": 1,
        "n_test_items_with_train_text": 2,
        "fraction_test_items_with_train_text": pytest.approx(2 / 3),
    }


def test_audit_raises_on_speaker_leakage(manifest):
    s = manifest.set_index("item_id")["speaker"]
    leaky_test = list(s.index[s.isin(["fx/s00", "fx/s01"])])
    train = list(s.index[~s.isin(["fx/s00", "fx/s01"])]) + [i for i in leaky_test if s[i] == "fx/s01"][:1]
    leaky_test = [i for i in leaky_test if i not in train]
    fold = Fold(3, train=train, val=[], test=leaky_test)
    with pytest.raises(LeakageError, match=r"fold 3.*fx/s01"):
        audit_splits(manifest, [fold], "kfold")
    audit_splits(manifest, [Fold(3, train=train, val=[], test=leaky_test, speaker_independent=False)], "paper")


def test_audit_raises_on_val_train_speaker_overlap(manifest):
    s = manifest.set_index("item_id")["speaker"]
    s02 = list(s.index[s == "fx/s02"])
    fold = Fold(
        1,
        train=list(s.index[s.isin(["fx/s03", "fx/s04"])]) + s02[:2],
        val=s02[2:],
        test=list(s.index[s == "fx/s05"]),
    )
    with pytest.raises(LeakageError, match=r"fold 1.*train/val: fx/s02"):
        audit_splits(manifest, [fold], "loso")


def test_audit_raises_on_item_in_two_partitions_even_for_paper(manifest):
    (fold,) = make_splits(manifest, "paper", seed=0)
    fold.test.append(fold.train[0])
    with pytest.raises(LeakageError, match="train and test"):
        audit_splits(manifest, [fold], "paper")


# ----- persistence ---------------------------------------------------------------------------------


def test_save_load_round_trip(manifest, tmp_path):
    folds = make_splits(manifest, "kfold", n_folds=4, seed=0) + make_splits(manifest, "paper", seed=0)
    path = save_splits(folds, tmp_path / "sub" / "splits.json")
    loaded = load_splits(path)
    assert [f.to_dict() for f in loaded] == [f.to_dict() for f in folds]
    assert loaded[-1].speaker_independent is False


def test_load_splits_errors(tmp_path):
    with pytest.raises(EmoaugError, match="missing.json"):
        load_splits(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"folds": []}')
    with pytest.raises(EmoaugError, match="bad.json: not an emoaug split file"):
        load_splits(bad)
    bad.write_text("{not json")
    with pytest.raises(EmoaugError, match="bad.json"):
        load_splits(bad)


# ----- errors --------------------------------------------------------------------------------------


def test_errors_name_the_option(manifest):
    with pytest.raises(EmoaugError, match="--folds.*10 speakers.*8"):
        make_splits(manifest, "kfold", n_folds=10)
    with pytest.raises(EmoaugError, match="--split.*'random'"):
        make_splits(manifest, "random")
    with pytest.raises(EmoaugError, match="--split"):
        audit_splits(manifest, [], "random")
    with pytest.raises(EmoaugError, match="--folds"):
        make_splits(manifest, "kfold", n_folds=1)
    rare = pd.concat([manifest, make_manifest(n_speakers=1).assign(emotion="surprise").head(2)])
    rare["item_id"] = [f"id{i}" for i in range(len(rare))]
    with pytest.raises(EmoaugError, match="--folds: class 'surprise' has 2 item"):
        make_splits(rare, "kfold", n_folds=4)
    with pytest.raises(EmoaugError, match="text_id"):
        make_splits(manifest.drop(columns="text_id"))
    with pytest.raises(EmoaugError, match="duplicate item_id"):
        make_splits(pd.concat([manifest, manifest.head(1)]))


def test_too_few_training_speakers_for_validation():
    items = make_manifest(n_speakers=2)
    with pytest.raises(EmoaugError, match="--folds.*validation"):
        make_splits(items, "kfold", n_folds=2)
    folds = make_splits(items, "kfold", n_folds=2, val_speakers=0)
    assert len(folds) == 2 and all(not f.val for f in folds)
    with pytest.raises(EmoaugError, match="--split loso"):
        make_splits(items, "loso")


# ----- standard ------------------------------------------------------------------------------------


def make_session_manifest(n_sessions: int = 4) -> pd.DataFrame:
    """IEMOCAP-like: per session one female and one male speaker who say the same dialogs."""
    rows = []
    for session in range(1, n_sessions + 1):
        for gender in ("F", "M"):
            speaker = f"ie/Ses{session:02d}{gender}"
            for k, emotion in enumerate(EMOTIONS[:4] * 2):
                rows.append({"item_id": f"{speaker}_{k}", "speaker": speaker, "emotion": emotion,
                             "gender": "female" if gender == "F" else "male", "text_id": f"dialog{k % 3}",
                             "session": f"Ses{session:02d}"})
    return pd.DataFrame(rows)


def test_standard_with_sessions_holds_both_speakers_of_a_session_out_together():
    items = make_session_manifest(4)
    folds = make_splits(items, "standard", seed=0)
    session_of = items.set_index("item_id")["session"]
    assert len(folds) == 4
    for fold, session in zip(folds, ("Ses01", "Ses02", "Ses03", "Ses04")):
        assert fold.protocol == "standard" and fold.speaker_independent
        assert set(session_of[fold.test]) == {session}
        assert speakers_of(items, fold.test) == {f"ie/{session}F", f"ie/{session}M"}  # both speakers together
        assert set(fold.test) == set(items.loc[items["session"] == session, "item_id"])
        train, val = speakers_of(items, fold.train), speakers_of(items, fold.val)
        assert len(val) == 1 and not (val & train)  # one whole validation speaker, from the training sessions
        assert session not in set(session_of[fold.train]) | set(session_of[fold.val])
        assert set(fold.train) | set(fold.val) | set(fold.test) == set(items["item_id"])
    audit = audit_splits(items, folds, "standard")
    assert audit["standard"] == "leave-one-session-out (4 sessions)"
    assert audit["test_coverage"]["every_item_tested_once"] and audit["speaker_independent"]
    # val_speakers is respected; the folds do not depend on the row order
    assert all(len(speakers_of(items, f.val)) == 3 for f in make_splits(items, "standard", val_speakers=3))
    assert all(f.val == [] for f in make_splits(items, "standard", val_speakers=0))
    shuffled = make_splits(items.sample(frac=1.0, random_state=3), "standard", seed=0)
    assert partition_signature(shuffled) == partition_signature(folds)
    with pytest.raises(EmoaugError, match="--split standard: only 2 training speaker"):
        make_splits(make_session_manifest(2), "standard", val_speakers=2)


def test_standard_with_sessions_refuses_what_it_cannot_split():
    items = make_session_manifest(3)
    with pytest.raises(EmoaugError, match="at least 2 sessions.*1 \\(Ses01\\)"):
        make_splits(items[items["session"] == "Ses01"], "standard")
    moved = items.copy()
    moved.loc[moved.index[0], "session"] = "Ses03"  # ie/Ses01F now speaks in two sessions
    with pytest.raises(EmoaugError, match="speaker 'ie/Ses01F' appears in several sessions \\(Ses01, Ses03\\)"):
        make_splits(moved, "standard")
    blank = items.copy()
    blank.loc[blank.index[0], "session"] = None
    with pytest.raises(EmoaugError, match="has no session"):
        make_splits(blank, "standard")


def make_podcast_manifest(partitions=("Train", "Train", "Train", "Development", "Test1", "Test2")) -> pd.DataFrame:
    """MSP-Podcast-like: one known speaker per entry of ``partitions`` (4 items), plus two segments of unknown
    speakers (each its own speaker id) in Train and in Test1."""
    rows = []
    for s, partition in enumerate(partitions):
        for k, emotion in enumerate(EMOTIONS[:4]):
            rows.append({"item_id": f"mp/{s}_{k}", "speaker": f"mp/{s}", "emotion": emotion, "text_id": "",
                         "gender": "female" if s % 2 else "male", "split_set": partition})
    for partition in ("Train", "Test1"):
        for k in range(2):
            item = f"mp/unknown_{partition}_{k}"
            rows.append({"item_id": item, "speaker": f"mp/unknown-{item}", "emotion": "sad", "text_id": "",
                         "gender": "", "split_set": partition})
    return pd.DataFrame(rows)


def test_standard_with_release_partitions():
    items = make_podcast_manifest()
    (fold,) = make_splits(items, "standard", seed=0, val_speakers=2)  # a count does not change Development
    partition = items.set_index("item_id")["split_set"]
    assert fold.protocol == "standard" and fold.speaker_independent
    assert sorted(partition[fold.train]) == ["Train"] * 14
    assert sorted(partition[fold.val]) == ["Development"] * 4
    assert sorted(partition[fold.test]) == ["Test1"] * 6
    audit = audit_splits(items, [fold], "standard")  # unknown speakers in Train and Test1 are no leak
    assert audit["standard"] == "release partitions (train Train, validation Development, test Test1)"
    assert audit["left_out"] == {"Test2": 4}
    assert audit["test_coverage"]["n_never_tested"] == len(items) - 6
    # no validation subset: Development is left out too, so training stays the release's Train
    (no_val,) = make_splits(items, "standard", val_speakers=0)
    assert no_val.val == [] and no_val.train == fold.train and no_val.test == fold.test
    assert audit_splits(items, [no_val], "standard")["left_out"] == {"Development": 4, "Test2": 4}


def test_standard_release_partitions_without_development_and_with_a_straddling_speaker():
    items = make_podcast_manifest(("Train",) * 10 + ("Test1",))
    items.loc[items["item_id"] == "mp/0_0", "split_set"] = "Test1"  # mp/0 in Train and in Test1 (not by design)
    (fold,) = make_splits(items, "standard", seed=0)
    train, val, test = (speakers_of(items, ids) for ids in (fold.train, fold.val, fold.test))
    assert "mp/0" in test and "mp/0" not in train | val
    assert {"mp/0_1", "mp/0_2", "mp/0_3"}.isdisjoint(fold.train + fold.val)  # its Train items are left out
    # no Development: a tenth of the 11 training speakers (1) validates, whole, carved out of Train
    assert len(val) == 1 and not (val & train) and set(items.set_index("item_id").loc[fold.val, "split_set"]) == {
        "Train"}
    audit = audit_splits(items, [fold], "standard")
    assert audit["standard"] == ("release partitions (train Train, validation whole speakers carved out of Train "
                                 "(no Development partition), test Test1)")
    assert audit["left_out"] == {"Train": 3}
    (three,) = make_splits(items, "standard", seed=0, val_speakers=3)
    assert len(speakers_of(items, three.val)) == 3
    with pytest.raises(EmoaugError, match="no Test1 items \\(split_set values: Train\\)"):
        make_splits(make_podcast_manifest(("Train", "Train")).query("split_set == 'Train'"), "standard")


def test_standard_falls_back_to_kfold(manifest):
    for seed in (0, 1):
        standard = make_splits(manifest, "standard", n_folds=4, seed=seed)
        assert partition_signature(standard) == partition_signature(make_splits(manifest, "kfold", n_folds=4,
                                                                                seed=seed))
        assert {f.protocol for f in standard} == {"standard"}
    empty_sessions = manifest.assign(session="", split_set=None)  # columns without values: no protocol of its own
    standard = make_splits(empty_sessions, "standard", n_folds=4, seed=0)
    assert partition_signature(standard) == partition_signature(make_splits(manifest, "kfold", n_folds=4, seed=0))
    audit = audit_splits(manifest, standard, "standard")
    assert audit["standard"] == "speaker-grouped k-fold (4 folds)" and audit["test_coverage"]["every_item_tested_once"]
    assert "left_out" not in audit and "standard" not in audit_splits(manifest, standard, "kfold")
