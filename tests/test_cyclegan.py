"""The ``cyclegan`` emotion-conversion generator: shapes, training, generation contract, checkpoints."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from emoaug.config import PROFILES
from emoaug.errors import EmoaugError
from emoaug.featureset import FeatureSet
from emoaug.generators import get_generator_class
from emoaug.generators.cyclegan import (
    CycleGAN,
    ConversionGenerator,
    ProjectionDiscriminator,
    cycle_identity_losses,
    other_targets,
    pad_to_multiple,
    random_crops,
)

LABELS = ("neutral", "happy", "sad")
N_MELS, N_FRAMES = 13, 21  # neither a multiple of the down-sampling factor 4
TINY = {"channels": 2, "residual_channels": 8, "n_blocks": 1, "disc_channels": 2, "steps": 3, "batch_size": 4}


def make_train(counts=(4, 3, 3), n_mels: int = N_MELS, n_frames: int = N_FRAMES) -> FeatureSet:
    """Rows in [-1, 1] like minmax-normalised log-mels; class-dependent offset so classes differ."""
    y = torch.tensor([c for c, n in enumerate(counts) for _ in range(n)], dtype=torch.int64)
    rng = torch.Generator().manual_seed(0)
    x = (torch.rand((len(y), n_mels, n_frames), generator=rng) - 0.5) + 0.3 * (y.float() - 1).view(-1, 1, 1)
    return FeatureSet(x=x, y=y, labels=LABELS, item_ids=[f"c/{LABELS[c]}{i}" for i, c in enumerate(y.tolist())],
                      speakers=[f"c/spk{i % 3}" for i in range(len(y))])


def fitted(train: FeatureSet | None = None, **config) -> CycleGAN:
    return CycleGAN(**{**TINY, **config}).fit(train if train is not None else make_train())


def source_ids(generated: FeatureSet) -> list[str]:
    """``gen:cyclegan:<source id>:<k>`` -> source id (ids here contain no ':')."""
    return [item_id.split(":")[2] for item_id in generated.item_ids]


# ----- networks ------------------------------------------------------------------------------------


def test_pad_to_multiple_repeats_the_edge():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(1, 2, 3, 5)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 2, 4, 8)
    assert torch.equal(padded[..., :3, :5], x)
    assert torch.equal(padded[..., 3, :5], x[..., 2, :])  # last mel bin repeated
    assert torch.equal(padded[..., :3, 7], x[..., :, 4])  # last frame repeated
    assert pad_to_multiple(torch.zeros(1, 1, 8, 4), 4).shape == (1, 1, 8, 4)
    assert pad_to_multiple(torch.zeros(1, 1, 8, 1), 4, min_frames=8).shape == (1, 1, 8, 8)


def test_random_crops_are_contiguous_windows_of_each_row():
    x = torch.arange(3 * 2 * 30, dtype=torch.float32).reshape(3, 2, 30)
    crops = random_crops(x, 8, torch.Generator().manual_seed(0))
    assert crops.shape == (3, 2, 8)
    for row, crop in zip(x, crops):
        start = int(crop[0, 0] - row[0, 0])
        assert torch.equal(crop, row[:, start:start + 8])
    assert random_crops(x, 64, torch.Generator()) is x and random_crops(x, None, torch.Generator()) is x


@pytest.mark.parametrize("n_mels, n_frames", [(13, 21), (13, 5), (16, 32), (9, 1)])
def test_networks_keep_any_shape(n_mels, n_frames):
    torch.manual_seed(0)
    gen = ConversionGenerator(n_mels, 3, channels=2, residual_channels=8, n_blocks=2, residual_output=True)
    disc = ProjectionDiscriminator(n_mels, 3, channels=2)
    x = torch.randn(3, n_mels, n_frames)
    target = torch.tensor([0, 1, 2])
    out = gen(x, target)
    assert out.shape == x.shape and torch.isfinite(out).all()
    scores, logits = disc(out, target)
    assert scores.shape == (3, -(-n_frames // 4)) and logits.shape == (3, 3)


def test_generator_output_depends_on_the_target_emotion():
    torch.manual_seed(0)
    gen = ConversionGenerator(N_MELS, 3, channels=2, residual_channels=8, n_blocks=1, residual_output=False)
    with torch.no_grad():  # a non-identity conditioning, as training would make it
        for block in gen.blocks:
            block.norm_out.shift.weight.normal_()
    x = torch.randn(1, N_MELS, N_FRAMES).expand(3, -1, -1)
    out = gen(x, torch.tensor([0, 1, 2]))
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


def test_other_targets_never_pick_the_source_and_reach_every_other_present_class():
    present = torch.tensor([0, 2, 3])  # class 1 has no training rows
    source = torch.tensor([0, 2, 3] * 200)
    target = other_targets(source, present, torch.Generator().manual_seed(0))
    assert not (target == source).any()
    assert set(target.tolist()) == {0, 2, 3}
    for cls in (0, 2, 3):
        assert set(target[source == cls].tolist()) == {0, 2, 3} - {cls}


def test_training_steps_lower_cycle_and_identity_loss_on_a_tiny_batch():
    train = make_train()
    target = (train.y + 1) % len(LABELS)  # fixed, never the source
    assert not (target == train.y).any()

    def reconstruction(gen: CycleGAN) -> float:
        with torch.no_grad():
            parts = cycle_identity_losses(gen.generator, train.x, train.y, target)
        return float(10 * parts["cyc"] + 5 * parts["id"])

    # Same seed -> the same initial weights; one model takes 1 step, the other 40.
    before = reconstruction(fitted(train, steps=1, lr_g=1e-3))
    trained = fitted(train, steps=40, lr_g=1e-3)
    after = reconstruction(trained)
    assert after < 0.7 * before
    assert len(trained.history) == 40 and trained.history[-1]["step"] == 40
    assert {"loss_g", "loss_d", "adv_g", "adv_d", "cyc", "id", "cls_g", "cls_d"} <= set(trained.history[0])


# ----- generation ----------------------------------------------------------------------------------


def test_generate_counts_ids_and_speakers_come_from_the_sources():
    train = make_train()
    gen = fitted(train)
    out = gen.generate({"neutral": 2, "happy": 5, "sad": 0}, seed=3)
    assert out.class_counts() == {"neutral": 2, "happy": 5, "sad": 0}
    assert out.x.shape == (7, N_MELS, N_FRAMES) and out.labels == LABELS
    assert all(i.startswith("gen:cyclegan:") for i in out.item_ids) and len(set(out.item_ids)) == 7
    row_of = {item_id: k for k, item_id in enumerate(train.item_ids)}
    assert out.speakers == [train.speakers[row_of[s]] for s in source_ids(out)]


def test_sources_are_source_emotion_rows_except_for_the_source_emotion_itself():
    train = make_train()
    labels_of = dict(zip(train.item_ids, train.label_names()))
    out = fitted(train).generate({"neutral": 6, "happy": 4, "sad": 4}, seed=0)
    for target, source in zip(out.label_names(), source_ids(out)):
        if target == "neutral":
            assert labels_of[source] != "neutral"  # X -> neutral
        else:
            assert labels_of[source] == "neutral"  # neutral -> X
    # Another source emotion: sad rows feed happy and neutral; sad itself is made from the others.
    out = fitted(train, source_emotion="sad").generate({"neutral": 3, "happy": 3, "sad": 3}, seed=0)
    for target, source in zip(out.label_names(), source_ids(out)):
        assert (labels_of[source] == "sad") == (target != "sad")


def test_sources_cycle_through_every_row_before_repeating():
    train = make_train()  # 4 neutral rows
    out = fitted(train).generate({"happy": 3, "sad": 8}, seed=1)
    happy = [s for s, t in zip(source_ids(out), out.label_names()) if t == "happy"]
    sad = [s for s, t in zip(source_ids(out), out.label_names()) if t == "sad"]
    assert len(set(happy)) == 3
    assert Counter(sad) == {f"c/neutral{i}": 2 for i in range(4)}
    assert len(set(sad[:4])) == 4  # the first cycle uses every neutral row once


def test_generate_is_deterministic_per_seed_and_leaves_the_training_rows_alone():
    train = make_train()
    kept = train.x.clone()
    gen = fitted(train)
    want = {"neutral": 3, "happy": 4, "sad": 4}
    first, again, other = gen.generate(want, seed=5), gen.generate(want, seed=5), gen.generate(want, seed=6)
    assert torch.equal(first.x, again.x) and first.item_ids == again.item_ids
    assert first.item_ids != other.item_ids
    assert torch.equal(train.x, kept)
    # A class's rows do not depend on what else was requested.
    alone = gen.generate({"happy": 4}, seed=5)
    assert torch.equal(alone.x, first.x[first.y == 1])
    # The conversion really changes the rows (it is not a copy of its sources).
    row_of = {item_id: k for k, item_id in enumerate(train.item_ids)}
    sources = train.x[[row_of[s] for s in source_ids(first)]]
    assert not torch.allclose(first.x, sources)


# ----- errors and registry ---------------------------------------------------------------------------


def test_missing_source_emotion_is_a_one_line_error():
    no_neutral = make_train(counts=(0, 3, 3))
    with pytest.raises(EmoaugError, match="no rows of source_emotion='neutral'.*cyclegan generator config") as err:
        CycleGAN(**TINY).fit(no_neutral)
    assert "\n" not in str(err.value)
    with pytest.raises(EmoaugError, match="source_emotion='calm' is not in the label set"):
        CycleGAN(**TINY, source_emotion="calm").fit(make_train())


def test_bad_options_and_untrainable_requests_fail_clearly():
    with pytest.raises(EmoaugError, match="unknown option.*lamda_cyc"):
        CycleGAN(lamda_cyc=10)
    with pytest.raises(EmoaugError, match="steps must be an integer >= 1"):
        CycleGAN(steps=0)
    with pytest.raises(EmoaugError, match="only one emotion"):
        CycleGAN(**TINY).fit(make_train(counts=(4, 0, 0)))
    gen = fitted(make_train(counts=(4, 3, 0)))  # no sad rows in the training fold
    with pytest.raises(EmoaugError, match="cannot convert into 'sad'"):
        gen.generate({"sad": 1}, seed=0)


def test_registered_and_movable_before_fit():
    assert get_generator_class("cyclegan") is CycleGAN
    gen = CycleGAN(**TINY).to("cpu")  # the runner moves generators before fitting them
    assert gen.networks() == {}
    for profile in PROFILES.values():
        CycleGAN(**profile.generators.get("cyclegan", {}))  # every profile is a valid config


def test_transform_converts_given_rows_into_the_condition_and_leaves_them_alone():
    gen = fitted()
    held_out = make_train(counts=(2, 2, 2))
    before = held_out.x.clone()
    as_first = gen.transform(held_out, [gen.labels[0]] * len(held_out))
    assert as_first.x.shape == held_out.x.shape and as_first.label_names() == [gen.labels[0]] * len(held_out)
    assert as_first.speakers == held_out.speakers
    torch.testing.assert_close(held_out.x, before, rtol=0, atol=0)  # inputs untouched
    as_last = gen.transform(held_out, [gen.labels[-1]] * len(held_out))
    assert not torch.allclose(as_first.x, as_last.x)  # the target emotion changes the conversion
    torch.testing.assert_close(as_last.x, gen.transform(held_out, [gen.labels[-1]] * len(held_out)).x)
