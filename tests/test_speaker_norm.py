"""--speaker-norm: per-speaker standardisation of log-mel rows and functionals, and the way back to dB."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from emoaug.bench.runner import by_speaker
from emoaug.errors import EmoaugError
from emoaug.features import Normaliser
from emoaug.speaker_norm import (mel_statistics, reference_statistics, standardise_mels, standardise_vectors,
                                 warn_small_speakers)


def corpus(n_mels: int = 4, n_frames: int = 6):
    """Two speakers who say the same three utterances, B at another level and spread in every bin; one bin is
    constant for A. Returns (items, features)."""
    rng = np.random.default_rng(0)
    pattern = [rng.normal(size=(1, n_mels, n_frames)) for _ in range(3)]
    offset, gain = np.linspace(-20, 5, n_mels)[None, :, None], np.linspace(0.5, 3, n_mels)[None, :, None]
    features, rows = {}, []
    for k, base in enumerate(pattern):
        a = base.copy()
        a[:, 0, :] = -80.0  # a silent bin for speaker A: constant, so it is centred, not scaled
        features[f"a{k}"], features[f"b{k}"] = a.astype(np.float32), (base * gain + offset).astype(np.float32)
        rows += [{"item_id": f"a{k}", "speaker": "A"}, {"item_id": f"b{k}", "speaker": "B"}]
    return pd.DataFrame(rows), features


def test_each_speakers_rows_have_zero_mean_and_unit_std_per_bin_and_speaker_level_is_gone():
    items, features = corpus()
    stats = mel_statistics(features, items)
    out = standardise_mels(features, items, stats)
    for speaker, ids in (("A", ["a0", "a1", "a2"]), ("B", ["b0", "b1", "b2"])):
        frames = np.concatenate([out[i] for i in ids], axis=2)[0]  # [n_mels, all frames]
        np.testing.assert_allclose(frames.mean(axis=1), 0.0, atol=1e-5)
        expected_std = [0.0, 1.0, 1.0, 1.0] if speaker == "A" else [1.0, 1.0, 1.0, 1.0]
        np.testing.assert_allclose(frames.std(axis=1), expected_std, atol=1e-5)
    # bins 1..3 of A and B are affine images of one pattern per bin: standardised, they are equal
    for k in range(3):
        np.testing.assert_allclose(out[f"a{k}"][:, 1:], out[f"b{k}"][:, 1:], atol=1e-4)
    assert all(out[i].dtype == np.float32 for i in out)


def test_statistics_are_exact_over_rows_of_several_segments():
    items, features = corpus()
    features["a0"] = np.concatenate([features["a0"], features["a0"] + 1.0])  # two segments of one utterance
    stats = mel_statistics(features, items)
    frames = np.concatenate([features[i].astype(np.float64).transpose(1, 0, 2).reshape(4, -1)
                             for i in ("a0", "a1", "a2")], axis=1)
    np.testing.assert_allclose(stats["A"]["mean"], frames.mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(stats["A"]["std"], frames.std(axis=1), rtol=1e-6, atol=1e-9)


def test_functionals_are_standardised_within_each_speaker():
    items, _ = corpus()
    rng = np.random.default_rng(1)
    vectors = {i: rng.normal(size=5) * (10 if i.startswith("b") else 1) + (100 if i.startswith("b") else 0)
               for i in items["item_id"]}
    vectors["a0"][2] = vectors["a1"][2] = vectors["a2"][2] = 7.0  # constant for A: centred only
    out = standardise_vectors(vectors, items)
    for prefix in ("a", "b"):
        block = np.stack([out[f"{prefix}{k}"] for k in range(3)])
        np.testing.assert_allclose(block.mean(axis=0), 0.0, atol=1e-5)
        assert np.isfinite(block).all()
    np.testing.assert_allclose(np.stack([out[f"b{k}"] for k in range(3)]).std(axis=0), 1.0, atol=1e-5)


def test_to_db_maps_standardised_rows_back_through_the_average_training_speaker():
    items, features = corpus()
    stats = mel_statistics(features, items)
    standardised = standardise_mels(features, items, stats)
    normaliser = Normaliser("minmax").fit([standardised[i] for i in ("a0", "a1", "a2", "b0", "b1", "b2")])
    rows = normaliser.transform(standardised["b1"])
    np.testing.assert_allclose(normaliser.to_db(rows), standardised["b1"], atol=1e-5)  # no reference: as is
    normaliser.db_reference = reference_statistics(stats, ["B"])
    np.testing.assert_allclose(normaliser.to_db(rows), features["b1"], atol=1e-3)  # B's own level and spread
    both = reference_statistics(stats, ["A", "B", "A"])
    np.testing.assert_allclose(both["mean"], (stats["A"]["mean"] + stats["B"]["mean"]) / 2)
    restored = Normaliser.from_dict(normaliser.to_dict())
    assert restored.db_reference == normaliser.db_reference
    np.testing.assert_allclose(restored.to_db(rows), normaliser.to_db(rows))


def test_the_run_uses_standardised_rows_and_functionals_and_keeps_the_statistics():
    items, features = corpus()
    functionals = {i: np.arange(3, dtype=np.float64) * (2 if i.startswith("b") else 1) for i in items["item_id"]}
    functionals["a1"] = functionals["a1"] + 1.0
    rows, vectors, stats = by_speaker(items, features, functionals)
    assert set(stats) == {"A", "B"}
    np.testing.assert_allclose(rows["b0"], standardise_mels(features, items, stats)["b0"])
    np.testing.assert_allclose(vectors["a1"], standardise_vectors(functionals, items)["a1"])
    assert by_speaker(items, features, None)[1] is None  # --reference off: no functionals


def test_a_manifest_without_speakers_is_a_one_line_error():
    items, features = corpus()
    with pytest.raises(EmoaugError, match="--speaker-norm"):
        mel_statistics(features, items.drop(columns="speaker"))


def test_speakers_with_one_utterance_are_counted_in_a_warning(caplog):
    items = pd.DataFrame({"item_id": ["x", "y", "z"], "speaker": ["s1", "s2", "s2"]})
    with caplog.at_level(logging.WARNING, logger="emoaug"):
        warn_small_speakers(items)
    assert "1 of 2 speakers have a single utterance" in caplog.text


def test_speaker_statistics_take_the_place_of_the_classifiers_per_utterance_mean_removal():
    from emoaug.bench.resolve import resolve_run_config

    plain = resolve_run_config(profile="quick").experiment
    normalised = resolve_run_config(profile="quick", speaker_norm=True).experiment
    assert plain.classifier.input_norm == "utterance_mean"
    assert normalised.classifier.input_norm == "none" and normalised.speaker_norm
    assert {k: v for k, v in vars(normalised.classifier).items() if k != "input_norm"} == \
        {k: v for k, v in vars(plain.classifier).items() if k != "input_norm"}
