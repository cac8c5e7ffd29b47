"""``vae``: a class-conditional convolutional VAE on normalised log-mel rows (after EmoGen).

Architecture (2-D convolutions over mel x time, any row size):

* encoder: the row plus one constant one-hot channel per emotion -> stem conv -> per level a
  residual block and a stride-2 conv (``len(widths)`` levels, so rows are padded up to a multiple
  of ``2**len(widths)`` and the output is cropped back) -> linear -> mean and log-variance of a
  ``latent_dim`` Gaussian (EmoGen: 32);
* decoder: ``[z, emotion embedding]`` -> linear -> per level a nearest up-sampling, a conv, a
  per-emotion channel bias (the class enters every scale) and a residual block -> conv to one
  channel, no output non-linearity (features may be z-scored, i.e. unbounded).

Loss per step = reconstruction (``recon_loss``: mean L1 or MSE per cell)
+ ``spectral_weight`` * :func:`~emoaug.generators.layers.multi_resolution_spectral_loss`
+ ``beta`` * KL(q(z|x,y) || N(0, I)), the KL averaged over latent dimensions and rows so that it is
on the same per-element scale as the other terms whatever ``latent_dim`` is (EmoGen's README reports
both terms on such a scale: reconstruction 0.0128, KL 0.0093). Adam, gradient-norm clipping
(EmoGen: lr 3e-4, batch 16, clip 0.5, beta 0.1).

Generation (config ``mode``):

* ``"prior"`` (default): ``z ~ N(0, temperature**2 I)`` decoded under each requested emotion;
  ids ``gen:vae:<k>``.
* ``"reconstruction"``: training rows of the emotion (every row used once before any repeats) are
  encoded and decoded from ``z = mu + latent_noise * sigma * eps``, a sample of the posterior
  scaled by ``latent_noise`` (0 = the plain reconstruction); ids ``gen:vae:<source id>:<k>`` and
  the source's speaker, since content and speaker come from that item.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import EmoaugError
from ..featureset import FeatureSet
from .layers import (
    ResBlock2d,
    check_count,
    class_generator,
    crop,
    endless_minibatches,
    group_norm,
    multi_resolution_spectral_loss,
    pad_to_multiple,
    padded_size,
)
from .neural import NeuralConfig, NeuralGenerator, generated_featureset
from .options import option

MODES = ("prior", "reconstruction")
RECON_LOSSES = ("l1", "mse")
#: rows decoded per forward pass at generation time (memory bound, does not change results)
GENERATE_CHUNK = 64


@dataclass(frozen=True)
class VAEConfig(NeuralConfig):
    """Defaults: the quick profile (~45 s per fit on 2 CPU cores for rows of 128 x 173, emogen preset; 0.4-0.5 s
    per step measured). The other profiles' sizes are in emoaug.config."""

    mode: str = option("prior", "generation: decode prior samples, or perturbed reconstructions of training rows",
                       choices=MODES)
    latent_dim: int = option(32, "size of the Gaussian latent (EmoGen: 32)", ge=1)
    class_embedding: int = option(16, "size of the decoder's emotion embedding", ge=1)
    beta: float = option(0.1, "weight of the KL term (EmoGen: 0.1)", ge=0)
    spectral_weight: float = option(1.0, "weight of the multi-resolution spectral loss", ge=0)
    recon_loss: str = option("l1", "reconstruction loss per cell", choices=RECON_LOSSES)
    grad_clip: float = option(0.5, "gradient-norm clipping (EmoGen: 0.5)", ge=0)
    temperature: float = option(1.0, "prior mode: standard deviation of z", ge=0)
    latent_noise: float = option(1.0, "reconstruction mode: scale of the posterior noise (0 = the plain "
                                      "reconstruction)", ge=0)
    widths: tuple[int, ...] = option((16, 32, 64), "encoder channels per level, finest first (decoder mirrored)",
                                     ge=1, min_items=1)
    steps: int = option(100, "optimisation steps", ge=0)
    batch_size: int = option(16, "rows per batch", ge=1)
    lr: float = option(1e-3, "Adam learning rate", ge=0)
    log_every: int = option(25, "steps between loss records in the history", ge=1)


