"""Quality measures of a generated set: MAD, Frechet distance, judge accuracy, memorisation, diversity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch

from emoaug.classifiers import SERClassifier, TrainConfig
from emoaug.errors import EmoaugError
from emoaug.features import Normaliser
from emoaug.featureset import FeatureSet
from emoaug.quality import (
    OVERALL,
    MelScale,
    assess_generated,
    diversity,
    frechet_distance,
    judge_accuracy,
    mad,
    mean_pairwise_distance,
    memorisation,
    trace_sqrt_product,
)

LABELS = ("neutral", "happy", "sad")
N_MELS, N_FRAMES = 8, 10


# ------------------------------------------------------------------------------------ fixtures
def draw_db(n: int, seed: int, labels_per_row: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """dB rows [n, M, T] around -40 dB whose level depends on the emotion, and their labels."""
    rng = np.random.default_rng(seed)
    y = labels_per_row if labels_per_row is not None else np.arange(n) % len(LABELS)
    db = -40.0 + 6.0 * rng.standard_normal((n, N_MELS, N_FRAMES)) + 8.0 * y[:, None, None]
    return db.astype(np.float32), y.astype(np.int64)


def featureset(db: np.ndarray, y: np.ndarray, normaliser: Normaliser, prefix: str) -> FeatureSet:
    x = np.asarray(normaliser.transform(db), dtype=np.float32)
    return FeatureSet(x=torch.from_numpy(x), y=torch.from_numpy(y), labels=LABELS,
                      item_ids=[f"{prefix}{i}" for i in range(len(y))])


class StubJudge:
    """Embeds a row as its mean over frames; predicts what the test tells it to."""

    def __init__(self, predict=None):
        self.predict = predict or (lambda true: true)

    def embed(self, fs: FeatureSet) -> np.ndarray:
        return fs.x.numpy().mean(axis=2)

    def predict_items(self, fs: FeatureSet) -> pd.DataFrame:
        true = fs.label_names()
        return pd.DataFrame({"item_id": fs.item_ids, "y_true": true, "y_pred": [self.predict(t) for t in true]})


@pytest.fixture
def real_sets():
    train_db, train_y = draw_db(120, seed=1)
    test_db, test_y = draw_db(60, seed=2)
    normaliser = Normaliser("zscore").fit([train_db])
    return {"train_db": train_db, "train_y": train_y, "normaliser": normaliser,
            "train": featureset(train_db, train_y, normaliser, "t"),
            "test": featureset(test_db, test_y, normaliser, "h")}


# ------------------------------------------------------------------------------ Frechet distance
def gaussian_rows(n: int, mean, std, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asarray(mean) + np.asarray(std) * rng.standard_normal((n, len(mean)))


def test_frechet_distance_of_a_set_with_itself_is_zero():
    a = gaussian_rows(300, [0.0] * 5, [1.0, 2.0, 0.5, 1.0, 3.0], seed=0)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    mean_a, std_a = np.array([0.0, 1.0, -1.0, 2.0]), np.array([1.0, 2.0, 0.5, 1.5])
    mean_b, std_b = np.array([0.5, 0.0, -1.0, 3.0]), np.array([2.0, 1.0, 0.5, 0.5])
    a, b = gaussian_rows(40_000, mean_a, std_a, seed=1), gaussian_rows(40_000, mean_b, std_b, seed=2)
    # diagonal covariances commute: FD = |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2 = 2.25 + 3.0
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((std_a - std_b) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_equals_the_sqrtm_formula_on_sample_moments():
    a = gaussian_rows(200, [0.0] * 6, [1.0] * 6, seed=3) @ np.random.default_rng(4).standard_normal((6, 6))
    b = gaussian_rows(150, [1.0] * 6, [0.7] * 6, seed=5) @ np.random.default_rng(6).standard_normal((6, 6))
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real  # the pytorch-fid route
    diff = a.mean(0) - b.mean(0)
    expected = diff @ diff + np.trace(cov_a + cov_b - 2.0 * root)
    assert frechet_distance(a, b, covariance="sample") == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_is_symmetric_and_grows_with_a_mean_shift():
    a = gaussian_rows(400, [0.0] * 3, [1.0] * 3, seed=7)
    b = gaussian_rows(300, [0.2] * 3, [1.3] * 3, seed=8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    shifts = [0.0, 0.5, 1.0, 2.0]
    values = [frechet_distance(a, b + s) for s in shifts]
    assert all(x < y for x, y in zip(values, values[1:]))
    # a pure shift of one set by v keeps the covariances equal, so FD(a, a + v) = |v|^2 exactly
    v = np.array([1.0, -2.0, 0.5])
    assert frechet_distance(a, a + v) == pytest.approx(v @ v, rel=1e-9)


def test_trace_sqrt_product_handles_singular_covariances():
    # commuting PSD matrices with zero eigenvalues: Tr sqrt(AB) = sum sqrt(a_i b_i)
    q, _ = np.linalg.qr(np.random.default_rng(9).standard_normal((5, 5)))
    a_vals, b_vals = np.array([2.0, 0.0, 1.0, 0.0, 3.0]), np.array([0.5, 4.0, 0.0, 0.0, 3.0])
    cov_a, cov_b = q @ np.diag(a_vals) @ q.T, q @ np.diag(b_vals) @ q.T
    assert trace_sqrt_product(cov_a, cov_b) == pytest.approx(np.sum(np.sqrt(a_vals * b_vals)), rel=1e-7)


def test_frechet_distance_with_fewer_rows_than_dimensions():
    a = gaussian_rows(20, [0.0] * 50, [1.0] * 50, seed=10)
    b = gaussian_rows(25, [0.0] * 50, [1.0] * 50, seed=11)
    shrunk, sample = frechet_distance(a, b), frechet_distance(a, b, covariance="sample")
    assert shrunk == frechet_distance(a, b, covariance="shrunk")  # "auto" picks shrinkage when N <= D
    assert np.isfinite(sample) and np.isfinite(shrunk) and shrunk >= 0
    assert frechet_distance(a, b + 3.0) > shrunk
    with pytest.raises(EmoaugError, match="at least 2 rows"):
        frechet_distance(a[:1], b)


# ------------------------------------------------------------------------------------------ MAD
def test_mad_of_identical_sets_is_zero(real_sets):
    values = mad(real_sets["train"], real_sets["train"], real_sets["normaliser"])
    assert set(values) == {*LABELS, OVERALL}
    assert all(v == pytest.approx(0.0, abs=1e-7) for v in values.values())


def test_mad_exact_value_on_a_hand_built_case():
    # two bins x two frames; the training rows span -80..0 dB, so s = 2 (dB + 80) / 80 - 1
    real_db = np.array([[[-80, -80], [0, 0]], [[-40, -40], [-40, -40]]], dtype=np.float32)
    gen_db = np.array([[[-60, -60], [-20, -20]], [[-40, -20], [-40, -40]]], dtype=np.float32)
    y = np.array([0, 1])
    labels = ("neutral", "happy")
    for method in ("zscore", "minmax", "none"):  # the value must not depend on the normaliser
        normaliser = Normaliser(method).fit([real_db])

        def fs(db):
            return FeatureSet(x=torch.from_numpy(np.asarray(normaliser.transform(db), np.float32)),
                              y=torch.from_numpy(y), labels=labels, item_ids=["a", "b"])

        values = mad(fs(real_db), fs(gen_db), normaliser)
        # neutral: real bin means (-1, 1), generated (-0.5, 0.5) -> (0.5 + 0.5) / 2
        # happy: real (0, 0), generated bin 0 mean of (0, 0.5) = 0.25, bin 1 0 -> 0.125
        assert values["neutral"] == pytest.approx(0.5, abs=1e-6)
        assert values["happy"] == pytest.approx(0.125, abs=1e-6)
        assert values[OVERALL] == pytest.approx(0.3125, abs=1e-6)


def test_mad_of_a_constant_db_shift_is_twice_the_shift_over_the_range(real_sets):
    train_db, normaliser = real_sets["train_db"], real_sets["normaliser"]
    shifted = featureset(train_db + 3.0, real_sets["train_y"], normaliser, "gen:")
    scale = MelScale.fit(real_sets["train"], normaliser)
    assert scale.low_db == pytest.approx(train_db.min(), abs=1e-3)
    assert scale.high_db == pytest.approx(train_db.max(), abs=1e-3)
    expected = 2 * 3.0 / (train_db.max() - train_db.min())
    values = mad(real_sets["train"], shifted, normaliser)
    assert all(v == pytest.approx(expected, rel=1e-4) for v in values.values())


# ------------------------------------------------------------------------------- judge accuracy
def test_judge_accuracy_uses_the_intended_emotion_as_truth(real_sets):
    gen_db, gen_y = draw_db(30, seed=3)  # 10 rows per emotion
    generated = featureset(gen_db, gen_y, real_sets["normaliser"], "gen:")
    # the judge recognises neutral, calls every happy item sad, gets sad right
    judge = StubJudge(lambda true: "sad" if true == "happy" else true)
    values = judge_accuracy(judge, generated, LABELS)
    assert values["neutral"]["judge_recall"] == 1.0
    assert values["happy"]["judge_recall"] == 0.0
    assert values["sad"]["judge_recall"] == 1.0
    assert values[OVERALL]["judge_wa"] == pytest.approx(20 / 30)
    assert values[OVERALL]["judge_ua"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------- memorisation
def vectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 64)), np.arange(n) % 2


def test_copies_of_training_rows_are_flagged_as_memorised():
    train, _ = vectors(200, seed=0)
    heldout, heldout_y = vectors(100, seed=1)
    pick = np.random.default_rng(2).choice(200, size=80, replace=False)
    copies, copies_y = train[pick] + 1e-4, np.arange(80) % 2  # near-exact copies
    values = memorisation(copies, copies_y, train, heldout, heldout_y, ("a", "b"))
    for group in ("a", "b", OVERALL):
        assert values[group]["nn_ratio"] < 0.01
        assert values[group]["copy_fraction"] == 1.0


def test_new_draws_from_the_same_distribution_are_not_flagged():
    train, _ = vectors(200, seed=0)
    heldout, heldout_y = vectors(100, seed=1)
    fresh, fresh_y = vectors(200, seed=3)
    values = memorisation(fresh, fresh_y, train, heldout, heldout_y, ("a", "b"))[OVERALL]
    assert 0.95 < values["nn_ratio"] < 1.05
    assert values["copy_fraction"] < 0.15
    # a new draw is as far from the held-out rows as from the training rows (200 vs 100 rows: a bit farther)
    assert values["nn_heldout"] >= values["nn_train"]


def test_nearest_distances_in_blocks_equal_the_brute_force_and_queries_are_capped(monkeypatch):
    from emoaug.quality import nearest_distances

    train, _ = vectors(300, seed=0)
    query = vectors(70, seed=4)[0].astype(np.float32)  # float32 rows, converted block by block
    brute = np.sqrt(((query[:, None, :].astype(np.float64) - train[None]) ** 2).mean(axis=2)).min(axis=1)
    blocked = nearest_distances(query, train, chunk=16, reference_chunk=50)
    np.testing.assert_allclose(blocked, brute, rtol=1e-9)
    import emoaug.quality as quality

    kept = quality.ReferenceBlocks(train, 50)  # 300 x 8 float64 values: kept converted
    assert kept.kept is not None and np.array_equal(nearest_distances(query, kept, chunk=16), blocked)
    monkeypatch.setattr(quality, "KEEP_REFERENCE_BYTES", 0)  # read again for every block of queries
    streamed = quality.ReferenceBlocks(train, 50)
    assert streamed.kept is None and np.array_equal(nearest_distances(query, streamed, chunk=16), blocked)
    heldout, heldout_y = vectors(100, seed=1)
    fresh, fresh_y = vectors(400, seed=3)
    full = memorisation(fresh, fresh_y, train, heldout, heldout_y, ("a", "b"))[OVERALL]
    capped = memorisation(fresh, fresh_y, train, heldout, heldout_y, ("a", "b"), max_queries=150)[OVERALL]
    assert capped != full and capped["nn_ratio"] == pytest.approx(full["nn_ratio"], rel=0.05)
    assert memorisation(fresh, fresh_y, train, heldout, heldout_y, ("a", "b"), max_queries=400)[OVERALL] == full


# ------------------------------------------------------------------------------------ diversity
def test_mode_collapse_has_zero_diversity_and_new_draws_have_about_one():
    real, real_y = vectors(200, seed=0)
    fresh, fresh_y = vectors(200, seed=4)
    collapsed = np.repeat(fresh[:2], 100, axis=0)
    collapsed_y = np.array([0, 1] * 100)
    collapsed[collapsed_y == 1] = fresh[1]
    collapsed[collapsed_y == 0] = fresh[0]
    assert diversity(collapsed, collapsed_y, real, real_y, ("a", "b"))[OVERALL] == pytest.approx(0.0, abs=1e-6)
    assert diversity(fresh, fresh_y, real, real_y, ("a", "b"))[OVERALL] == pytest.approx(1.0, abs=0.05)
    half_spread = diversity(0.5 * fresh, fresh_y, real, real_y, ("a", "b"))
    assert half_spread["a"] == pytest.approx(0.5, abs=0.03)


def test_mean_pairwise_distance_subsamples_with_a_seed():
    x, _ = vectors(300, seed=5)
    full = mean_pairwise_distance(x, max_rows=1000)
    first = mean_pairwise_distance(x, max_rows=50, rng=np.random.default_rng(1))
    again = mean_pairwise_distance(x, max_rows=50, rng=np.random.default_rng(1))
    assert first == again and first == pytest.approx(full, rel=0.05)
    # the RMS distance of two independent N(0, 1) vectors is sqrt(2)
    assert full == pytest.approx(np.sqrt(2.0), rel=0.02)


# ------------------------------------------------------------------------------------ entry point
def test_assess_generated_returns_tidy_rows_per_emotion_and_overall(real_sets):
    gen_db, gen_y = draw_db(90, seed=4)
    generated = featureset(gen_db, gen_y, real_sets["normaliser"], "gen:")
    frame = assess_generated(StubJudge(), generated, real_sets["train"], real_sets["test"],
                             real_sets["normaliser"], LABELS)
    assert list(frame.columns) == ["emotion", "measure", "value", "n_generated"]
    assert list(dict.fromkeys(frame["emotion"])) == [*LABELS, OVERALL]
    overall = frame[frame["emotion"] == OVERALL].set_index("measure")
    per_emotion_measures = {"mad", "fd", "fd_real", "judge_recall", "nn_ratio_mel", "copy_fraction_emb",
                            "diversity_mel", "diversity_emb"}
    assert per_emotion_measures <= set(frame[frame["emotion"] == "sad"]["measure"])
    assert {"mad", "mad_sum", "fd", "fd_real", "judge_wa", "judge_ua", "nn_ratio_mel", "nn_ratio_emb",
            "copy_fraction_mel", "diversity_mel"} <= set(overall.index)
    assert not frame["value"].isna().any()
    assert (overall["n_generated"] == 90).all()
    assert (frame[frame["emotion"] == "happy"]["n_generated"] == 30).all()
    # generated rows are new draws from the real distribution: every measure says "like real data"
    assert overall.loc["judge_wa", "value"] == 1.0
    assert overall.loc["mad", "value"] < 0.05
    assert 0.8 < overall.loc["nn_ratio_mel", "value"] < 1.2
    assert 0.8 < overall.loc["diversity_mel", "value"] < 1.2
    assert overall.loc["mad_sum", "value"] == pytest.approx(
        frame[(frame["measure"] == "mad") & (frame["emotion"] != OVERALL)]["value"].sum())


def test_assess_generated_separates_good_from_collapsed_generators(real_sets):
    gen_db, gen_y = draw_db(90, seed=4)
    good = featureset(gen_db, gen_y, real_sets["normaliser"], "gen:")
    collapsed_db = np.repeat(gen_db[:3], 30, axis=0)  # rows 0, 1, 2 are neutral, happy, sad
    collapsed = featureset(collapsed_db + 10.0, np.repeat(gen_y[:3], 30), real_sets["normaliser"], "gen:")

    def overall(fs):
        frame = assess_generated(StubJudge(), fs, real_sets["train"], real_sets["test"], real_sets["normaliser"])
        return frame[frame["emotion"] == OVERALL].set_index("measure")["value"]

    good_values, bad_values = overall(good), overall(collapsed)
    assert bad_values["diversity_mel"] < 0.01 < 0.8 < good_values["diversity_mel"]
    assert bad_values["mad"] > 5 * good_values["mad"]
    assert bad_values["fd"] > 5 * good_values["fd"]
    assert good_values["fd_real"] == bad_values["fd_real"]  # the real-vs-real floor does not depend on the generator


def test_assess_generated_gives_nan_where_a_measure_is_undefined(real_sets):
    # one generated row and no held-out rows: no covariance, no pairs, no baseline -> NaN, no crash
    gen_db, gen_y = draw_db(1, seed=6)
    generated = featureset(gen_db, gen_y, real_sets["normaliser"], "gen:")
    empty_test = real_sets["test"].subset([])
    frame = assess_generated(StubJudge(), generated, real_sets["train"], empty_test, real_sets["normaliser"])
    values = frame[frame["emotion"] == OVERALL].set_index("measure")["value"]
    for measure in ("fd", "fd_real", "nn_ratio_mel", "copy_fraction_emb", "diversity_mel"):
        assert np.isnan(values[measure]), measure
    assert np.isfinite(values["mad"]) and np.isfinite(values["nn_train_mel"]) and values["judge_wa"] == 1.0


def test_assess_generated_rejects_mismatched_sets(real_sets):
    other = FeatureSet(x=torch.zeros(4, N_MELS, N_FRAMES), y=torch.zeros(4, dtype=torch.int64),
                       labels=("neutral", "angry"), item_ids=list("abcd"))
    with pytest.raises(ValueError, match="label sets differ"):
        assess_generated(StubJudge(), other, real_sets["train"], real_sets["test"], real_sets["normaliser"])


@pytest.fixture
def one_torch_thread():
    """A tiny network trains 100x faster on one thread than on threads fighting over busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_assess_generated_with_a_real_classifier_as_judge(real_sets, one_torch_thread):
    judge = SERClassifier("cnn_blstm", TrainConfig(epochs=2, batch_size=32, seed=0, patience=None),
                          channels=8, lstm_hidden=4, lstm_layers=1, time_pool=1).fit(real_sets["train"])
    gen_db, gen_y = draw_db(30, seed=5)
    generated = featureset(gen_db, gen_y, real_sets["normaliser"], "gen:")
    frame = assess_generated(judge, generated, real_sets["train"], real_sets["test"], real_sets["normaliser"])
    values = frame[frame["emotion"] == OVERALL].set_index("measure")["value"]
    assert 0.0 <= values["judge_wa"] <= 1.0 and 0.0 <= values["judge_ua"] <= 1.0
    assert values["fd"] >= 0.0 and np.isfinite(values["fd"])
    # the judge's own recognition of the generated items matches what predict_items says
    items = judge.predict_items(generated)
    assert values["judge_wa"] == pytest.approx(float((items["y_true"] == items["y_pred"]).mean()))


