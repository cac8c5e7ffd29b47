"""Classifier builders, the training loop and device resolution, on tiny tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoaug.classifiers import (
    SERClassifier,
    TrainConfig,
    aggregate_items,
    available_classifiers,
    balanced_class_weights,
    build_model,
    cnn_blstm,
    get_builder,
    deterministic_algorithms,
    resnet50,
)
from emoaug.devices import resolve_device
from emoaug.errors import EmoaugError
from emoaug.featureset import FeatureSet

LABELS = ("neutral", "angry")
SMALL = {"channels": 16, "kernel_size": 3, "lstm_hidden": 8, "lstm_layers": 2}


def separable_set(n: int = 32, n_mels: int = 12, n_frames: int = 16, seed: int = 0, flip: bool = False) -> FeatureSet:
    """Class 1 has a bright band in the upper mel bins; ``flip`` swaps the labels (an adversarial val set)."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, n_mels, n_frames, generator=gen)
    x[:, n_mels // 2 :, :] += 2.0 * y[:, None, None]
    labels_y = 1 - y if flip else y
    return FeatureSet(x=x, y=labels_y.long(), labels=LABELS, item_ids=[f"s{seed}/{i}" for i in range(n)])


def config(**overrides) -> TrainConfig:
    return TrainConfig(**{"epochs": 4, "batch_size": 8, "lr": 3e-3, "patience": None, "seed": 0, **overrides})


# ------------------------------------------------------------------ models
def test_cnn_blstm_shapes():
    model = cnn_blstm(20, 4, **SMALL).eval()
    for n_frames in (50, 7, 3):  # pooling must not collapse short inputs
        x = torch.randn(3, 20, n_frames)
        assert model(x).shape == (3, 4)
        assert model.embed(x).shape == (3, 2 * SMALL["lstm_hidden"])
    with pytest.raises(ValueError, match="20"):
        model(torch.randn(3, 21, 10))


def test_cnn_blstm_defaults_follow_the_paper():
    model = cnn_blstm(128, 4)
    convs = [m for m in model.conv if isinstance(m, torch.nn.Sequential)]
    assert len(convs) == 3
    assert all(block[0].out_channels == 128 and block[0].kernel_size == (5,) for block in convs)
    assert all(block[3].p == pytest.approx(0.1) for block in convs)
    assert model.lstm.bidirectional and model.lstm.num_layers == 2 and model.lstm.dropout == pytest.approx(0.2)


def test_resnet50_shapes_once():
    model = resnet50(5).eval()
    assert model.net.conv1.in_channels == 1
    with torch.no_grad():
        x = torch.randn(2, 32, 40)
        assert model(x).shape == (2, 5)
        assert model.embed(x).shape == (2, 2048)


def test_registry_and_unknown_names():
    assert set(available_classifiers()) == {"cnn_blstm", "resnet50"}
    assert all(callable(get_builder(name)) for name in available_classifiers())
    with pytest.raises(EmoaugError, match="--classifier"):
        build_model("vgg", n_mels=10, n_classes=2)
    with pytest.raises(EmoaugError, match="--classifier"):
        build_model("cnn_blstm", n_mels=10, n_classes=2, hidden_units=3)
    with pytest.raises(EmoaugError, match="--classifier"):
        SERClassifier("vgg", config()).fit(separable_set())


# ---------------------------------------------------------------- training
def test_training_lowers_the_loss_and_learns():
    train = separable_set()
    clf = SERClassifier("cnn_blstm", config(epochs=8), **SMALL).fit(train)
    losses = [h["train_loss"] for h in clf.history]
    assert len(losses) == 8
    assert losses[-1] < 0.7 * losses[0]
    proba = clf.predict_proba(train)
    assert proba.shape == (len(train), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba.argmax(axis=1) == train.y.numpy()).mean() >= 0.9


def test_same_seed_gives_identical_weights_and_predictions():
    train, val = separable_set(seed=0), separable_set(seed=1)
    runs = [SERClassifier("cnn_blstm", config(epochs=2, seed=s), **SMALL).fit(train, val) for s in (5, 5, 6)]
    first, again, other = (r.state_dict()["model"] for r in runs)
    assert all(torch.equal(first[k], again[k]) for k in first)
    np.testing.assert_array_equal(runs[0].predict_proba(val), runs[1].predict_proba(val))
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_training_on_stacked_parts_equals_training_on_their_concatenation():
    from emoaug.featureset import StackedFeatureSet

    real, generated, val = separable_set(n=20, seed=0), separable_set(n=13, seed=2), separable_set(seed=1)
    stacked = StackedFeatureSet([real, generated, real.subset([])])
    index = torch.tensor([32, 0, 19, 20, 5, 21])
    assert torch.equal(stacked.rows(index), FeatureSet.concat([real, generated]).x[index]) and len(stacked) == 33
    for options in ({}, {"input_norm": "bins"}):
        runs = [SERClassifier("cnn_blstm", config(epochs=2, **options), **SMALL).fit(train, val)
                for train in (FeatureSet.concat([real, generated]), stacked)]
        first, second = (r.state_dict()["model"] for r in runs)
        assert all(torch.equal(first[k], second[k]) for k in first)


def test_bf16_precision_is_deterministic_learns_and_is_kept_by_a_checkpoint():
    train, val = separable_set(seed=0), separable_set(seed=1)
    runs = [SERClassifier("cnn_blstm", config(epochs=3, precision=p), **SMALL).fit(train, val)
            for p in ("bf16", "bf16", "fp32")]
    bf16, again, fp32 = (r.state_dict()["model"] for r in runs)
    assert all(torch.equal(bf16[k], again[k]) for k in bf16)
    assert not all(torch.equal(bf16[k], fp32[k]) for k in bf16)  # other arithmetic, other numbers
    assert all(v.dtype != torch.bfloat16 for v in bf16.values())  # weights stay fp32
    proba = runs[0].predict_proba(val)
    assert proba.dtype == np.float32 and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    restored = SERClassifier.from_state_dict(runs[0].state_dict())
    assert restored.train_config.precision == "bf16"
    np.testing.assert_array_equal(restored.predict_proba(val), proba)
    with pytest.raises(EmoaugError, match="precision"):
        TrainConfig(precision="fp16")


def test_fit_leaves_global_state_as_it_was():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    SERClassifier("cnn_blstm", config(epochs=1), **SMALL).fit(separable_set())
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG stream is untouched
    assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_context_restores_previous_setting():
    cpu = torch.device("cpu")
    before = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        with deterministic_algorithms(cpu):
            assert torch.are_deterministic_algorithms_enabled()
            assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
    with pytest.raises(RuntimeError), deterministic_algorithms(cpu):
        raise RuntimeError("boom")
    assert torch.are_deterministic_algorithms_enabled() == before


@pytest.mark.parametrize("flip_val", [True, False])
def test_early_stopping_restores_the_best_epoch(flip_val):
    # flipped val labels: the better the model fits train, the worse its val UA (best epoch early);
    # plain val: UA climbs to its maximum and stays there (ties keep the first best epoch)
    train = separable_set(seed=0)
    val = separable_set(seed=1, flip=flip_val)
    patience = 3
    stopped = SERClassifier("cnn_blstm", config(epochs=20, patience=patience), **SMALL).fit(train, val)
    best = stopped.best_epoch
    val_ua = [h["val_ua"] for h in stopped.history]
    assert len(stopped.history) == best + patience < 20
    assert val_ua.index(max(val_ua)) == best - 1
    # validation draws no random numbers, so training for `best` epochs without val reaches the same weights
    at_best = SERClassifier("cnn_blstm", config(epochs=best), **SMALL).fit(train)
    at_end = SERClassifier("cnn_blstm", config(epochs=len(stopped.history)), **SMALL).fit(train)
    np.testing.assert_array_equal(stopped.predict_proba(val), at_best.predict_proba(val))
    assert not np.array_equal(stopped.predict_proba(val), at_end.predict_proba(val))


def test_a_lone_trailing_row_joins_the_previous_batch():
    # BatchNorm cannot train on a batch of one row; 9 rows in batches of 8 must not leave one alone
    from emoaug.classifiers.training import _batches

    sizes = [len(b) for b in _batches(torch.arange(9), 8)]
    assert sizes == [9]
    assert [len(b) for b in _batches(torch.arange(17), 8)] == [8, 9]
    assert [len(b) for b in _batches(torch.arange(10), 8)] == [8, 2]
    assert [len(b) for b in _batches(torch.arange(1), 8)] == [1]
    batches = _batches(torch.randperm(17), 8)
    assert sorted(torch.cat(batches).tolist()) == list(range(17))


def test_balanced_class_weights_by_hand():
    weights = balanced_class_weights(torch.tensor([0, 0, 0, 1]), n_classes=3)
    torch.testing.assert_close(weights, torch.tensor([4 / (2 * 3), 4 / (2 * 1), 0.0]))
    clf = SERClassifier("cnn_blstm", config(epochs=1, class_weight="balanced"), **SMALL).fit(separable_set())
    assert len(clf.history) == 1
    with pytest.raises(EmoaugError, match="class_weight"):
        TrainConfig(class_weight="inverse")


# -------------------------------------------------------------- inference
def test_aggregate_items_averages_segment_probabilities():
    proba = np.array([[0.6, 0.4], [0.2, 0.8], [0.9, 0.1], [0.7, 0.3], [0.1, 0.9]])
    items = aggregate_items(proba, ["u1", "u1", "u2", "u1", "u3"], np.array([0, 0, 1, 0, 1]), LABELS)
    assert list(items.columns) == ["item_id", "y_true", "y_pred", "prob_neutral", "prob_angry"]
    assert items["item_id"].tolist() == ["u1", "u2", "u3"]
    # u1: mean of (0.6, 0.2, 0.7) = 0.5 vs (0.4, 0.8, 0.3) = 0.5 -> tie goes to the first label
    assert items.loc[0, "prob_neutral"] == pytest.approx(0.5) and items.loc[0, "y_pred"] == "neutral"
    assert items["y_true"].tolist() == ["neutral", "angry", "angry"]
    assert items["y_pred"].tolist() == ["neutral", "neutral", "angry"]
    with pytest.raises(ValueError, match="u1"):
        aggregate_items(proba[:2], ["u1", "u1"], np.array([0, 1]), LABELS)


def test_predict_items_majority_of_segments_is_not_the_rule():
    proba = np.array([[0.55, 0.45], [0.55, 0.45], [0.0, 1.0]])  # 2 of 3 segments vote neutral
    items = aggregate_items(proba, ["u", "u", "u"], np.zeros(3), LABELS)
    assert items["prob_angry"].item() == pytest.approx((0.45 + 0.45 + 1.0) / 3)
    assert items["y_pred"].item() == "angry"


def test_predict_items_embed_and_checkpoint_round_trip():
    train = separable_set()
    by_class = train.subset(torch.argsort(train.y, stable=True))  # consecutive pairs share a label
    segmented = FeatureSet(by_class.x, by_class.y, LABELS, [f"item{i // 2}" for i in range(len(train))])
    clf = SERClassifier("cnn_blstm", config(epochs=2), **SMALL).fit(train)
    items = clf.predict_items(segmented)
    assert len(items) == len(train) // 2
    expected = clf.predict_proba(segmented).reshape(-1, 2, 2).mean(axis=1)
    np.testing.assert_allclose(items[["prob_neutral", "prob_angry"]].to_numpy(), expected, rtol=1e-6)
    assert clf.embed(train).shape == (len(train), 2 * SMALL["lstm_hidden"])
    restored = SERClassifier.from_state_dict(clf.state_dict())
    np.testing.assert_array_equal(restored.predict_proba(train), clf.predict_proba(train))
    assert restored.history == clf.history


def test_predict_before_fit_is_a_clear_error():
    with pytest.raises(EmoaugError, match="before fit"):
        SERClassifier("cnn_blstm", config()).predict_proba(separable_set())


# ---------------------------------------------------------------- devices
def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(EmoaugError, match="--device") as err:
            resolve_device(spec)
        assert "\n" not in str(err.value)
    with pytest.raises(EmoaugError, match="--device"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(EmoaugError, match="cuda:1"):
        resolve_device("cuda:1")


def test_train_config_round_trip():
    cfg = config(max_grad_norm=1.0)
    assert TrainConfig(**cfg.to_dict()) == cfg
    clf = SERClassifier("cnn_blstm", cfg, **SMALL).fit(separable_set())
    assert np.isfinite(clf.history[-1]["train_loss"])


# ------------------------------------------------------------------ protocol levers (issue 12)
def test_bin_standardisation_uses_training_rows_only_and_survives_a_checkpoint():
    train, shifted = separable_set(seed=1), separable_set(seed=2)
    shifted = FeatureSet(shifted.x * 10 + 5, shifted.y, LABELS, shifted.item_ids)  # another scale entirely
    clf = SERClassifier("cnn_blstm", config(epochs=2, input_norm="bins"), **SMALL).fit(train, shifted)
    mean, std = clf.bin_stats
    flat = train.x.transpose(0, 1).reshape(train.n_mels, -1).double()
    np.testing.assert_allclose(mean[:, 0].numpy(), flat.mean(dim=1).numpy(), rtol=1e-5, atol=1e-6)
    assert torch.all(std > 0)
    restored = SERClassifier.from_state_dict(clf.state_dict())
    np.testing.assert_array_equal(restored.predict_proba(shifted), clf.predict_proba(shifted))


def test_utterance_mean_removes_each_rows_own_bin_means_and_nothing_else():
    train = separable_set(seed=6)
    clf = SERClassifier("cnn_blstm", config(epochs=2, input_norm="utterance_mean"), **SMALL).fit(train)
    x = train.x[:4]
    seen = clf._inputs(x)
    torch.testing.assert_close(seen.mean(dim=-1), torch.zeros(4, train.n_mels), atol=1e-5, rtol=0)
    torch.testing.assert_close(seen - x, (seen - x)[..., :1].expand_as(x))  # one shift per (row, bin)
    # a row's own statistics only: a constant offset per bin (level of speaker or channel) changes nothing
    offset = torch.linspace(-3, 3, train.n_mels)[None, :, None]
    torch.testing.assert_close(clf._inputs(x + offset), seen, atol=1e-5, rtol=0)
    np.testing.assert_allclose(clf.predict_proba(FeatureSet(train.x + offset, train.y, LABELS, train.item_ids)),
                               clf.predict_proba(train), atol=1e-5)


def test_cosine_schedule_anneals_the_learning_rate_to_zero():
    from emoaug.classifiers.training import _lr_schedule

    clf = SERClassifier("cnn_blstm", config(epochs=3, lr_schedule="cosine"), **SMALL).fit(separable_set())
    assert len(clf.history) == 3 and clf.history[-1]["train_loss"] < clf.history[0]["train_loss"]

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    schedule = _lr_schedule(optimizer, "cosine", total_steps=4)
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen[0] == pytest.approx(0.5) and seen == sorted(seen, reverse=True)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_refit_trains_again_on_train_and_validation_for_the_chosen_epochs():
    train, val = separable_set(seed=3), separable_set(seed=4)
    clf = SERClassifier("cnn_blstm", config(epochs=4, refit=True), **SMALL).fit(train, val)
    first = [r for r in clf.history if not r["refit"]]
    again = [r for r in clf.history if r["refit"]]
    assert len(first) == 4 and len(again) == clf.best_epoch
    assert all(np.isnan(r["val_ua"]) for r in again)


@pytest.mark.parametrize(("field", "value"), [("lr_schedule", "step"), ("input_norm", "global")])
def test_unknown_protocol_levers_are_errors(field, value):
    with pytest.raises(EmoaugError, match=field):
        config(**{field: value})


@pytest.mark.parametrize("pooling", ["mean", "mean_std", "max", "attention"])
def test_every_pooling_keeps_rows_independent_and_learns(pooling):
    model = cnn_blstm(12, 2, pooling=pooling, **SMALL).eval()
    x = torch.randn(3, 12, 16)
    assert model.embed(x).shape == (3, model.embedding_dim) and model(x).shape == (3, 2)
    # pooling over time: a row's embedding depends on its own frames only, never on its batch-mates
    torch.testing.assert_close(model.embed(x[:1]), model.embed(x)[:1])
    clf = SERClassifier("cnn_blstm", config(epochs=6), pooling=pooling, **SMALL).fit(separable_set())
    predicted = clf.predict_items(separable_set(seed=5))
    assert (predicted["y_true"] == predicted["y_pred"]).mean() >= 0.9


def test_attention_pooling_weights_frames_and_max_pooling_takes_the_maximum():
    model = cnn_blstm(12, 2, pooling="attention", **SMALL).eval()
    x = torch.randn(2, 12, 16)
    sequence, _ = model.lstm(model.conv(x).transpose(1, 2))
    weights = torch.softmax(model.attention(sequence), dim=1)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 1))
    torch.testing.assert_close(model.embed(x), (weights * sequence).sum(dim=1))
    maxed = cnn_blstm(12, 2, pooling="max", **SMALL).eval()
    sequence, _ = maxed.lstm(maxed.conv(x).transpose(1, 2))
    torch.testing.assert_close(maxed.embed(x), sequence.amax(dim=1))


def test_label_smoothing_softens_the_targets():
    train = separable_set()
    plain = SERClassifier("cnn_blstm", config(epochs=6), **SMALL).fit(train)
    smooth = SERClassifier("cnn_blstm", config(epochs=6, label_smoothing=0.3), **SMALL).fit(train)
    # with smoothing the loss cannot approach 0 (its floor is the entropy of the smoothed targets) and the
    # model is less sure of itself
    assert smooth.history[-1]["train_loss"] > plain.history[-1]["train_loss"]
    assert smooth.predict_proba(train).max(axis=1).mean() < plain.predict_proba(train).max(axis=1).mean()
    with pytest.raises(EmoaugError, match="label_smoothing"):
        config(label_smoothing=1.0)