class ConditionalVAE(nn.Module):
    """Residual conv encoder/decoder with a flat Gaussian latent and emotion conditioning."""

    def __init__(self, n_mels: int, n_frames: int, n_classes: int, widths: list[int], latent_dim: int,
                 class_embedding: int):
        super().__init__()
        self.n_mels, self.n_frames, self.n_classes = n_mels, n_frames, n_classes
        self.factor = 2 ** len(widths)
        self.grid = (padded_size(n_mels, self.factor) // self.factor, padded_size(n_frames, self.factor) // self.factor)
        deepest = widths[-1]
        flat = deepest * self.grid[0] * self.grid[1]

        # Full-resolution maps exist only at the input and output convs: they dominate CPU time.
        self.encoder = nn.Sequential(nn.Conv2d(1 + n_classes, widths[0], 4, stride=2, padding=1),
                                     *self._down_levels(widths), group_norm(deepest), nn.SiLU())
        self.to_latent = nn.Linear(flat, 2 * latent_dim)

        self.embedding = nn.Embedding(n_classes, class_embedding)
        self.from_latent = nn.Linear(latent_dim + class_embedding, flat)
        ups = list(reversed(widths))[1:]
        ins = list(reversed(widths))[:-1]
        self.up_convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, padding=1) for c_in, c_out in zip(ins, ups))
        self.class_bias = nn.ModuleList(nn.Linear(class_embedding, c_out) for c_out in ups)
        self.up_blocks = nn.ModuleList(ResBlock2d(c_out, c_out) for c_out in ups)
        self.head = nn.Sequential(group_norm(widths[0]), nn.SiLU(),
                                  nn.ConvTranspose2d(widths[0], 1, 4, stride=2, padding=1))

    @staticmethod
    def _down_levels(widths: list[int]) -> Iterator[nn.Module]:
        for channels, width in zip(widths[:-1], widths[1:]):
            yield ResBlock2d(channels, width)
            yield nn.Conv2d(width, width, 4, stride=2, padding=1)

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, M, T]``, ``y [B]`` -> mean and log-variance ``[B, latent_dim]``."""
        rows = pad_to_multiple(x, self.factor).unsqueeze(1)
        onehot = F.one_hot(y, self.n_classes).to(rows.dtype)[:, :, None, None]
        h = self.encoder(torch.cat([rows, onehot.expand(-1, -1, *rows.shape[-2:])], dim=1))
        mean, logvar = self.to_latent(h.flatten(1)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)  # keeps exp() finite early in training

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``z [B, latent_dim]``, ``y [B]`` -> rows ``[B, M, T]``."""
        emotion = self.embedding(y)
        h = self.from_latent(torch.cat([z, emotion], dim=1)).view(len(z), -1, *self.grid)
        for conv, bias, block in zip(self.up_convs, self.class_bias, self.up_blocks):
            h = conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = block(h + bias(emotion)[:, :, None, None])
        return crop(self.head(h).squeeze(1), self.n_mels, self.n_frames)


def kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) averaged over latent dimensions and rows."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()


