"""The embedded synthetic corpus: files, determinism, caching, scanning and prosody."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from emoaug.datasets import synthetic
from emoaug.errors import EmoaugError

SMALL = {"n_voices": 2, "n_sentences": 2}
EXPECTED_STEMS = {
    f"v{v:02d}_s{s:02d}_{emotion}" for v in range(2) for s in range(2) for emotion in synthetic.ALL_EMOTIONS
}


def _hashes(root: Path) -> dict[str, str]:
    return {path.name: hashlib.sha1(path.read_bytes()).hexdigest() for path in sorted(root.glob("*.wav"))}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    return synthetic.ensure_corpus(tmp_path_factory.mktemp("cache"), seed=0, n_jobs=2, **SMALL)


def test_writes_every_file_of_the_scheme_as_22050_hz_mono_speech(small_corpus):
    assert {path.stem for path in small_corpus.glob("*.wav")} == EXPECTED_STEMS
    for path in small_corpus.glob("*.wav"):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16"), path.name
        assert 1.0 < info.duration < 6.0, (path.name, info.duration)
        samples, _ = sf.read(path, dtype="float32")
        assert np.abs(samples).max() > 0.1, path.name
        assert not np.isnan(samples).any()


def test_metadata_records_settings_and_every_utterance(small_corpus):
    metadata = json.loads((small_corpus / "metadata.json").read_text())
    assert metadata["seed"] == 0 and metadata["generator_version"] == synthetic.GENERATOR_VERSION
    assert [voice["voice"] for voice in metadata["voices"]] == ["v00", "v01"]
    assert set(metadata["prosody_rules"]) == set(synthetic.ALL_EMOTIONS)
    assert set(metadata["utterances"]) == EXPECTED_STEMS
    for stem, params in metadata["utterances"].items():
        assert params["emotion"] == stem.rsplit("_", 1)[1]
        assert params["duration"] == pytest.approx(sf.info(small_corpus / f"{stem}.wav").duration, abs=1e-3)


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(small_corpus, tmp_path):
    again = synthetic.ensure_corpus(tmp_path / "again", seed=0, n_jobs=1, **SMALL)
    assert again != small_corpus
    assert _hashes(again) == _hashes(small_corpus)


def test_different_seed_gives_different_audio(small_corpus, tmp_path):
    other = synthetic.ensure_corpus(tmp_path, seed=1, **SMALL)
    first, second = _hashes(small_corpus), _hashes(other)
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first)


def test_second_call_reuses_the_cache(small_corpus, monkeypatch):
    mtimes = {path.name: path.stat().st_mtime_ns for path in small_corpus.iterdir()}

    def must_not_run(*args, **kwargs):
        raise AssertionError("the corpus was generated again")

    monkeypatch.setattr(synthetic, "_generate_into", must_not_run)
    root = synthetic.ensure_corpus(small_corpus.parent, seed=0, **SMALL)
    assert root == small_corpus
    assert {path.name: path.stat().st_mtime_ns for path in root.iterdir()} == mtimes


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    real_write = synthetic._write_utterance
    written = []

    def write_then_fail(out_dir, raw, task):
        if len(written) == 5:
            raise KeyboardInterrupt
        written.append(task["stem"])
        return real_write(out_dir, raw, task)

    monkeypatch.setattr(synthetic, "_write_utterance", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        synthetic.ensure_corpus(tmp_path, seed=3, **SMALL)
    assert list(tmp_path.iterdir()) == []  # neither the corpus folder nor the staging folder

    monkeypatch.setattr(synthetic, "_write_utterance", real_write)
    root = synthetic.ensure_corpus(tmp_path, seed=3, **SMALL)
    assert {path.stem for path in root.glob("*.wav")} == EXPECTED_STEMS


def test_scan_parses_names_and_skips_foreign_files(small_corpus, tmp_path):
    for name in ("v01_s00_angry.wav", "v00_s01_sad.wav"):
        shutil.copy(small_corpus / name, tmp_path / name)
    shutil.copy(small_corpus / "v00_s00_fear.wav", tmp_path / "interview.wav")
    shutil.copy(small_corpus / "v00_s00_fear.wav", tmp_path / "v00_s00_bored.wav")
    (tmp_path / "notes.txt").write_text("not audio")

    records, skipped = synthetic.scan(tmp_path)

    by_id = {record["item_id"]: record for record in records}
    assert set(by_id) == {"synthetic/v01_s00_angry", "synthetic/v00_s01_sad"}
    angry = by_id["synthetic/v01_s00_angry"]
    assert angry == {
        "item_id": "synthetic/v01_s00_angry",
        "path": str((tmp_path / "v01_s00_angry.wav").resolve()),
        "corpus": "synthetic",
        "speaker": "synthetic/v01",
        "gender": "female",
        "emotion": "angry",
        "raw_label": "angry",
        "text_id": "s00",
    }
    assert by_id["synthetic/v00_s01_sad"]["gender"] == "male"
    reasons = {Path(entry["path"]).name: entry["reason"] for entry in skipped}
    assert set(reasons) == {"interview.wav", "v00_s00_bored.wav", "notes.txt"}
    assert "emotion" in reasons["v00_s00_bored.wav"]


def test_scan_of_generated_corpus_covers_every_file(small_corpus):
    records, skipped = synthetic.scan(small_corpus)
    assert skipped == []
    assert {record["item_id"] for record in records} == {f"synthetic/{stem}" for stem in EXPECTED_STEMS}
    assert {record["gender"] for record in records} == {"male", "female"}


def _median_f0(path: Path) -> float:
    """Median YIN F0 over the louder half of the frames (pYIN's voicing decision is unreliable on
    eSpeak's rough voices; the median shrugs off YIN's occasional octave errors)."""
    samples, sr = sf.read(path, dtype="float32")
    frames = {"frame_length": 2048, "hop_length": 512, "center": True, "pad_mode": "constant"}
    f0 = librosa.yin(samples, fmin=60.0, fmax=500.0, sr=sr, **frames)
    rms = librosa.feature.rms(y=samples, **frames)[0]
    return float(np.median(f0[rms >= np.median(rms)]))


@pytest.mark.parametrize("voice", ["v00", "v01"])
def test_prosody_angry_and_happy_higher_sad_slower(small_corpus, voice):
    for sentence in ("s00", "s01"):
        f0 = {emotion: _median_f0(small_corpus / f"{voice}_{sentence}_{emotion}.wav") for emotion in ("angry", "happy", "sad")}
        assert f0["angry"] > f0["sad"] * 1.1, (voice, sentence, f0)
        assert f0["happy"] > f0["sad"] * 1.1, (voice, sentence, f0)
    durations = {
        emotion: np.mean([sf.info(small_corpus / f"{voice}_{s}_{emotion}.wav").duration for s in ("s00", "s01")])
        for emotion in ("angry", "sad")
    }
    assert durations["sad"] > durations["angry"], durations


def test_variation_zero_renders_each_voice_and_emotion_identically():
    def settings(sentence: int, variation: float) -> dict:
        return synthetic.utterance_parameters(0, 1, sentence, "angry", variation)["espeak"]

    assert settings(0, 0.0) == settings(5, 0.0)
    assert any(settings(0, 1.0) != settings(sentence, 1.0) for sentence in range(1, 6))


@pytest.mark.parametrize("options", [{"n_voices": 0}, {"n_sentences": 99}, {"seed": -1}, {"variation": -0.5}])
def test_bad_options_raise_one_line_errors(tmp_path, options):
    with pytest.raises(EmoaugError, match="corpus synthetic") as error:
        synthetic.ensure_corpus(tmp_path, **options)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_espeak_failures_surface_as_one_line_errors():
    server = synthetic._ESpeakServer()
    try:
        server.send("The book is lying on the table.", "zz-no-such-voice", {"rate": 175}, 1)
        with pytest.raises(EmoaugError, match="no voice 'zz-no-such-voice'"):
            server.receive()
        server.send("Hello.", "en", {"rate": 175}, 1)  # the server survives a failed request
        assert len(server.receive()) > 0.2 * synthetic.SAMPLE_RATE
    finally:
        server.close()


def test_scan_of_missing_folder_raises(tmp_path):
    with pytest.raises(EmoaugError, match="not a folder"):
        synthetic.scan(tmp_path / "missing")