# ------------------------------------------------------------------------------ rows read lazily
def test_mel_rows_read_lazily_equal_the_converted_set(real_sets):
    train, normaliser = real_sets["train"], real_sets["normaliser"]
    scale = MelScale.fit(train, normaliser)
    whole, rows = scale.apply(train, normaliser), scale.view(train, normaliser)
    mask = train.y.numpy() == 1
    index = np.array([5, 0, 77, 3])
    assert rows.shape == whole.shape and len(rows) == len(whole)
    np.testing.assert_array_equal(rows[10:300], whole[10:300])
    np.testing.assert_array_equal(rows[mask], whole[mask])
    np.testing.assert_array_equal(rows[index], whole[index])
    np.testing.assert_array_equal(rows.subset(index)[1:3], whole[index][1:3])


def stored_copy(fs: FeatureSet) -> FeatureSet:
    """``fs`` with its rows in a file, as a worker's fold sets are (their x is then a map of the file)."""
    from emoaug.featureset import RowFile

    stored = RowFile.write([fs.x.numpy()], fs.x.shape[1:])
    return FeatureSet(x=stored.as_tensor(), y=fs.y, labels=fs.labels, item_ids=fs.item_ids, speakers=fs.speakers,
                      stored=stored)


@pytest.mark.parametrize("max_rows", [500, 20])  # 20: diversity samples rows of each class
def test_assess_generated_reading_rows_lazily_gives_the_numbers_of_converted_copies(real_sets, monkeypatch,
                                                                                   max_rows):
    """The measures read rows a block or a class at a time (a sample of held-out rows stays unconverted); the
    numbers are those of whole converted copies, to the last bit, also where samples and blocks are used, and
    when the real rows are read from files."""
    import emoaug.quality as quality

    train, test, normaliser = real_sets["train"], real_sets["test"], real_sets["normaliser"]
    gen_db, gen_y = draw_db(90, seed=3)
    generated = featureset(gen_db + 1.0, gen_y, normaliser, "g")
    kwargs = {"max_queries": 50}  # held-out and generated rows sampled, as at scale
    monkeypatch.setattr(quality, "memorisation", lambda *a, _m=quality.memorisation, **k: _m(*a, **k, **kwargs))
    monkeypatch.setattr(quality, "nearest_distances",
                        lambda q, r, _n=quality.nearest_distances: _n(q, r, chunk=16, reference_chunk=32))
    monkeypatch.setattr(quality, "REFERENCE_BLOCK_ROWS", 32)  # the training rows, searched twice, in blocks too
    lazy = assess_generated(StubJudge(), generated, train, test, normaliser, max_rows=max_rows)
    from_files = assess_generated(StubJudge(), generated, stored_copy(train), stored_copy(test), normaliser,
                                  max_rows=max_rows)
    monkeypatch.setattr(MelScale, "view", MelScale.apply)
    copies = assess_generated(StubJudge(), generated, train, test, normaliser, max_rows=max_rows)
    pd.testing.assert_frame_equal(lazy, copies, check_exact=True)
    pd.testing.assert_frame_equal(from_files, copies, check_exact=True)
