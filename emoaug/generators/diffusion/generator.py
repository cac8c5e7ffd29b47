"""``diffusion``: a denoising diffusion model on log-mel rows after Kim & Lee (2024).

Model: a U-Net noise predictor chosen by ``unet``: ``2d`` (``unet.py``, the default: a U-Net over the (mel, frame)
cells of a 1-channel image, patch-folded for CPU budgets) or ``1d`` (``unet1d.py``: Kim & Lee's Table 4 network,
a U-Net over frames with the mel bins as channels, widths 256/512/1024 in the ``paper`` profiles), conditioned on
one vector, the sum of

* an **emotion embedding**: the penultimate layer (``SERClassifier.embed``) of a small CNN-BLSTM SER
  classifier trained inside ``fit`` on the training fold only; during training each row is conditioned
  on its own embedding, at synthesis on the mean embedding (centroid) of the target emotion, as in
  Kim & Lee. Its early stopping uses a speaker-grouped hold-out *within* the training rows
  (``ser_holdout`` of the training speakers; none when there are fewer than two speakers).
* an **utterance-style embedding**: a small strided conv encoder of a reference mel, globally pooled
  (so it summarises timbre/channel, not the frame sequence), trained jointly with the denoiser. In
  training the reference is the row itself (a GST-style reference encoder); at synthesis it is a
  random training row of the target emotion; in ``enhance`` mode it is the source row.

Classifier-free guidance (Ho & Salimans 2022): in training the whole conditioning vector is replaced
by a learned null vector with probability ``p_uncond``; sampling uses
``eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)`` (1 = plain conditional, 0 = unconditional).

Schedules (``schedules.py``) and samplers (``samplers.py``) are separate, model-agnostic objects chosen by
config. Modes: ``synthesize`` (from pure noise, per emotion) and ``enhance`` (noise a real training row of
the emotion to step ``enhance_t0`` and denoise it under its own emotion; ids carry the source id and rows
keep the source speaker: Kim & Lee's "enhanced data").
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...classifiers import SERClassifier, TrainConfig
from ...errors import EmoaugError
from ...featureset import FeatureSet
from ..neural import NeuralConfig, NeuralGenerator, generated_featureset
from ..options import option
from .samplers import DDPM_VARIANCES, SAMPLERS, SPACINGS, Denoiser, make_sampler
from .schedules import SCHEDULES, NoiseSchedule, make_schedule
from .unet import UNet, _norm, unet
from .unet1d import UNet1d, unet1d

log = logging.getLogger("emoaug")

MODES = ("synthesize", "enhance")
UNETS = ("2d", "1d")
PREDICTIONS = ("eps", "v")


@dataclass(frozen=True)
class DiffusionConfig(NeuralConfig):
    """Defaults: the quick profile, ~1.5 minutes per fold on a 2-core CPU for ~300 rows of 128 x 173 (0.15 s per
    training step, ~0.08 s per generated row with 15 guided DDIM steps; measured). The other profiles' sizes are
    in emoaug.config."""

    # generation
    mode: str = option("synthesize", "synthesize from noise, or enhance training rows", choices=MODES)
    enhance_t0: int | float = option(0.3, "enhance: noise level to start from, a 0-based step (int) or a fraction "
                                          "of the chain in (0, 1] (float)", ge=0)
    sampler: str = option("ddim", "sampler", choices=SAMPLERS)
    sampling_steps: int = option(15, "sampler steps per generated row", ge=1)
    eta: float = option(0.0, "DDIM stochasticity (0: deterministic)", ge=0)
    spacing: str = option("trailing", "how sampling steps are spread over the chain", choices=SPACINGS)
    ddpm_variance: str = option("posterior", "DDPM sampler's variance", choices=DDPM_VARIANCES)
    clip_x0: float | str | None = option("auto", "clip predicted rows to +-this ('auto': 1.1 x the largest |value| "
                                                 "of the training rows; None: no clipping)", gt=0,
                                         choices=("auto",))
    guidance_scale: float = option(2.0, "classifier-free guidance (1: plain conditional, 0: unconditional)", ge=0)
    sample_batch_size: int = option(64, "rows denoised per forward pass", ge=1)
    # noise schedule
    schedule: str = option("linear", "noise schedule", choices=SCHEDULES)
    timesteps: int = option(1000, "diffusion steps T", ge=1)
    beta_start: float = option(1e-4, "linear schedule: first beta", gt=0, lt=1)
    beta_end: float = option(0.02, "linear schedule: last beta", gt=0, lt=1)
    cosine_s: float = option(0.008, "cosine schedule: offset s", ge=0)
    # denoiser. Added after cells were stored: "2d" (the U-Net those cells used) stays out of their keys.
    unet: str = option("2d", "denoiser: '2d', a U-Net over (mel, frame) cells of a 1-channel image; '1d', Kim & "
                             "Lee's Table 4 U-Net over frames with the mel bins as channels (unet1d.py; "
                             "patch_size and stem_channels do not apply)", choices=UNETS, keyed_at_default=False)
    base_channels: int = option(16, "U-Net width at full resolution", ge=1)
    channel_mults: tuple[int, ...] = option((1, 2, 4), "U-Net width per level relative to base_channels", ge=1,
                                            min_items=1)
    num_res_blocks: int = option(1, "residual blocks per U-Net level", ge=1)
    attention_at: tuple[int, ...] = option((), "U-Net levels with self-attention (0: full resolution; 1d: linear "
                                                "attention, and the last level is the middle: mid_attention)", ge=0)
    mid_attention: bool = option(True, "self-attention in the U-Net's middle block (1d: linear attention)")
    heads: int = option(4, "attention heads (must divide each attention width)", ge=1)
    groups: int = option(8, "GroupNorm groups at most", ge=1)
    dropout: float = option(0.0, "dropout in the residual blocks", ge=0, lt=1)
    patch_size: int = option(4, "cells folded into channels per side before the first conv", ge=1)
    # a full-resolution stem of 16 channels cost 3.6x per training step on 2 CPU cores (measured on 128 x 173
    # rows): off in the quick profile so that all generators fit the 30-minute budget
    stem_channels: int = option(0, "channels of a full-resolution stem around the patch folding (0: none)", ge=0)
    prediction: str = option("v", "what the U-Net predicts: the noise, or v", choices=PREDICTIONS)
    # conditioning
    cond_dim: int = option(64, "conditioning vector size", ge=1)
    style_channels: int = option(16, "style encoder channels", ge=1)
    style_dim: int = option(32, "style embedding size", ge=1)
    p_uncond: float = option(0.1, "probability of dropping the condition in training (for guidance)", ge=0, lt=1)
    # emotion-embedding classifier (trained on the training fold only)
    ser_channels: int = option(32, "emotion-embedding classifier: conv channels", ge=1)
    ser_lstm_hidden: int = option(32, "emotion-embedding classifier: BLSTM size (embedding: twice this)", ge=1)
    ser_epochs: int = option(20, "emotion-embedding classifier: epochs", ge=1)
    ser_batch_size: int = option(32, "emotion-embedding classifier: batch size", ge=1)
    ser_lr: float = option(1e-3, "emotion-embedding classifier: learning rate", gt=0)
    ser_patience: int = option(5, "emotion-embedding classifier: early-stopping patience in epochs", ge=1)
    ser_holdout: float = option(0.2, "emotion-embedding classifier: share of training speakers held out", ge=0,
                                lt=1)
    # optimisation
    train_steps: int = option(300, "denoiser optimisation steps", ge=0)
    batch_size: int = option(16, "rows per training step", ge=1)
    # Gradients accumulate over the micro-batches and every norm is a GroupNorm (no batch statistics), so the
    # update is the same up to float summation order: a memory knob (the 2-D U-Net at paper widths saves ~6.7 GiB
    # of activations per 80 x 862 row), not part of what the generator is (left out of its content keys, see
    # execution_config)
    micro_batch_size: int | None = option(None, "rows per forward/backward pass in a training step (None: the "
                                                "whole batch)", ge=1)
    lr: float = option(1e-3, "AdamW learning rate", gt=0)
    weight_decay: float = option(0.0, "AdamW weight decay", ge=0)
    warmup_steps: int = option(50, "learning-rate warm-up steps", ge=0)
    grad_clip: float = option(1.0, "gradient-norm clipping (0: none)", ge=0)
    ema_decay: float = option(0.99, "decay of the EMA copy used for sampling (0: no EMA copy)", ge=0, lt=1)

    def __post_init__(self) -> None:
        if isinstance(self.enhance_t0, float) and not 0.0 < self.enhance_t0 <= 1.0:
            raise EmoaugError(f"enhance_t0 as a fraction must be in (0, 1], got {self.enhance_t0!r}")
        if self.schedule == "linear" and self.beta_start > self.beta_end:
            raise EmoaugError(f"beta_start must be <= beta_end, got {self.beta_start} > {self.beta_end}")
        if self.unet == "1d" and self.stem_channels:
            raise EmoaugError("stem_channels applies to the 2-D U-Net only (unet=2d); the 1-D U-Net has none")
        levels = len(self.channel_mults)
        missing = sorted(level for level in self.attention_at if level >= levels)
        if missing:
            raise EmoaugError(f"attention_at levels {missing} do not exist (levels 0..{levels - 1})")
        self._check_heads_divide_attention_widths()

    def _check_heads_divide_attention_widths(self) -> None:
        """Found here, not when the U-Net is built inside fit() (after the corpus is read)."""
        levels = {*self.attention_at, *([len(self.channel_mults) - 1] if self.mid_attention else [])}
        for level in sorted(levels):
            width = self.base_channels * self.channel_mults[level]
            if width % self.heads:
                raise EmoaugError(f"heads={self.heads} must divide the attention width {width} (base_channels x "
                                  f"channel_mults[{level}])")


class StyleEncoder(nn.Module):
    """Reference mel ``[B, M, T]`` -> style vector ``[B, style_dim]`` (strided convs, global mean pool)."""

    def __init__(self, channels: int, style_dim: int, groups: int, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        for k in range(n_layers):
            out_ch = channels * 2**k
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1), _norm(out_ch, groups), nn.SiLU()]
            in_ch = out_ch
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(in_ch, style_dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.out(self.convs(mel.unsqueeze(1)).mean(dim=(2, 3)))


class Conditioner(nn.Module):
    """Emotion embedding + reference mel -> conditioning vector; a learned null vector for guidance."""

    def __init__(self, emotion_dim: int, cond_dim: int, style_channels: int, style_dim: int, groups: int):
        super().__init__()
        self.emotion_proj = nn.Linear(emotion_dim, cond_dim)
        self.style = StyleEncoder(style_channels, style_dim, groups)
        self.style_proj = nn.Linear(style_dim, cond_dim)
        self.null = nn.Parameter(torch.zeros(cond_dim))

    def forward(self, emotion: torch.Tensor, reference: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        cond = self.emotion_proj(emotion) + self.style_proj(self.style(reference))
        if drop is not None:
            cond = torch.where(drop[:, None], self.null.expand_as(cond), cond)
        return cond

    def null_condition(self, batch: int) -> torch.Tensor:
        return self.null.expand(batch, -1)


class DiffusionModel(nn.Module):
    """The trained parts: U-Net denoiser and conditioner (no schedule inside).

    ``prediction`` is what the U-Net outputs: ``"eps"`` (Ho et al.; Kim & Lee) or ``"v"``
    (``v = sqrt(abar) eps - sqrt(1 - abar) x0``, Salimans & Ho 2022). With ``v`` the noise estimate is
    ``eps = sqrt(abar) v + sqrt(1 - abar) x_t``: at high noise the identity ``eps ~ x_t`` comes for free,
    which a small or patch-folded U-Net otherwise has to learn pixel by pixel (it is what makes the CPU
    profiles learn anything in a few hundred steps). Samplers always receive ``eps``.
    """

    def __init__(self, denoiser: UNet | UNet1d, conditioner: Conditioner, prediction: str = "eps"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise EmoaugError(f"generator 'diffusion': prediction must be one of {', '.join(PREDICTIONS)}")
        self.denoiser = denoiser
        self.conditioner = conditioner
        self.prediction = prediction

    def eps(self, schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.denoiser(x_t, t, cond)
        if self.prediction == "eps":
            return out
        abar = _per_row_alpha_bar(schedule, t, x_t)
        return abar.sqrt() * out + (1.0 - abar).sqrt() * x_t

    def loss(self, x0: torch.Tensor, emotion: torch.Tensor, schedule: NoiseSchedule, t: torch.Tensor,
             noise: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Ho et al.'s simple loss: MSE between the true and predicted noise (or v) of ``x_t``."""
        cond = self.conditioner(emotion, x0, drop)
        out = self.denoiser(schedule.q_sample(x0, t, noise), t, cond)
        if self.prediction == "eps":
            target = noise
        else:
            abar = _per_row_alpha_bar(schedule, t, x0)
            target = abar.sqrt() * noise - (1.0 - abar).sqrt() * x0
        return F.mse_loss(out, target)


