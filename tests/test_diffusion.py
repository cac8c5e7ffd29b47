"""The diffusion generator: schedules, samplers, U-Net, training and generation (tiny sizes, seconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from emoaug.config import get_profile
from emoaug.errors import EmoaugError
from emoaug.featureset import FeatureSet
from emoaug.generators.diffusion.generator import Conditioner, DiffusionGenerator, DiffusionModel
from emoaug.generators.diffusion.samplers import DDIMSampler, DDPMSampler
from emoaug.generators.diffusion.schedules import cosine_schedule, linear_schedule
from emoaug.generators.diffusion.unet import unet
from emoaug.generators.diffusion.unet1d import unet1d
from emoaug.reports.reference import reference_table

# ----------------------------------------------------------------------------- schedules


def test_linear_alpha_bar_is_the_product_of_one_minus_beta():
    T, lo, hi = 1000, 1e-4, 0.02
    schedule = linear_schedule(T, lo, hi)
    running, expected = 1.0, []
    for i in range(T):
        running *= 1.0 - (lo + i * (hi - lo) / (T - 1))
        expected.append(running)
    assert schedule.alphas_cumprod.dtype == torch.float64
    np.testing.assert_allclose(schedule.alphas_cumprod.numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(schedule.alphas.numpy(), 1.0 - schedule.betas.numpy())
    assert schedule.alphas_cumprod[-1] < 1e-4  # T = 1000 ends close to pure noise


def test_cosine_alpha_bar_matches_nichol_dhariwal_closed_form_before_clipping():
    T, s = 1000, 0.008

    def f(t: float) -> float:
        return math.cos(((t / T) + s) / (1 + s) * math.pi / 2) ** 2

    schedule = cosine_schedule(T, s)
    expected = np.array([f(t) / f(0) for t in range(1, T + 1)])
    unclipped = schedule.betas.numpy() < 0.999
    # the clip only bites at the very end, where f reaches 0
    assert unclipped[: T - 5].all() and not unclipped[-1]
    first_clipped = int(np.argmin(unclipped)) if not unclipped.all() else T
    np.testing.assert_allclose(schedule.alphas_cumprod.numpy()[:first_clipped], expected[:first_clipped], rtol=1e-9)
    assert schedule.betas.max() == pytest.approx(0.999)
    assert schedule.alphas_cumprod[-1] > 0


def test_q_sample_add_noise_and_snr():
    schedule = linear_schedule(100)
    x0 = torch.randn(3, 4, 5)
    noise = torch.randn(3, 4, 5)
    t = torch.tensor([0, 50, 99])
    xt = schedule.q_sample(x0, t, noise)
    for row, step in enumerate(t.tolist()):
        abar = float(schedule.alphas_cumprod[step])
        expected = math.sqrt(abar) * x0[row] + math.sqrt(1 - abar) * noise[row]
        torch.testing.assert_close(xt[row], expected)
    torch.testing.assert_close(schedule.add_noise(x0, noise, t), xt)
    snr = schedule.snr(torch.arange(100))
    assert bool((snr[1:] < snr[:-1]).all())


# ----------------------------------------------------------------------------- samplers


def gaussian_mixture_eps(schedule, weights, means, stds):
    """The exact optimal noise predictor for 1-D Gaussian-mixture data: eps* = -sqrt(1 - abar) * score."""
    w = torch.tensor(weights, dtype=torch.float64)
    mu = torch.tensor(means, dtype=torch.float64)
    var0 = torch.tensor(stds, dtype=torch.float64) ** 2

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = schedule.alphas_cumprod[t].to(x.dtype)[:, None]
        mean, var = abar.sqrt() * mu, abar * var0 + (1 - abar)  # marginal of x_t per component
        xs = x.reshape(-1, 1)
        log_p = torch.log(w) - 0.5 * torch.log(var) - 0.5 * (xs - mean) ** 2 / var
        resp = torch.softmax(log_p, dim=1)
        score = (resp * (mean - xs) / var).sum(dim=1, keepdim=True)
        return (-(1 - abar).sqrt() * score).reshape(x.shape)

    return denoise


def test_ddim_with_all_steps_and_eta_one_matches_ddpm_in_distribution():
    # T = 250 keeps the test fast; beta_end 0.08 still ends at pure noise (abar_T ~ 5e-5)
    schedule = linear_schedule(250, 1e-4, 0.08)
    assert schedule.alphas_cumprod[-1] < 1e-4
    weights, means, stds = (0.3, 0.7), (-2.0, 1.5), (0.3, 0.5)
    denoise = gaussian_mixture_eps(schedule, weights, means, stds)
    n = 10_000
    x_ddpm = DDPMSampler(schedule).sample(denoise, torch.randn(n, 1, dtype=torch.float64,
                                                              generator=torch.Generator().manual_seed(1)),
                                          generator=torch.Generator().manual_seed(2))
    x_ddim = DDIMSampler(schedule, steps=250, eta=1.0).sample(
        denoise, torch.randn(n, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
        generator=torch.Generator().manual_seed(4))
    a, b = x_ddpm.flatten().numpy(), x_ddim.flatten().numpy()
    assert not np.allclose(a[:100], b[:100])  # independent draws, not the same chain
    assert stats.ks_2samp(a, b).pvalue > 1e-3
    assert abs(a.mean() - b.mean()) < 0.08 and abs(a.std() - b.std()) < 0.06  # ~3.5 standard errors
    # and both reproduce the data distribution (mode weights and within-mode spread)
    for sample in (a, b):
        assert (sample > 0).mean() == pytest.approx(0.7, abs=0.02)
        assert sample[sample > 0].std() == pytest.approx(0.5, abs=0.05)
        assert sample[sample < 0].mean() == pytest.approx(-2.0, abs=0.05)


def test_ddim_eta_one_step_equals_ddpm_posterior_step():
    schedule = linear_schedule(1000)
    x, eps = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    for t in (999, 500, 1):
        ddpm = DDPMSampler(schedule).step(eps, t, x, torch.Generator().manual_seed(t))
        ddim = DDIMSampler(schedule, 1000, eta=1.0).step(eps, t, t - 1, x, torch.Generator().manual_seed(t))
        torch.testing.assert_close(ddim, ddpm)


def test_ddim_with_few_steps_and_eta_zero_is_deterministic():
    schedule = cosine_schedule(200)
    denoise = gaussian_mixture_eps(schedule, (0.5, 0.5), (-1.0, 1.0), (0.2, 0.2))
    x_T = torch.randn(64, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sampler = DDIMSampler(schedule, steps=10, eta=0.0)
    first = sampler.sample(denoise, x_T, generator=torch.Generator().manual_seed(1))
    second = sampler.sample(denoise, x_T, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    noisy = DDIMSampler(schedule, steps=10, eta=1.0)
    assert not torch.equal(noisy.sample(denoise, x_T, generator=torch.Generator().manual_seed(1)),
                           noisy.sample(denoise, x_T, generator=torch.Generator().manual_seed(2)))
    # ten deterministic steps still land on the two modes
    assert (first.abs() - 1.0).abs().median() < 0.3


@pytest.mark.parametrize("spacing", ["uniform", "trailing"])
def test_ddim_timesteps(spacing):
    schedule = linear_schedule(1000)
    sampler = DDIMSampler(schedule, steps=50, spacing=spacing)
    steps = sampler.timesteps()
    assert len(steps) == 50 and steps[0] == 999 and steps == sorted(steps, reverse=True)
    assert sampler.n_evaluations() == 50 and DDPMSampler(schedule).n_evaluations() == 1000
    assert DDIMSampler(schedule, steps=1000, spacing=spacing).timesteps() == list(range(999, -1, -1))
    partial = sampler.timesteps(start_step=299)  # enhance: start exactly at t0, same stride
    assert partial[0] == 299 and len(partial) == 15


# ----------------------------------------------------------------------------- U-Net


@pytest.mark.parametrize("patch_size", [1, 2])
def test_unet_keeps_odd_shapes_and_depends_on_conditioning(patch_size):
    torch.manual_seed(0)
    net = unet(base_channels=8, channel_mults=(1, 2), attention_at=(1,), cond_dim=6, groups=4, heads=2,
               patch_size=patch_size)
    x = torch.randn(2, 13, 21)
    t = torch.tensor([3, 700])
    out = net(x, t, torch.randn(2, 6))
    assert out.shape == x.shape
    assert net(x.unsqueeze(1), t, torch.randn(2, 6)).shape == (2, 1, 13, 21)
    assert not torch.allclose(out, net(x, t, torch.randn(2, 6)))
    assert not torch.allclose(out[0], net(x, torch.tensor([500, 700]), torch.randn(2, 6))[0])


def test_training_steps_lower_the_denoising_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    model = DiffusionModel(unet(base_channels=8, channel_mults=(1, 2), cond_dim=8, groups=4, patch_size=2),
                           Conditioner(emotion_dim=4, cond_dim=8, style_channels=4, style_dim=4, groups=4))
    schedule = linear_schedule(1000)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.sin(torch.linspace(0, 6, 16 * 20)).reshape(1, 16, 20).repeat(4, 1, 1)
    emotion = torch.randn(4, 4, generator=gen)
    t = torch.tensor([100, 300, 600, 900])
    noise = torch.randn(x0.shape, generator=gen)
    drop = torch.tensor([False, False, True, False])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = model.loss(x0, emotion, schedule, t, noise, drop)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().item())
    assert losses[-1] < 0.7 * losses[0]


# ----------------------------------------------------------------------------- the generator

LABELS = ("neutral", "angry", "sad")
TINY = {
    "base_channels": 8, "channel_mults": (1, 2), "patch_size": 2, "groups": 4, "heads": 2, "cond_dim": 16,
    "style_channels": 4, "style_dim": 8, "ser_channels": 8, "ser_lstm_hidden": 8, "ser_epochs": 2,
    "ser_batch_size": 16, "train_steps": 30, "batch_size": 8, "warmup_steps": 5, "timesteps": 100,
    "sampling_steps": 8, "sample_batch_size": 8, "ema_decay": 0.9,
}


def toy_featureset(n_speakers: int = 4, per_cell: int = 3, shape=(12, 18)) -> FeatureSet:
    """Rows whose energy band depends on the emotion (so conditioning has something to learn)."""
    rng = np.random.default_rng(0)
    xs, ys, ids, speakers = [], [], [], []
    n_mels, n_frames = shape
    for spk in range(n_speakers):
        for k, _ in enumerate(LABELS):
            for r in range(per_cell):
                x = -0.8 + 0.1 * rng.standard_normal(shape)
                x[4 * k : 4 * k + 4] += 1.2 + 0.2 * np.sin(np.arange(n_frames) / (2 + spk))
                xs.append(np.clip(x, -1, 1))
                ys.append(k)
                ids.append(f"s{spk}_{LABELS[k]}_{r}")
                speakers.append(f"s{spk}")
    return FeatureSet(x=torch.tensor(np.stack(xs), dtype=torch.float32), y=torch.tensor(ys), labels=LABELS,
                      item_ids=ids, speakers=speakers)


@pytest.fixture(scope="module")
def train_set() -> FeatureSet:
    return toy_featureset()


@pytest.fixture(scope="module")
def fitted(train_set) -> DiffusionGenerator:
    torch.set_num_threads(1)
    return DiffusionGenerator(**TINY, seed=3).fit(train_set)


def test_fit_sees_only_the_training_rows_and_holds_out_speakers_for_the_embedding(fitted, train_set):
    assert fitted.fitted_item_ids == sorted(train_set.item_ids)
    ser = fitted.ser_summary
    assert ser["holdout_rows"] == 9 and ser["fit_rows"] + ser["holdout_rows"] == len(train_set)  # 1 of 4 speakers
    assert fitted.centroids.shape == (3, 16) and bool((fitted.centroids.abs().sum(dim=1) > 0).all())
    ids, speakers = fitted.fitted_parts()["emotion-embedding classifier"]  # audited by the runner
    assert ids == sorted(train_set.item_ids) and speakers == set(train_set.speakers)
    assert [h["step"] for h in fitted.history][-1] == TINY["train_steps"]


def test_generate_is_pure_for_a_seed(fitted):
    want = {"neutral": 2, "angry": 3, "sad": 0}
    first, again, other = fitted.generate(want, seed=5), fitted.generate(want, seed=5), fitted.generate(want, seed=6)
    assert first.x.shape == (5, 12, 18) and first.class_counts() == {"neutral": 2, "angry": 3, "sad": 0}
    assert all(i.startswith("gen:diffusion:") for i in first.item_ids) and first.speakers == []
    torch.testing.assert_close(first.x, again.x, rtol=0, atol=0)
    assert not torch.allclose(first.x, other.x)
    # a class's rows do not depend on how many rows the other classes asked for
    alone = fitted.generate({"angry": 3}, seed=5)
    torch.testing.assert_close(alone.x, first.x[2:], rtol=0, atol=0)


def test_enhance_keeps_the_source_and_stays_closer_to_it_than_synthesis(fitted, train_set):
    want = {"neutral": 4, "angry": 4, "sad": 4}
    enhanced = fitted.with_sampling(mode="enhance", enhance_t0=0.3).generate(want, seed=0)
    synthesized = fitted.generate(want, seed=0)
    by_id = {i: row for i, row in zip(train_set.item_ids, range(len(train_set)))}
    sources = [i.split(":")[2] for i in enhanced.item_ids]
    assert all(s in by_id for s in sources)
    assert enhanced.speakers == [train_set.speakers[by_id[s]] for s in sources]
    assert enhanced.label_names() == [train_set.label_names()[by_id[s]] for s in sources]
    source_x = train_set.x[[by_id[s] for s in sources]]
    enhanced_distance = (enhanced.x - source_x).abs().mean()
    synthesized_distance = (synthesized.x - source_x).abs().mean()
    assert enhanced_distance < 0.7 * synthesized_distance


def test_guidance_scale_changes_the_output(fitted):
    want = {"sad": 3}
    unconditional = fitted.with_sampling(guidance_scale=0.0).generate(want, seed=1)
    guided = fitted.with_sampling(guidance_scale=3.0).generate(want, seed=1)
    assert not torch.allclose(unconditional.x, guided.x, atol=1e-4)


def test_ddpm_sampler_runs_through_the_generator(fitted):
    out = fitted.with_sampling(sampler="ddpm").generate({"angry": 2}, seed=0)
    assert out.x.shape == (2, 12, 18) and bool(torch.isfinite(out.x).all())
    assert float(out.x.abs().max()) <= fitted.x_bound + 1e-5 or fitted.config["clip_x0"] != "auto"


def test_checkpoint_round_trip_with_weights_only(fitted, train_set, tmp_path):
    path = tmp_path / "diffusion.pt"
    torch.save(fitted.state_dict(), path)
    state = torch.load(path, weights_only=True)
    restored = DiffusionGenerator(**TINY, seed=3).restore(train_set, state)
    want = {"neutral": 2, "sad": 2}
    torch.testing.assert_close(restored.generate(want, seed=9).x, fitted.generate(want, seed=9).x)
    torch.testing.assert_close(restored.centroids, fitted.centroids)
    assert restored.history == fitted.history


def test_config_errors_and_profiles():
    with pytest.raises(EmoaugError, match="unknown option"):
        DiffusionGenerator(guidance=2.0)
    with pytest.raises(EmoaugError, match="sampler"):
        DiffusionGenerator(sampler="euler")
    with pytest.raises(EmoaugError, match="enhance_t0"):
        DiffusionGenerator(enhance_t0=1.5)
    for profile in ("smoke", "quick", "paper", "paper-full"):
        generator = DiffusionGenerator(**get_profile(profile).generators.get("diffusion", {}))
        assert generator.schedule.num_timesteps == generator.config["timesteps"]
        assert generator.to("cpu").networks() == {}  # the runner moves generators before fitting them
    assert get_profile("paper").generators["diffusion"]["base_channels"] == 256


def test_transform_enhances_given_held_out_rows_under_the_given_emotions(fitted, train_set):
    held_out = toy_featureset(n_speakers=1, per_cell=2)  # rows the generator never saw
    conditions = ["sad"] * len(held_out)
    first = fitted.transform(held_out, conditions, seed=4)
    assert first.x.shape == held_out.x.shape and first.label_names() == conditions
    assert first.item_ids == [f"gen:diffusion:{i}" for i in held_out.item_ids]
    assert first.speakers == held_out.speakers
    torch.testing.assert_close(first.x, fitted.transform(held_out, conditions, seed=4).x, rtol=0, atol=0)
    # enhancement starts from the row itself: closer to it than to a shuffled partner
    own = (first.x - held_out.x).abs().mean()
    other = (first.x - held_out.x.roll(1, dims=0)).abs().mean()
    assert own < other
    # the condition matters
    assert not torch.allclose(first.x, fitted.transform(held_out, held_out.label_names(), seed=4).x, atol=1e-4)
    with pytest.raises(EmoaugError, match="one condition per row"):
        fitted.transform(held_out, conditions[:-1])
    with pytest.raises(EmoaugError, match="unknown labels"):
        fitted.transform(held_out, ["bored"] * len(held_out))


def test_micro_batches_give_the_whole_batch_gradient_and_are_not_part_of_the_key(fitted, train_set):
    """Gradient accumulation over micro-batches is a memory knob: the whole batch's gradient (up to float
    summation order) and the same content key as one pass over the whole batch."""
    from emoaug.generators.spec import GeneratorSpec

    x0, emotion = train_set.x[:8], torch.randn(8, fitted.emotion_dim)
    gradients = {}
    for size in (None, 3):  # 3 does not divide 8: the ragged last micro-batch is weighted by its share
        fitted.config["micro_batch_size"] = size
        fitted.model.zero_grad(set_to_none=True)
        loss = fitted._backward(x0, emotion, torch.Generator().manual_seed(0))
        gradients[size] = (float(loss), {n: p.grad.clone() for n, p in fitted.model.named_parameters()
                                         if p.grad is not None})
    fitted.config["micro_batch_size"] = None
    fitted.model.zero_grad(set_to_none=True)
    (loss_whole, whole), (loss_split, split) = gradients[None], gradients[3]
    assert loss_split == pytest.approx(loss_whole, rel=1e-6) and whole.keys() == split.keys()
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], atol=1e-6, rtol=1e-4, msg=name)
    config = fitted.get_config()
    def identity(options: dict) -> dict:
        return GeneratorSpec.resolve("diffusion", options).identity()

    assert identity(config) == identity({**config, "micro_batch_size": 3})
    assert identity(config) != identity({**config, "batch_size": 4})
    with pytest.raises(EmoaugError, match="micro_batch_size"):
        DiffusionGenerator(micro_batch_size=0)


def test_a_fit_in_micro_batches_follows_the_same_losses(train_set):
    torch.set_num_threads(1)
    whole = DiffusionGenerator(**TINY, seed=3).fit(train_set)
    split = DiffusionGenerator(**{**TINY, "micro_batch_size": 3}, seed=3).fit(train_set)
    # Adam turns float-order noise in (mathematically) zero gradients, such as the attention keys' bias, into
    # small weight differences, so the training losses are compared, not the weights
    assert [h["loss"] for h in split.history] == pytest.approx([h["loss"] for h in whole.history], rel=1e-3)


# ----------------------------------------------------------------------------- the 1-D (Table 4) U-Net

TINY_1D = {**TINY, "unet": "1d", "base_channels": 8, "channel_mults": (1, 2, 4), "attention_at": (0, 1)}


@pytest.mark.parametrize("frames", [1, 3, 7, 18, 861])
def test_unet1d_keeps_odd_frame_counts_and_depends_on_time_and_conditioning(frames):
    torch.manual_seed(0)
    net = unet1d(n_mels=12, base_channels=8, channel_mults=(1, 2, 4), attention_at=(0, 1), cond_dim=6, groups=4,
                 heads=2)
    x, t, cond = torch.randn(2, 12, frames), torch.tensor([3, 700]), torch.randn(2, 6)
    out = net(x, t, cond)
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, t, torch.randn(2, 6)))
    assert not torch.allclose(out[0], net(x, torch.tensor([500, 700]), cond)[0])


def test_unet1d_follows_table4_lengths_and_widths():
    """861 frames -> 430 -> 215 and back, widths 256 / 512 / 1024, mel bins as channels (Kim & Lee Table 4)."""
    net = unet1d(n_mels=80, base_channels=256, channel_mults=(1, 2, 4), cond_dim=4, groups=32, heads=8)
    seen = {}
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, tuple(o.shape)))
             for name, module in net.named_modules() if name in ("conv_in", "downsample.0", "downsample.1",
                                                                  "upsample.0", "upsample.1", "conv_out")]
    with torch.no_grad():
        net(torch.randn(1, 80, 861), torch.tensor([10]), torch.randn(1, 4))
    for hook in hooks:
        hook.remove()
    assert seen == {"conv_in": (1, 256, 861), "downsample.0": (1, 512, 430), "downsample.1": (1, 1024, 215),
                    "upsample.0": (1, 512, 430), "upsample.1": (1, 256, 861), "conv_out": (1, 80, 861)}
    table = reference_table("kim2024_table04_diffusion_architecture")
    published = {tuple(int(v) for v in shape.strip("()").split(",")[1:]) for shape in table["output_shape"]}
    ours = {shape[1:] for name, shape in seen.items() if name != "conv_out"}
    assert ours <= published  # every intermediate shape is one the table prints (its final (1, 861): see unet1d.py)


@pytest.fixture(scope="module")
def fitted_1d(train_set) -> DiffusionGenerator:
    torch.set_num_threads(1)
    return DiffusionGenerator(**TINY_1D, seed=3).fit(train_set)


def test_unet_option_builds_the_1d_network(fitted_1d):
    assert type(fitted_1d.model.denoiser).__name__ == "UNet1d"
    assert fitted_1d.model.denoiser.conv_in.in_channels == 12  # the mel bins are its channels
    assert [h["step"] for h in fitted_1d.history][-1] == TINY_1D["train_steps"]


def test_1d_training_steps_lower_the_denoising_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    model = DiffusionModel(unet1d(n_mels=16, base_channels=8, channel_mults=(1, 2), attention_at=(0,), cond_dim=8,
                                  groups=4, heads=2),
                           Conditioner(emotion_dim=4, cond_dim=8, style_channels=4, style_dim=4, groups=4))
    schedule = linear_schedule(1000)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.sin(torch.linspace(0, 6, 16 * 21)).reshape(1, 16, 21).repeat(4, 1, 1)
    emotion, noise = torch.randn(4, 4, generator=gen), torch.randn(x0.shape, generator=gen)
    t, drop = torch.tensor([100, 300, 600, 900]), torch.tensor([False, False, True, False])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = model.loss(x0, emotion, schedule, t, noise, drop)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().item())
    assert losses[-1] < 0.7 * losses[0]


def test_1d_generation_is_pure_for_a_seed_and_survives_a_checkpoint(fitted_1d, train_set, tmp_path):
    want = {"neutral": 2, "angry": 1, "sad": 2}
    first = fitted_1d.generate(want, seed=5)
    assert first.x.shape == (5, 12, 18) and bool(torch.isfinite(first.x).all())
    torch.testing.assert_close(fitted_1d.generate(want, seed=5).x, first.x, rtol=0, atol=0)
    assert not torch.allclose(first.x, fitted_1d.generate(want, seed=6).x)
    path = tmp_path / "diffusion1d.pt"
    torch.save(fitted_1d.state_dict(), path)
    restored = DiffusionGenerator(**TINY_1D, seed=3).restore(train_set, torch.load(path, weights_only=True))
    torch.testing.assert_close(restored.generate(want, seed=5).x, first.x)
    with pytest.raises(Exception):  # a 1-D checkpoint does not load into the 2-D network
        DiffusionGenerator(**{**TINY_1D, "unet": "2d"}, seed=3).restore(train_set, torch.load(path, weights_only=True))


def test_a_1d_fit_is_the_same_for_the_same_seed(train_set):
    small = {**TINY_1D, "train_steps": 3, "ser_epochs": 1}
    first = DiffusionGenerator(**small, seed=4).fit(train_set)
    again = DiffusionGenerator(**small, seed=4).fit(train_set)
    for (name, a), (_, b) in zip(first.model.state_dict().items(), again.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_unet_option_errors():
    with pytest.raises(EmoaugError, match=r"unet must be one of '2d', '1d', got '3d'"):
        DiffusionGenerator(unet="3d")
    with pytest.raises(EmoaugError, match="stem_channels applies to the 2-D U-Net only"):
        DiffusionGenerator(unet="1d", stem_channels=8)
    with pytest.raises(EmoaugError, match="heads=3 must divide"):
        DiffusionGenerator(unet="1d", heads=3)
