"""``dcgan``: a class-conditional DCGAN on normalised log-mel rows (the Baek et al. baseline of Kim & Lee).

Generator (Radford et al. 2016): ``[z, one-hot emotion]`` -> linear -> ``g_widths[0]`` maps on a grid
``2**len(g_widths)`` times smaller than the (padded) row -> per further width a stride-2 transposed
conv, BatchNorm and ReLU -> a last stride-2 transposed conv to one channel and ``tanh``; the output
is cropped to the row size. Every BatchNorm is class-conditional (per-emotion scale and shift, as
in Miyato & Koyama's generator), so the emotion acts at every scale, not only through the input.

Discriminator: spectral-normalised stride-2 convs with LeakyReLU(0.2) (``d_widths``, as many
levels as the generator has), sum-pooling over mel x time, and the projection head of Miyato &
Koyama (2018): ``D(x, y) = w . h(x) + embed(y) . h(x)``. Real and generated rows are padded the
same way (replicate) inside the discriminator, so the padding is never a tell.

Loss ``loss``: ``"hinge"`` (default; D: ``relu(1 - D(real)) + relu(1 + D(fake))``, G: ``-D(fake)``) or
``"nonsaturating"`` (the original GAN loss with the ``-log D(G(z))`` generator). Adam(2e-4,
betas (0.5, 0.999)) for both, ``d_steps`` discriminator updates per generator update, each on a
fresh real batch whose emotions are also the emotions of the fake batch.

Data range: the generator's ``tanh`` lives in [-1, 1] but the rows may be z-scored (unbounded) or
min-max scaled. Per mel band, the training fold's minimum ``lo`` and maximum ``hi`` define an affine
map ``x = c + h * u`` with ``c = (hi + lo) / 2`` and ``h = (1 + range_margin) * (hi - lo) / 2``: real
rows are mapped to ``u`` for the discriminator, generated ``u`` back to ``x``. The margin keeps the
band extremes reachable without saturating ``tanh``. ``c`` and ``h`` are saved with the checkpoint.

After training, BatchNorm running statistics are recomputed with the final generator weights
(``bn_batches`` batches), so that eval-mode generation (one row never depends on its batch-mates)
matches what the generator produced in training. Ids ``gen:dcgan:<k>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import EmoaugError
from ..featureset import FeatureSet
from .layers import (
    check_count,
    class_generator,
    crop,
    endless_minibatches,
    pad_to_multiple,
    padded_size,
    recalibrate_batchnorm,
    sn_conv2d,
    sn_linear,
)
from .neural import NeuralConfig, NeuralGenerator, generated_featureset
from .options import option

LOSSES = ("hinge", "nonsaturating")
GENERATE_CHUNK = 64

UPSAMPLING = ("transposed", "nearest")


@dataclass(frozen=True)
class DCGANConfig(NeuralConfig):
    """Defaults: the quick profile (~40 s per fit on 2 CPU cores for rows of 128 x 173, emogen preset; 0.19 s
    per step measured). The other profiles' sizes are in emoaug.config."""

    loss: str = option("hinge", "adversarial loss (see the module docstring)", choices=LOSSES)
    lr_g: float = option(2e-4, "Adam learning rate of the generator", ge=0)
    lr_d: float = option(2e-4, "Adam learning rate of the discriminator", ge=0)
    beta1: float = option(0.5, "Adam beta1 of both", ge=0, lt=1)
    beta2: float = option(0.999, "Adam beta2 of both", ge=0, lt=1)
    d_steps: int = option(1, "discriminator updates per generator update", ge=1)
    range_margin: float = option(0.05, "widening of each mel band's training range mapped onto tanh's [-1, 1]",
                                 ge=0)
    bn_batches: int = option(8, "batches that recompute BatchNorm statistics after training", ge=1)
    g_upsample: str = option("transposed", "generator up-sampling: stride-2 transposed conv, or nearest + conv",
                             choices=UPSAMPLING)
    noise_dim: int = option(64, "size of the noise vector z", ge=1)
    g_widths: tuple[int, ...] = option((128, 64, 32, 16), "generator channels per level, coarsest first", ge=1,
                                       min_items=1)
    d_widths: tuple[int, ...] = option((16, 32, 64, 128), "discriminator channels per level, finest first",
                                       ge=1, min_items=1)
    steps: int = option(200, "generator updates", ge=0)
    batch_size: int = option(16, "rows per batch", ge=1)
    log_every: int = option(25, "steps between loss records in the history", ge=1)

    def __post_init__(self) -> None:
        if len(self.g_widths) != len(self.d_widths):  # each level halves mel and time in both networks
            raise EmoaugError("g_widths and d_widths must have the same length (down-sampling levels)")


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are per-emotion embeddings (the generator of Miyato & Koyama)."""

    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(n_classes, channels)
        self.shift = nn.Embedding(n_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale(y)[:, :, None, None] + self.shift(y)[:, :, None, None]


class ConditionalGenerator(nn.Module):
    """DCGAN generator; the emotion enters as a one-hot next to the noise and through every BatchNorm."""

    def __init__(self, n_mels: int, n_frames: int, n_classes: int, noise_dim: int, widths: list[int],
                 upsample: str = "transposed"):
        super().__init__()
        self.n_mels, self.n_frames, self.n_classes = n_mels, n_frames, n_classes
        factor = 2 ** len(widths)
        self.grid = (padded_size(n_mels, factor) // factor, padded_size(n_frames, factor) // factor)
        self.project = nn.Linear(noise_dim + n_classes, widths[0] * self.grid[0] * self.grid[1], bias=False)
        self.norms = nn.ModuleList([ConditionalBatchNorm2d(widths[0], n_classes)])
        self.ups = nn.ModuleList()
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            self.ups.append(upsampling_conv(c_in, c_out, upsample, bias=False))
            self.norms.append(ConditionalBatchNorm2d(c_out, n_classes))
        self.out = upsampling_conv(widths[-1], 1, upsample, bias=True)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``z [B, noise_dim]``, ``y [B]`` -> rows ``[B, M, T]`` in [-1, 1]."""
        h = self.project(torch.cat([z, F.one_hot(y, self.n_classes).to(z.dtype)], dim=1)).view(len(z), -1, *self.grid)
        h = F.relu(self.norms[0](h, y))
        for up, norm in zip(self.ups, self.norms[1:]):
            h = F.relu(norm(up(h), y))
        return crop(torch.tanh(self.out(h)).squeeze(1), self.n_mels, self.n_frames)