def build_denoiser(cfg: dict[str, Any], n_mels: int) -> nn.Module:
    """The U-Net ``cfg["unet"]`` names, for rows of ``n_mels`` bins; both map ``(x [B, M, T], t, cond)`` to x's
    shape."""
    shared = {"base_channels": cfg["base_channels"], "channel_mults": cfg["channel_mults"],
              "num_res_blocks": cfg["num_res_blocks"], "attention_at": cfg["attention_at"],
              "mid_attention": cfg["mid_attention"], "cond_dim": cfg["cond_dim"], "groups": cfg["groups"],
              "heads": cfg["heads"], "dropout": cfg["dropout"]}
    if cfg["unet"] == "1d":
        return unet1d(n_mels=n_mels, **shared)
    return unet(in_channels=1, patch_size=cfg["patch_size"], stem_channels=cfg["stem_channels"], **shared)


def _per_row_alpha_bar(schedule: NoiseSchedule, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    abar = schedule.alphas_cumprod[t.cpu()].to(device=like.device, dtype=like.dtype)
    return abar.view(-1, *([1] * (like.ndim - 1)))


def classifier_free_guidance(eps: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                             cond: torch.Tensor, null: torch.Tensor, scale: float) -> Denoiser:
    """``denoise(x_t, t)`` with ``eps = eps_uncond + scale * (eps_cond - eps_uncond)`` (one batched pass).

    ``eps(x_t, t, cond)`` is the conditional noise predictor."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if scale == 1.0:
            return eps(x, t, cond)
        if scale == 0.0:
            return eps(x, t, null)
        eps_cond, eps_uncond = eps(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, null])).chunk(2)
        return eps_uncond + scale * (eps_cond - eps_uncond)

    return denoise


class DiffusionGenerator(NeuralGenerator):
    """Emotion- and style-conditioned mel diffusion with classifier-free guidance (Kim & Lee 2024)."""

    name = "diffusion"
    transforms_rows = True
    execution_config = ("micro_batch_size",)
    SAMPLING_KEYS = ("mode", "enhance_t0", "sampler", "sampling_steps", "eta", "spacing", "ddpm_variance",
                     "clip_x0", "guidance_scale", "sample_batch_size")
    Config = DiffusionConfig

    def __init__(self, **config: Any):
        super().__init__(**config)
        self.model: DiffusionModel | None = None
        self.ema: DiffusionModel | None = None
        self.schedule: NoiseSchedule = make_schedule(**self._schedule_args())
        self.centroids = torch.empty(0)
        self.x_bound = 1.0
        self.ser_summary: dict[str, Any] = {}
        self.ser_item_ids: list[str] = []  # rows the emotion-embedding classifier was trained / stopped on
        self._x = torch.empty(0)
        self._y = torch.empty(0, dtype=torch.int64)
        self._item_ids: list[str] = []
        self._speakers: list[str] = []

    # ------------------------------------------------------------------ building
    def _schedule_args(self) -> dict[str, Any]:
        cfg = self.config
        if cfg["schedule"] == "cosine":
            return {"name": "cosine", "T": cfg["timesteps"], "s": cfg["cosine_s"]}
        return {"name": cfg["schedule"], "T": cfg["timesteps"], "beta_start": cfg["beta_start"],
                "beta_end": cfg["beta_end"]}

    @property
    def emotion_dim(self) -> int:
        return 2 * int(self.config["ser_lstm_hidden"])  # the CNN-BLSTM embedding is the BLSTM output

    def networks(self) -> dict[str, nn.Module]:
        if self.model is None:
            return {}  # not built yet: the runner moves generators to a device before fit()
        nets: dict[str, nn.Module] = {"model": self.model}
        if self.ema is not None:
            nets["ema"] = self.ema
        return nets

    def _setup(self, train: FeatureSet) -> None:
        cfg = self.config
        # references, not copies: generation reads source / reference rows from the training fold
        self._x, self._y = train.x, train.y
        self._item_ids, self._speakers = list(train.item_ids), list(train.speakers)
        self.x_bound = 1.1 * float(train.x.abs().max())
        self.centroids = torch.zeros(len(self.labels), self.emotion_dim)
        denoiser = build_denoiser(cfg, n_mels=int(train.x.shape[1]))
        conditioner = Conditioner(self.emotion_dim, cfg["cond_dim"], cfg["style_channels"], cfg["style_dim"],
                                  cfg["groups"])
        self.model = DiffusionModel(denoiser, conditioner, cfg["prediction"])
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if cfg["ema_decay"] > 0 else None

    # ------------------------------------------------------------------ training
    def _train(self, train: FeatureSet) -> None:
        started = time.perf_counter()
        embeddings = self._fit_emotion_embedding(train)
        self.ser_summary["seconds"] = time.perf_counter() - started
        log.debug("diffusion: emotion-embedding classifier %s", self.ser_summary)
        self._fit_denoiser(train, embeddings)

    def _fit_emotion_embedding(self, train: FeatureSet) -> torch.Tensor:
        """Train the SER classifier on training rows only; return every row's embedding, set centroids."""
        cfg = self.config
        fit_rows, holdout_rows = self._speaker_holdout(train)
        config = TrainConfig(epochs=cfg["ser_epochs"], batch_size=cfg["ser_batch_size"], lr=cfg["ser_lr"],
                             patience=cfg["ser_patience"] if holdout_rows.size else None, seed=self.seed,
                             device=str(self.device))
        ser = SERClassifier("cnn_blstm", config, channels=cfg["ser_channels"], lstm_hidden=cfg["ser_lstm_hidden"],
                            lstm_layers=1)
        ser.fit(train.subset(fit_rows), train.subset(holdout_rows) if holdout_rows.size else None, progress=False)
        embeddings = torch.from_numpy(ser.embed(train)).float()
        for k in range(len(self.labels)):
            rows = train.y == k
            if bool(rows.any()):
                self.centroids[k] = embeddings[rows].mean(dim=0)
        self.ser_summary = {"fit_rows": int(fit_rows.size), "holdout_rows": int(holdout_rows.size),
                            "epochs_run": len(ser.history), "best_epoch": ser.best_epoch}
        self.ser_item_ids = sorted(train.item_ids[int(i)] for i in np.concatenate([fit_rows, holdout_rows]))
        return embeddings

    def fitted_parts(self) -> dict[str, tuple[list[str], set[str]]]:
        by_id = dict(zip(self._item_ids, self._speakers)) if self._speakers else {}
        speakers = {by_id[i] for i in self.ser_item_ids if i in by_id}
        return {"emotion-embedding classifier": (list(self.ser_item_ids), speakers)}

    def _speaker_holdout(self, train: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (fit, holdout): ``ser_holdout`` of the training speakers, picked by the seed."""
        all_rows = np.arange(len(train))
        speakers = sorted(set(train.speakers))
        n_holdout = int(round(self.config["ser_holdout"] * len(speakers)))
        if len(speakers) < 2 or n_holdout < 1:
            return all_rows, np.zeros(0, dtype=np.int64)
        n_holdout = min(n_holdout, len(speakers) - 1)
        picked = set(np.random.default_rng([self.seed, 7]).choice(speakers, size=n_holdout, replace=False))
        held = np.array([s in picked for s in train.speakers])
        return all_rows[~held], all_rows[held]

    def _fit_denoiser(self, train: FeatureSet, embeddings: torch.Tensor) -> None:
        cfg, model = self.config, self.model
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        warmup = max(1, int(cfg["warmup_steps"]))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        rng = self.torch_rng(1)
        batches = self._batch_stream(len(train), int(cfg["batch_size"]), rng)
        log_every = max(1, int(cfg["train_steps"]) // 20)
        started, running = time.perf_counter(), []
        model.train()
        for step in range(int(cfg["train_steps"])):
            index = next(batches)
            optimizer.zero_grad(set_to_none=True)
            loss = self._backward(train.x[index], embeddings[index], rng)
            if cfg["grad_clip"]:
                nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
            optimizer.step()
            scheduler.step()
            self._update_ema(step)
            running.append(float(loss.detach()))
            if (step + 1) % log_every == 0 or step + 1 == int(cfg["train_steps"]):
                self.history.append({"step": step + 1, "loss": float(np.mean(running)),
                                     "seconds": time.perf_counter() - started})
                log.debug("diffusion step %d loss %.4f (%.0fs)", step + 1, self.history[-1]["loss"],
                          self.history[-1]["seconds"])
                running = []
        model.eval()

    def _training_draws(self, shape: torch.Size, rng: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Random steps, noise and guidance drop-out of one batch, drawn on CPU from ``rng`` (device-independent)."""
        n = shape[0]
        t = torch.randint(0, self.schedule.num_timesteps, (n,), generator=rng)
        noise = torch.randn(shape, generator=rng)
        drop = torch.rand(n, generator=rng) < float(self.config["p_uncond"])
        return t, noise, drop

    def _loss_of(self, x0: torch.Tensor, emotion: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                 drop: torch.Tensor) -> torch.Tensor:
        device = self.device
        return self.model.loss(x0.to(device), emotion.to(device), self.schedule, t.to(device), noise.to(device),
                               drop.to(device))

    def _training_loss(self, x0: torch.Tensor, emotion: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """The loss of one batch (its draws from ``rng``)."""
        return self._loss_of(x0, emotion, *self._training_draws(x0.shape, rng))

    def _backward(self, x0: torch.Tensor, emotion: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Backpropagate one batch's loss in micro-batches of ``micro_batch_size`` rows; returns the loss.

        The draws are made for the whole batch first and each micro-batch's mean loss is weighted by its share
        of the rows, so the gradient is the whole batch's (up to float summation order) whatever the size."""
        n = x0.shape[0]
        t, noise, drop = self._training_draws(x0.shape, rng)
        size = int(self.config["micro_batch_size"] or n)
        total = torch.zeros(())
        for start in range(0, n, size):
            part = slice(start, min(n, start + size))
            loss = self._loss_of(x0[part], emotion[part], t[part], noise[part], drop[part])
            if size < n:  # exact for one pass: a factor of 1.0 is not even multiplied in
                loss = loss * ((part.stop - part.start) / n)
            loss.backward()
            total = total + loss.detach().cpu()
        return total

    def _batch_stream(self, n_rows: int, batch_size: int, rng: torch.Generator):
        while True:  # epoch after epoch of shuffled mini-batches
            yield from self.minibatches(n_rows, min(batch_size, n_rows), rng)

    @torch.no_grad()
    def _update_ema(self, step: int) -> None:
        if self.ema is None:
            return
        # warm-up (as in many DDPM codebases): early weights are not averaged in with a 0.999-style decay
        decay = min(float(self.config["ema_decay"]), (1 + step) / (10 + step))
        for ema_p, p in zip(self.ema.parameters(), self.model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.ema.buffers(), self.model.buffers()):
            ema_b.copy_(b)

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict[str, Any]:
        return {"centroids": self.centroids.detach().cpu().clone(), "x_bound": float(self.x_bound),
                "labels": list(self.labels), "ser": dict(self.ser_summary), "ser_item_ids": list(self.ser_item_ids)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if list(state.get("labels", self.labels)) != list(self.labels):
            raise EmoaugError(f"generator 'diffusion': checkpoint labels {state['labels']} differ from {list(self.labels)}")
        self.centroids = state["centroids"].float().clone()
        self.x_bound = float(state["x_bound"])
        self.ser_summary = dict(state.get("ser", {}))
        self.ser_item_ids = list(state.get("ser_item_ids", []))

    # ------------------------------------------------------------------ generation
    def with_sampling(self, **overrides: Any) -> DiffusionGenerator:
        """A view of this fitted generator with other sampling options (shares the trained weights)."""
        bad = sorted(set(overrides) - set(self.SAMPLING_KEYS))
        if bad:
            raise EmoaugError(f"generator 'diffusion': with_sampling() takes only {', '.join(self.SAMPLING_KEYS)}, "
                              f"not {', '.join(bad)}")
        other = copy.copy(self)
        other.use_options(self.resolve_config({**self.config, **overrides}))
        return other

    def sampler(self):
        cfg = self.config
        clip = self.x_bound if cfg["clip_x0"] == "auto" else cfg["clip_x0"]
        return make_sampler(cfg["sampler"], self.schedule, steps=cfg["sampling_steps"], eta=cfg["eta"],
                            spacing=cfg["spacing"], ddpm_variance=cfg["ddpm_variance"], clip_x0=clip)

    def enhance_step(self) -> int:
        """``enhance_t0`` as a 0-based step: an int is a step, a float a fraction of the chain."""
        t0, T = self.config["enhance_t0"], self.schedule.num_timesteps
        step = int(t0) if isinstance(t0, (int, np.integer)) else int(round(float(t0) * T)) - 1
        return min(max(step, 0), T - 1)

    def _generate(self, n_per_class: dict[str, int], seed: int) -> FeatureSet:
        model = self.ema if self.ema is not None else self.model
        model.eval()
        sampler = self.sampler()
        start_step = self.enhance_step() if self.config["mode"] == "enhance" else None
        xs, ys, sources = [], [], []
        for label_index, label in enumerate(self.labels):
            count = _check_count(label, n_per_class.get(label, 0))
            if count == 0:
                continue
            # one stream per (generator seed, seed, class): a class's rows do not depend on other counts
            np_rng = np.random.default_rng([self.seed, seed, label_index])
            torch_rng = torch.Generator().manual_seed(int(np_rng.integers(2**62)))
            rows = self.sample_rows_per_class(self._y, {label: count}, np_rng)
            if not rows:
                raise EmoaugError(f"generator 'diffusion': no training rows of class {label!r} to condition on")
            for start in range(0, count, int(self.config["sample_batch_size"])):
                chunk = torch.as_tensor(rows[start : start + int(self.config["sample_batch_size"])])
                xs.append(self._sample_batch(model, sampler, self._x[chunk], torch.full((len(chunk),), label_index),
                                             torch_rng, start_step))
            ys.append(torch.full((count,), label_index, dtype=torch.int64))
            sources += rows
        if not xs:
            n_mels, n_frames = self._x.shape[1:]
            return FeatureSet(x=torch.zeros((0, n_mels, n_frames)), y=torch.zeros(0, dtype=torch.int64),
                              labels=self.labels, item_ids=[])
        x, y = torch.cat(xs), torch.cat(ys)
        if self.config["mode"] == "enhance":
            speakers = [self._speakers[r] for r in sources] if self._speakers else None
            return generated_featureset(x, y, self.labels, self.name, [self._item_ids[r] for r in sources], speakers)
        return generated_featureset(x, y, self.labels, self.name)

    def _transform(self, rows: FeatureSet, conditions: torch.Tensor, seed: int) -> torch.Tensor:
        """Enhance mode on given rows: noise each to step ``enhance_t0`` and denoise it under its condition
        (the row itself is the style reference), whatever ``mode`` this generator samples with."""
        model = self.ema if self.ema is not None else self.model
        model.eval()
        sampler, t0 = self.sampler(), self.enhance_step()
        torch_rng = torch.Generator().manual_seed(int(np.random.default_rng([self.seed, seed, 7919]).integers(2**62)))
        batch = int(self.config["sample_batch_size"])
        return torch.cat([self._sample_batch(model, sampler, rows.x[start : start + batch],
                                             conditions[start : start + batch], torch_rng, t0)
                          for start in range(0, len(rows), batch)])

    @torch.no_grad()
    def _sample_batch(self, model: DiffusionModel, sampler, reference: torch.Tensor, label_index: torch.Tensor,
                      rng: torch.Generator, start_step: int | None) -> torch.Tensor:
        """Denoise one batch conditioned on emotions ``label_index`` and style ``reference`` rows: from pure
        noise, or (``start_step`` set) from ``reference`` noised to that step."""
        device = self.device
        reference = reference.to(device, torch.float32)
        emotion = self.centroids.to(device)[label_index.to(device)]
        cond = model.conditioner(emotion, reference)
        denoise = classifier_free_guidance(functools.partial(model.eps, self.schedule), cond,
                                           model.conditioner.null_condition(len(reference)),
                                           float(self.config["guidance_scale"]))
        noise = torch.randn(reference.shape, generator=rng).to(device)
        if start_step is not None:
            start = self.schedule.q_sample(reference, torch.full((len(reference),), start_step), noise)
            return sampler.sample(denoise, start, generator=rng, start_step=start_step).cpu()
        return sampler.sample(denoise, noise, generator=rng).cpu()


# ---------------------------------------------------------------------- request checks
def _check_count(label: str, count) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise EmoaugError(f"generator 'diffusion': n_per_class[{label!r}] must be an integer >= 0, got {count!r}")
    return int(count)

