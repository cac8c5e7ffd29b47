"""Near-duplicate audit: copies of one recording (dither, gain, resampling, MP3, trimming) are found across speakers;
other takes of the same sentence and other speakers saying it are not; a run stops on copies across partitions."""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from emoaug import near_duplicates as nd
from emoaug.cli import main
from emoaug.features import FeatureCache, extract_features
from emoaug.presets import get_preset
from emoaug.splits import Fold
from tests.helpers import only_run_dir

SR = 16000
EMOTIONS = ("angry", "happy", "sad", "neutral")


def sentence_plan(sentence: int) -> list[tuple[float, float, float]]:
    """A sentence: its syllables as (duration s, pitch factor, formant Hz), the same for every speaker."""
    rng = np.random.default_rng(1000 + sentence)
    return [(rng.uniform(0.08, 0.25), rng.uniform(0.8, 1.3), rng.uniform(400, 2500)) for _ in range(8)]


def utterance(sentence: int, speaker_f0: float, take: int) -> np.ndarray:
    """One take of a sentence by a speaker: syllables of a harmonic voice through a formant band, with pauses;
    each take has its own timing, pitch and noise (as a speaker never says a sentence twice alike)."""
    rng = np.random.default_rng(hash((sentence, round(speaker_f0), take)) % 2**32)
    parts = [np.zeros(int(0.1 * SR))]
    for duration, pitch, formant in sentence_plan(sentence):
        n = int(duration * rng.uniform(0.8, 1.2) * SR)
        t = np.arange(n) / SR
        f0 = speaker_f0 * pitch * rng.uniform(0.95, 1.05) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voice = sum(np.sin(k * phase) * np.exp(-((k * f0 - formant) / 600) ** 2) for k in range(1, 30))
        parts += [voice * np.hanning(n) * rng.uniform(0.3, 1.0), np.zeros(int(rng.uniform(0.02, 0.12) * SR))]
    y = np.concatenate(parts) + 1e-3 * rng.standard_normal(sum(map(len, parts)))
    return (0.8 * y / np.max(np.abs(y))).astype(np.float32)


def write(root, emotion: str, name: str, y: np.ndarray, sr: int = SR, fmt: str = "WAV"):
    path = root / emotion / f"{name}.{'mp3' if fmt == 'MP3' else 'wav'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(y, -1, 1), sr, format=fmt)
    return path


COPIES = {  # name of the copy -> how it was made from spk1's first utterance of each sentence
    "dither": lambda y, rng: (y + rng.standard_normal(y.size) / 32768, SR, "WAV"),
    "gain": lambda y, rng: (y * 10 ** (-9 / 20), SR, "WAV"),
    "resample8k": lambda y, rng: (librosa.resample(y, orig_sr=SR, target_sr=8000), 8000, "WAV"),
    "mp3": lambda y, rng: (y, SR, "MP3"),
    "trim": lambda y, rng: (y[int(0.25 * SR):y.size - int(0.1 * SR)], SR, "WAV"),
}


def folder_corpus(root, *, copies: bool) -> dict[str, str]:
    """``root/<emotion>/<speaker>_<sentence>_<take>.wav``: 4 speakers x 4 sentences (one per emotion) x 2 takes;
    with ``copies``, one edited copy of spk1's takes under speaker ``copy``. Returns copy name -> original name."""
    made = {}
    rng = np.random.default_rng(0)
    for speaker, f0 in (("spk1", 110.0), ("spk2", 140.0), ("spk3", 190.0), ("spk4", 230.0)):
        for sentence, emotion in enumerate(EMOTIONS):
            for take in range(2):
                write(root, emotion, f"{speaker}_{sentence}_{take}", utterance(sentence, f0, take))
    if copies:
        for sentence, (edit, make) in enumerate(list(COPIES.items())[:len(EMOTIONS)]):
            original = utterance(sentence, 110.0, 0)
            y, sr, fmt = make(original, rng)
            write(root, EMOTIONS[sentence], f"copy_{edit}", y, sr, fmt)
            made[f"copy_{edit}"] = f"spk1_{sentence}_0"
    return made


def stem(path: str) -> str:
    return Path(path).stem


def items_of(root) -> pd.DataFrame:
    import hashlib

    rows = []
    for path in sorted(root.rglob("*.*")):
        rows.append({"item_id": path.stem, "path": str(path), "speaker": path.stem.split("_")[0],
                     "sha1": hashlib.sha1(path.read_bytes()).hexdigest()})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("near-dup")
    return root, folder_corpus(root / "corpus", copies=True)


@pytest.mark.parametrize("preset_name", ["emogen", "kim2024"])
def test_copies_are_found_and_other_takes_and_speakers_are_not(corpus, preset_name):
    root, made = corpus
    items = items_of(root / "corpus")
    preset = get_preset(preset_name)
    features = extract_features(items, preset, cache=FeatureCache(root / "cache", preset), lazy=True)
    pairs = nd.near_duplicate_pairs(features, items, preset, separate_speakers=False)
    found = {frozenset(pair) for pair in zip(pairs["item_a"], pairs["item_b"])}
    assert found == {frozenset(pair) for pair in made.items()}
    assert (pairs["similarity"] >= nd.THRESHOLD).all()


