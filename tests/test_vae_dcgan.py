"""The ``vae`` and ``dcgan`` generators: shapes, training, generation contract, checkpoints."""

from __future__ import annotations

import pytest
import torch

from emoaug.config import PROFILES
from emoaug.errors import EmoaugError
from emoaug.featureset import FeatureSet
from emoaug.generators import get_generator_class
from emoaug.generators.dcgan import ConditionalDCGAN
from emoaug.generators.layers import multi_resolution_spectral_loss, pad_to_multiple
from emoaug.generators.vae import ConditionalVAEGenerator

LABELS = ("neutral", "angry", "sad")
# Tiny networks: every fit in this file takes well under a second.
TINY = {
    "vae": {"widths": [4, 8], "latent_dim": 4, "class_embedding": 4, "steps": 3, "batch_size": 4, "log_every": 1},
    "dcgan": {"noise_dim": 8, "g_widths": [8, 4], "d_widths": [4, 8], "steps": 3, "batch_size": 4, "log_every": 1,
              "bn_batches": 2},
}
CLASSES = {"vae": ConditionalVAEGenerator, "dcgan": ConditionalDCGAN}


def toy_set(n_per_class: int = 4, n_mels: int = 20, n_frames: int = 37, n_classes: int = 3,
            seed: int = 0) -> FeatureSet:
    """Rows whose class decides which mel band is loud (class k: band k of n_classes), plus noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    x = 0.2 * torch.randn(len(y), n_mels, n_frames, generator=gen) - 0.5
    band = n_mels // n_classes
    for row, label in enumerate(y.tolist()):
        x[row, label * band:(label + 1) * band] += 1.0
    ids = [f"item{k:03d}" for k in range(len(y))]
    speakers = [f"spk{k % 2}" for k in range(len(y))]
    return FeatureSet(x=x, y=y, labels=LABELS[:n_classes], item_ids=ids, speakers=speakers)


def make(kind: str, **overrides) -> ConditionalVAEGenerator | ConditionalDCGAN:
    return CLASSES[kind](**{**TINY[kind], **overrides})


# ---------------------------------------------------------------------------- shared building blocks
def test_pad_to_multiple_replicates_the_edges():
    x = torch.arange(6.0).view(1, 2, 3)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 4, 4)
    assert torch.equal(padded[:, :2, :3], x)
    assert torch.equal(padded[0, 3], torch.tensor([3.0, 4.0, 5.0, 5.0]))


def test_spectral_loss_is_zero_for_equal_rows_and_sees_time_modulation():
    x = torch.randn(2, 10, 33)
    assert float(multi_resolution_spectral_loss(x, x.clone())) == 0.0
    flat = torch.zeros(1, 8, 32)
    ripple = torch.sin(torch.arange(32.0) * 3.14159 / 2).expand(1, 8, 32)  # zero mean, period 4 frames
    assert float(multi_resolution_spectral_loss(ripple, flat)) > 0.05


# ---------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("kind", ["vae", "dcgan"])
@pytest.mark.parametrize("shape", [(20, 37), (128, 173)])
def test_generated_rows_have_the_training_shape(kind, shape):
    train = toy_set(n_per_class=2, n_mels=shape[0], n_frames=shape[1])
    out = make(kind, steps=1).fit(train).generate({"neutral": 2, "sad": 1}, seed=0)
    assert out.x.shape == (3, *shape)
    assert out.x.dtype == torch.float32
    assert torch.isfinite(out.x).all()


def test_vae_reconstruction_mode_keeps_the_shape_of_odd_rows():
    train = toy_set(n_per_class=2, n_mels=21, n_frames=5)
    out = make("vae", mode="reconstruction").fit(train).generate({"angry": 3}, seed=0)
    assert out.x.shape == (3, 21, 5)


# ---------------------------------------------------------------------------- training
def test_vae_training_lowers_its_loss_on_a_tiny_batch():
    train = toy_set(n_per_class=3, n_mels=16, n_frames=24)
    config = {"steps": 40, "batch_size": 9, "lr": 3e-3}
    untrained = make("vae", **{**config, "steps": 0}).fit(train).evaluate_loss(train, seed=0)
    trained_gen = make("vae", **config).fit(train)
    trained = trained_gen.evaluate_loss(train, seed=0)
    assert trained["loss"] < 0.7 * untrained["loss"]
    assert trained["recon"] < untrained["recon"]
    assert [h["step"] for h in trained_gen.history] == list(range(1, 41))
    assert {"loss", "recon", "spectral", "kl"} <= set(trained_gen.history[-1])


def _fitted_gan(train: FeatureSet) -> ConditionalDCGAN:
    gan = make("dcgan", steps=0).fit(train)
    gan.generator.train()
    gan.discriminator.train()
    return gan


def test_dcgan_discriminator_steps_lower_its_loss_against_a_fixed_generator():
    train = toy_set(n_per_class=3, n_mels=16, n_frames=24)
    gan = _fitted_gan(train)
    real = gan.to_unit(train.x)
    fake = gan.sample(train.y, torch.randn(len(train), 8, generator=torch.Generator().manual_seed(1))).detach()
    optimiser = torch.optim.Adam(gan.discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    losses = [gan._optimise(optimiser, gan.discriminator_loss(real, train.y, fake)) for _ in range(15)]
    assert losses[-1]["d_loss"] < losses[0]["d_loss"]
    assert losses[-1]["d_real"] > losses[-1]["d_fake"]  # D now tells the two batches apart


def test_dcgan_generator_steps_lower_its_loss_against_a_fixed_discriminator():
    train = toy_set(n_per_class=3, n_mels=16, n_frames=24)
    gan = _fitted_gan(train)
    noise = torch.randn(len(train), 8, generator=torch.Generator().manual_seed(1))
    optimiser = torch.optim.Adam(gan.generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    gan.discriminator.eval()  # frozen: no power-iteration updates of its spectral norms
    losses = [gan._optimise(optimiser, gan.generator_loss(train.y, noise))["g_loss"] for _ in range(15)]
    assert losses[-1] < losses[0]


def test_dcgan_history_and_outputs_stay_in_the_training_range():
    train = toy_set(n_per_class=3, n_mels=16, n_frames=24)
    gan = make("dcgan", steps=6, log_every=2).fit(train)
    assert [h["step"] for h in gan.history] == [2, 4, 6]
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(gan.history[0])
    out = gan.generate({"neutral": 4}, seed=0).x
    low, high = train.x.amin(dim=(0, 2))[:, None], train.x.amax(dim=(0, 2))[:, None]
    margin = 0.05 * (high - low) / 2 + 1e-5
    assert bool(((out >= low - margin) & (out <= high + margin)).all())  # tanh mapped onto each band's range


# ---------------------------------------------------------------------------- generation contract
@pytest.mark.parametrize("kind", ["vae", "dcgan"])
def test_generate_returns_the_requested_counts_labels_and_ids(kind):
    gen = make(kind).fit(toy_set())
    out = gen.generate({"neutral": 3, "angry": 0, "sad": 5}, seed=0)
    assert out.class_counts() == {"neutral": 3, "angry": 0, "sad": 5}
    assert out.labels == LABELS
    assert out.label_names() == ["neutral"] * 3 + ["sad"] * 5
    assert len(set(out.item_ids)) == 8
    assert all(i.startswith(f"gen:{kind}:") for i in out.item_ids)
    assert len(gen.generate({"angry": 0}, seed=0)) == 0


def test_vae_reconstruction_ids_name_a_training_item_of_the_same_class():
    train = toy_set()
    out = make("vae", mode="reconstruction").fit(train).generate({"angry": 6, "sad": 2}, seed=3)
    source_of = {item: (label, speaker) for item, label, speaker
                 in zip(train.item_ids, train.label_names(), train.speakers)}
    for item_id, label, speaker in zip(out.item_ids, out.label_names(), out.speakers):
        source = item_id.split(":")[2]
        assert source_of[source] == (label, speaker)
    angry_sources = [i.split(":")[2] for i in out.item_ids[:6]]
    assert len(set(angry_sources)) == 4  # all 4 angry rows used once before any repeats


@pytest.mark.parametrize("kind", ["vae", "dcgan"])
def test_generate_is_pure_and_seeded(kind):
    train = toy_set()
    stored = train.x.clone()
    gen = make(kind).fit(train)
    request = {"neutral": 2, "angry": 3}
    first = gen.generate(request, seed=7)
    assert torch.equal(first.x, gen.generate(request, seed=7).x)
    assert not torch.allclose(first.x, gen.generate(request, seed=8).x)
    # a class's rows do not depend on what else was requested
    assert torch.equal(first.x[2:], gen.generate({"angry": 3}, seed=7).x)
    assert torch.equal(train.x, stored)


def test_vae_reconstruction_generation_does_not_touch_the_training_rows():
    train = toy_set()
    stored = train.x.clone()
    gen = make("vae", mode="reconstruction").fit(train)
    a = gen.generate({"neutral": 5}, seed=1)
    assert torch.equal(a.x, gen.generate({"neutral": 5}, seed=1).x)
    assert torch.equal(train.x, stored)


# ---------------------------------------------------------------------------- it learns the emotion
def test_vae_prior_samples_carry_the_class_pattern():
    train = toy_set(n_per_class=8, n_mels=12, n_frames=16, n_classes=2)
    gen = make("vae", widths=[8, 16], steps=60, batch_size=8, lr=3e-3).fit(train)
    out = gen.generate({"neutral": 8, "angry": 8}, seed=0)
    real_means = torch.stack([train.x[train.y == k].mean(0) for k in range(2)]).flatten(1)
    gen_means = torch.stack([out.x[out.y == k].mean(0) for k in range(2)]).flatten(1)
    distance = torch.cdist(gen_means, real_means)
    assert distance[0, 0] < distance[0, 1]
    assert distance[1, 1] < distance[1, 0]


def test_dcgan_samples_carry_the_class_pattern():
    # A generator wider than the discriminator and a slower discriminator: on a handful of rows an
    # equal-strength D memorises them and G learns slowly (10 of 10 seeds pass with this setting).
    train = toy_set(n_per_class=32, n_mels=12, n_frames=16, n_classes=2)
    gen = make("dcgan", g_widths=[32, 16], d_widths=[8, 16], steps=300, batch_size=16, lr_g=2e-3, lr_d=5e-4,
               log_every=50).fit(train)
    out = gen.generate({"neutral": 16, "angry": 16}, seed=0)
    for k in range(2):  # class k is loud in mel bands 6k .. 6k+5
        rows = out.x[out.y == k]
        assert rows[:, 6 * k:6 * k + 6].mean() > rows[:, 6 - 6 * k:12 - 6 * k].mean()


# ---------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("kind", ["vae", "dcgan"])
def test_registered_with_profiles_and_rejects_unknown_options(kind):
    cls = get_generator_class(kind)
    assert cls is CLASSES[kind]
    for profile in PROFILES.values():
        assert cls(**profile.generators.get(kind, {})).get_config()["steps"] > 0
    with pytest.raises(EmoaugError, match="unknown option"):
        cls(not_an_option=1)


def test_bad_values_are_one_line_errors():
    with pytest.raises(EmoaugError, match="mode"):
        ConditionalVAEGenerator(mode="posterior")
    with pytest.raises(EmoaugError, match="widths"):
        ConditionalVAEGenerator(widths=[])
    with pytest.raises(EmoaugError, match="same length"):
        ConditionalDCGAN(g_widths=[8, 4], d_widths=[4])
    with pytest.raises(EmoaugError, match="n_per_class"):
        make("vae").fit(toy_set()).generate({"sad": -1}, seed=0)


def test_vae_transform_reconstructs_given_held_out_rows_under_the_condition():
    train = toy_set(n_per_class=8, n_mels=12, n_frames=16, n_classes=2)
    gen = make("vae", widths=[8, 16], steps=60, batch_size=8, lr=3e-3).fit(train)
    held_out = toy_set(n_per_class=3, n_mels=12, n_frames=16, n_classes=2, seed=5)
    out = gen.transform(held_out, held_out.label_names(), seed=1)
    assert out.x.shape == held_out.x.shape and out.speakers == held_out.speakers
    torch.testing.assert_close(out.x, gen.transform(held_out, held_out.label_names(), seed=1).x, rtol=0, atol=0)
    # the condition decides the class pattern: every row decoded as "angry" looks like the angry rows
    as_angry = gen.transform(held_out, ["angry"] * len(held_out), seed=1).x.mean(0).flatten()
    real_means = torch.stack([train.x[train.y == k].mean(0) for k in range(2)]).flatten(1)
    distance = torch.cdist(as_angry[None], real_means)[0]
    assert distance[1] < distance[0]
    assert make("dcgan").transforms_rows is False