def upsampling_conv(c_in: int, c_out: int, kind: str, *, bias: bool) -> nn.Module:
    """x2 up-sampling: DCGAN's stride-2 transposed conv, or nearest up-sampling + 3x3 conv.

    The second avoids the checkerboard that overlapping transposed-conv kernels print early in
    training (Odena et al. 2016), which matters when training is short.
    """
    if kind == "transposed":
        return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias)
    return nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias))


class ProjectionDiscriminator(nn.Module):
    """Spectral-normalised conv discriminator with a class-projection head (Miyato & Koyama 2018)."""

    def __init__(self, n_classes: int, widths: list[int]):
        super().__init__()
        self.factor = 2 ** len(widths)
        layers: list[nn.Module] = []
        for c_in, c_out in zip([1, *widths[:-1]], widths):
            layers += [sn_conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.score = sn_linear(widths[-1], 1)
        self.projection = spectral_norm(nn.Embedding(n_classes, widths[-1]))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x [B, M, T]`` in generator units, ``y [B]`` -> one realness score per row ``[B]``."""
        h = self.features(pad_to_multiple(x, self.factor).unsqueeze(1)).sum(dim=(2, 3))
        return self.score(h).squeeze(1) + (self.projection(y) * h).sum(dim=1)


class ConditionalDCGAN(NeuralGenerator):
    """Class-conditional DCGAN. See the module docstring for the model, the loss and the data range."""

    name = "dcgan"
    Config = DCGANConfig

    def __init__(self, **config: Any):
        super().__init__(**config)
        self.generator: ConditionalGenerator | None = None
        self.discriminator: ProjectionDiscriminator | None = None
        self.band_center = torch.zeros(0)
        self.band_half_range = torch.ones(0)
        self._train_y = torch.empty(0, dtype=torch.int64)

    # ------------------------------------------------------------------ NeuralGenerator hooks
    def networks(self) -> dict[str, nn.Module]:
        if self.generator is None:
            return {}
        return {"generator": self.generator, "discriminator": self.discriminator}

    def _setup(self, train: FeatureSet) -> None:
        cfg = self.config
        n_classes = len(train.labels)
        self.generator = ConditionalGenerator(train.n_mels, train.n_frames, n_classes, cfg["noise_dim"],
                                              cfg["g_widths"], cfg["g_upsample"])
        self.discriminator = ProjectionDiscriminator(n_classes, cfg["d_widths"])
        self.band_center, self.band_half_range = band_range(train.x, cfg["range_margin"])
        self._train_y = train.y

    def extra_state(self) -> dict[str, Any]:
        return {"band_center": self.band_center.cpu(), "band_half_range": self.band_half_range.cpu()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.band_center = state["band_center"].clone()
        self.band_half_range = state["band_half_range"].clone()

    def _train(self, train: FeatureSet) -> None:
        cfg = self.config
        g_opt = torch.optim.Adam(self.generator.parameters(), lr=cfg["lr_g"], betas=(cfg["beta1"], cfg["beta2"]))
        d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=cfg["lr_d"], betas=(cfg["beta1"], cfg["beta2"]))
        self.generator.train()
        self.discriminator.train()
        rng = self.torch_rng()
        batches = endless_minibatches(lambda: self.minibatches(len(train), cfg["batch_size"], rng),
                                      cfg["steps"] * cfg["d_steps"])
        running: dict[str, float] = {}
        for step in range(1, cfg["steps"] + 1):
            for _ in range(cfg["d_steps"]):
                index = next(batches)
                real = self.to_unit(train.x[index].to(self.device))
                y = train.y[index].to(self.device)
                d_terms = self._optimise(d_opt, self.discriminator_loss(real, y, self.sample(y).detach()))
            g_terms = self._optimise(g_opt, self.generator_loss(y))
            for key, value in {**d_terms, **g_terms}.items():
                running[key] = running.get(key, 0.0) + value
            if step % cfg["log_every"] == 0 or step == cfg["steps"]:
                n = step - (self.history[-1]["step"] if self.history else 0)
                self.history.append({"step": step, **{k: v / n for k, v in running.items()}})
                running = {}
        self._recalibrate(train)
        self.generator.eval()
        self.discriminator.eval()

    @staticmethod
    def _optimise(optimiser: torch.optim.Optimizer, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        optimiser.zero_grad(set_to_none=True)
        next(iter(terms.values())).backward()  # the first term is the loss to minimise
        optimiser.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def _recalibrate(self, train: FeatureSet) -> None:
        """Recompute BatchNorm statistics with the final weights (emotions drawn as in training)."""
        rng = self.torch_rng(offset=1)
        size = self.config["batch_size"]

        def forward() -> None:
            y = train.y[torch.randint(len(train), (size,), generator=rng)].to(self.device)
            z = torch.randn(size, self.config["noise_dim"], generator=rng).to(self.device)
            self.generator(z, y)

        recalibrate_batchnorm(self.generator, [forward] * self.config["bn_batches"])

    # ------------------------------------------------------------------ losses (also used by tests)
    def sample(self, y: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Generator output in its own units ([-1, 1]) for emotions ``y``; fresh noise unless given."""
        if noise is None:
            # drawn on the CPU (seeded by the caller) and moved: the same seed trains the same way on any device
            noise = torch.randn(len(y), self.config["noise_dim"]).to(self.device)
        return self.generator(noise, y)

    def discriminator_loss(self, real: torch.Tensor, y: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's loss on a real and a fake batch (both in generator units) of the same emotions."""
        real_score, fake_score = self.discriminator(real, y), self.discriminator(fake, y)
        if self.config["loss"] == "hinge":
            loss = F.relu(1.0 - real_score).mean() + F.relu(1.0 + fake_score).mean()
        else:
            loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
        return {"d_loss": loss, "d_real": real_score.mean(), "d_fake": fake_score.mean()}

    def generator_loss(self, y: torch.Tensor, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        fake_score = self.discriminator(self.sample(y, noise), y)
        loss = -fake_score.mean() if self.config["loss"] == "hinge" else F.softplus(-fake_score).mean()
        return {"g_loss": loss}

    # ------------------------------------------------------------------ data range
    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Data units -> generator units (per-band affine map from the training fold's range)."""
        return (x - self.band_center.to(x.device)[:, None]) / self.band_half_range.to(x.device)[:, None]

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        return self.band_center.to(u.device)[:, None] + self.band_half_range.to(u.device)[:, None] * u

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def _generate(self, n_per_class: dict[str, int], seed: int) -> FeatureSet:
        if self.generator is None:
            raise EmoaugError("generator 'dcgan': used before fit() or restore()")
        self.generator.eval()
        xs, ys = [], []
        for label_index, label in enumerate(self.labels):
            count = check_count(self.name, label, n_per_class.get(label, 0))
            if count == 0:
                continue
            if not bool((self._train_y == label_index).any()):
                raise EmoaugError(f"generator 'dcgan': no training rows of class {label!r} to learn it from")
            # One stream per (seed, class): a class's rows do not depend on the other classes' counts.
            noise = torch.randn(count, self.config["noise_dim"], generator=class_generator(self.seed, seed, label_index))
            for z in noise.split(GENERATE_CHUNK):
                y = torch.full((len(z),), label_index, dtype=torch.int64, device=self.device)
                xs.append(self.from_unit(self.generator(z.to(self.device), y)).cpu())
            ys.append(torch.full((count,), label_index, dtype=torch.int64))
        if not xs:
            shape = (0, self.generator.n_mels, self.generator.n_frames)
            return FeatureSet(x=torch.zeros(shape), y=torch.zeros(0, dtype=torch.int64), labels=self.labels,
                              item_ids=[])
        return generated_featureset(torch.cat(xs), torch.cat(ys), self.labels, self.name)


def band_range(x: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-mel-band centre and (margin-widened) half range of training rows ``[N, M, T]``."""
    low, high = x.amin(dim=(0, 2)), x.amax(dim=(0, 2))
    half = ((high - low) / 2 * (1.0 + margin)).clamp_min(1e-6)  # a constant band still maps finitely
    return ((high + low) / 2).float(), half.float()