def test_a_trimmed_copy_aligns(corpus, tmp_path):
    root, _ = corpus
    original = utterance(2, 140.0, 1)
    y, _, _ = COPIES["trim"](original, None)
    write(tmp_path, "sad", "spk2_2_1", original)
    write(tmp_path, "sad", "other_trimmed", y)
    write(tmp_path, "sad", "spk2_2_0", utterance(2, 140.0, 0))  # another take: not a copy
    items = items_of(tmp_path)
    preset = get_preset("emogen")
    features = extract_features(items, preset, cache=FeatureCache(root / "cache", preset))
    pairs = nd.near_duplicate_pairs(features, items, preset)
    assert [set(pair) for pair in zip(pairs["item_a"], pairs["item_b"])] == [{"spk2_2_1", "other_trimmed"}]


def test_the_audit_reports_copies_across_partitions_only():
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "path": ["/a.wav", "/b.wav", "/c.wav", "/d.wav"],
                          "speaker": ["s1", "s2", "s3", "s4"]})
    pairs = pd.DataFrame({"item_a": ["a", "c"], "item_b": ["b", "d"], "similarity": [0.97, 0.95]})
    folds = [Fold(index=0, train=("a", "c", "d"), val=(), test=("b",)),
             Fold(index=1, train=("a", "b"), val=("c",), test=("d",))]
    section = nd.audit_near_duplicates(pairs, items, folds, preset=get_preset("emogen"), separate_speakers=True,
                                       allowed=False)
    first, second = section["folds"]
    assert first["counts"] == {"test_train": 1, "test_val": 0, "val_train": 0}
    assert first["pairs"]["test_train"] == [{"test": "b", "test_path": "/b.wav", "train": "a",
                                             "train_path": "/a.wav", "similarity": 0.97}]
    assert second["counts"] == {"test_train": 0, "test_val": 1, "val_train": 0}
    assert section["test_items_with_copies"] == 2
    assert "/b.wav ~ /a.wav" in nd.leak_message(section)


def test_a_run_stops_on_copies_across_partitions_and_runs_flagged_when_allowed(corpus, tmp_path, capsys):
    root, made = corpus
    common = ["--corpus", "folder", "--data-root", str(root / "corpus"), "--labels", "4class", "--profile",
              "smoke", "--gen", "none", "--reference", "off", "--no-mlflow", "--folds", "5",  # 5 speakers: each alone in test
              "--cache-dir", str(root / "cache"), "--store", str(tmp_path / "store"), "--out", str(tmp_path / "runs")]
    assert main(["run", *common]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "near-copies in training" in error[0] and "--allow-near-duplicates" in error[0]
    audit = json.loads(next((tmp_path / "runs").glob("*/split_audit.json")).read_text())
    listed = {frozenset((stem(pair["test_path"]), stem(pair.get("train_path") or pair.get("val_path"))))
              for fold in audit["near_duplicates"]["folds"] for found in fold["pairs"].values() for pair in found
              if "test" in pair}
    assert listed and listed <= {frozenset(pair) for pair in made.items()}

    assert main(["run", *common, "--allow-near-duplicates"]) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    assert json.loads((run_dir / "split_audit.json").read_text())["near_duplicates"]["allowed"] is True
    assert "NEAR-DUPLICATES ALLOWED" in (run_dir / "tables" / "generators.md").read_text()


def test_describe_lists_near_duplicates_within_a_corpus(corpus, capsys):
    root, made = corpus
    assert main(["describe", "--corpus", "folder", "--data-root", str(root / "corpus"), "--labels", "4class",
                 "--duplicates", "--cache-dir", str(root / "cache"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    listed = {frozenset((stem(pair["path_a"]), stem(pair["path_b"]))) for pair in info["near_duplicates"]["pairs"]}
    assert listed == {frozenset(pair) for pair in made.items()}


def test_cross_corpus_pairs_find_a_test_corpus_copy_of_a_training_item(corpus, tmp_path):
    root, _ = corpus
    train_root, test_root = tmp_path / "train", tmp_path / "test"
    for sentence, emotion in enumerate(EMOTIONS[:3]):
        write(train_root, emotion, f"spk1_{sentence}", utterance(sentence, 110.0, 0))
        write(test_root, emotion, f"spk1_{sentence}", utterance(sentence, 180.0, 0))  # same names, other voice
    y, sr, fmt = COPIES["resample8k"](utterance(1, 110.0, 0), None)
    write(test_root, "happy", "spkX_copy", y, sr, fmt)
    preset = get_preset("emogen")
    cache = FeatureCache(root / "cache", preset)
    train, test = items_of(train_root), items_of(test_root)
    pairs = nd.cross_corpus_pairs(extract_features(train, preset, cache=cache), train,
                                  extract_features(test, preset, cache=cache), test, preset)
    assert list(zip(pairs["item_a"], pairs["item_b"])) == [("spkX_copy", "spk1_1")]
    section = nd.audit_cross_corpus(pairs, train, test)
    assert section["test_items_with_copies"] == 1 and section["pairs"][0]["train_path"].endswith("spk1_1.wav")