class ConditionalVAEGenerator(NeuralGenerator):
    """EmoGen-style conditional VAE. See the module docstring for the model and the modes."""

    name = "vae"
    transforms_rows = True  # encode-decode a given row under a chosen emotion
    Config = VAEConfig

    def __init__(self, **config: Any):
        super().__init__(**config)
        self.model: ConditionalVAE | None = None
        self._train_x = torch.empty(0)
        self._train_y = torch.empty(0, dtype=torch.int64)
        self._train_ids: list[str] = []
        self._train_speakers: list[str] = []

    # ------------------------------------------------------------------ NeuralGenerator hooks
    def networks(self) -> dict[str, nn.Module]:
        return {} if self.model is None else {"vae": self.model}

    def _setup(self, train: FeatureSet) -> None:
        cfg = self.config
        self.model = ConditionalVAE(train.n_mels, train.n_frames, len(train.labels), cfg["widths"],
                                    cfg["latent_dim"], cfg["class_embedding"])
        # References, not copies: generation only reads them (reconstruction mode and class checks).
        self._train_x, self._train_y = train.x, train.y
        self._train_ids, self._train_speakers = list(train.item_ids), list(train.speakers)

    def _train(self, train: FeatureSet) -> None:
        cfg, model = self.config, self.model
        model.train()
        optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        rng = self.torch_rng()
        batches = endless_minibatches(lambda: self.minibatches(len(train), cfg["batch_size"], rng), cfg["steps"])
        running: dict[str, float] = {}
        for step, index in enumerate(batches, start=1):
            terms = self.loss_terms(train.x[index].to(self.device), train.y[index].to(self.device))
            optimiser.zero_grad(set_to_none=True)
            terms["loss"].backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
            optimiser.step()
            for key, value in terms.items():
                running[key] = running.get(key, 0.0) + float(value.detach())
            if step % cfg["log_every"] == 0 or step == cfg["steps"]:
                n = step - (self.history[-1]["step"] if self.history else 0)
                self.history.append({"step": step, **{k: v / n for k, v in running.items()}})
                running = {}
        model.eval()

    # ------------------------------------------------------------------ loss
    def loss_terms(self, x: torch.Tensor, y: torch.Tensor,
                   noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss and its parts on one batch; ``noise`` (``[B, latent_dim]``) fixes the reparametrisation."""
        cfg = self.config
        mean, logvar = self.model.encode(x, y)
        if noise is None:
            noise = torch.randn(mean.shape, dtype=mean.dtype).to(mean.device)  # CPU RNG: the same on any device
        recon = self.model.decode(mean + noise * (0.5 * logvar).exp(), y)
        cell = F.l1_loss(recon, x) if cfg["recon_loss"] == "l1" else F.mse_loss(recon, x)
        spectral = multi_resolution_spectral_loss(recon, x)
        kl = kl_per_dim(mean, logvar)
        loss = cell + cfg["spectral_weight"] * spectral + cfg["beta"] * kl
        return {"loss": loss, "recon": cell, "spectral": spectral, "kl": kl}

    @torch.no_grad()
    def evaluate_loss(self, data: FeatureSet, seed: int = 0) -> dict[str, float]:
        """Loss terms on ``data`` in eval mode with seeded noise (a fixed yardstick for tests and checks)."""
        self._require_fitted()
        self.model.eval()
        noise = torch.randn(len(data), self.config["latent_dim"], generator=class_generator(self.seed, seed))
        terms = self.loss_terms(data.x.to(self.device), data.y.to(self.device), noise.to(self.device))
        return {k: float(v) for k, v in terms.items()}

    # ------------------------------------------------------------------ generation
    def _generate(self, n_per_class: dict[str, int], seed: int) -> FeatureSet:
        self._require_fitted()
        self.model.eval()
        xs, ys, sources = [], [], []
        for label_index, label in enumerate(self.labels):
            count = check_count(self.name, label, n_per_class.get(label, 0))
            if count == 0:
                continue
            if not bool((self._train_y == label_index).any()):
                raise EmoaugError(f"generator 'vae': no training rows of class {label!r} to learn it from")
            # One stream per (seed, class): a class's rows do not depend on the other classes' counts.
            noise = torch.randn(count, self.config["latent_dim"],
                                generator=class_generator(self.seed, seed, label_index))
            if self.config["mode"] == "prior":
                xs.append(self._decode_prior(noise, label_index))
            else:
                rows = self.sample_rows_per_class(self._train_y, {label: count},
                                                  np.random.default_rng([self.seed, seed, label_index]))
                index = torch.as_tensor(rows)
                xs.append(self._reconstruct(self._train_x[index], self._train_y[index], noise))
                sources.extend(rows)
            ys.append(torch.full((count,), label_index, dtype=torch.int64))
        return self._featureset(xs, ys, sources)

    @torch.no_grad()
    def _decode_prior(self, noise: torch.Tensor, label_index: int) -> torch.Tensor:
        out = []
        for z in noise.split(GENERATE_CHUNK):
            y = torch.full((len(z),), label_index, dtype=torch.int64, device=self.device)
            out.append(self.model.decode(self.config["temperature"] * z.to(self.device), y).cpu())
        return torch.cat(out)

    def _transform(self, rows: FeatureSet, conditions: torch.Tensor, seed: int) -> torch.Tensor:
        """Encode and decode each given row under its condition (the reconstruction mode on other rows)."""
        self._require_fitted()
        self.model.eval()
        noise = torch.randn(len(rows), self.config["latent_dim"],
                            generator=class_generator(self.seed, seed, len(self.labels)))  # apart from _generate's
        return self._reconstruct(rows.x, conditions, noise)

    @torch.no_grad()
    def _reconstruct(self, x_rows: torch.Tensor, y_rows: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Rows through the encoder and decoder under labels ``y_rows``, with ``latent_noise`` times the
        posterior's spread added."""
        out = []
        for start in range(0, len(x_rows), GENERATE_CHUNK):
            x = x_rows[start:start + GENERATE_CHUNK].to(self.device)
            y = y_rows[start:start + GENERATE_CHUNK].to(self.device)
            mean, logvar = self.model.encode(x, y)
            eps = noise[start:start + len(x)].to(self.device)
            out.append(self.model.decode(mean + self.config["latent_noise"] * eps * (0.5 * logvar).exp(), y).cpu())
        return torch.cat(out)

    def _featureset(self, xs: list[torch.Tensor], ys: list[torch.Tensor], sources: list[int]) -> FeatureSet:
        if not xs:
            shape = (0, self.model.n_mels, self.model.n_frames)
            return FeatureSet(x=torch.zeros(shape), y=torch.zeros(0, dtype=torch.int64), labels=self.labels,
                              item_ids=[])
        x, y = torch.cat(xs), torch.cat(ys)
        if self.config["mode"] == "prior":
            return generated_featureset(x, y, self.labels, self.name)
        speakers = [self._train_speakers[i] for i in sources] if self._train_speakers else None
        return generated_featureset(x, y, self.labels, self.name,
                                    sources=[self._train_ids[i] for i in sources], speakers=speakers)

    def _require_fitted(self) -> None:
        if self.model is None:
            raise EmoaugError("generator 'vae': used before fit() or restore()")

