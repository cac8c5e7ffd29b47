"""``cyclegan``: emotion conversion with one conditional CycleGAN (StarGAN-VC style) on log-mel rows.

Following Bao et al. (2019, "CycleGAN-based emotion style transfer as data augmentation for speech
emotion recognition"), new training rows are *real* utterances converted into another emotion, so
their content and speaker come from real speech. Instead of one generator pair per target emotion we
train ONE generator ``G(x, target)`` for all emotions (StarGAN / StarGAN-VC), which lets a single model
cover neutral -> X and, for the neutral class itself, X -> neutral.

Architecture (CycleGAN-VC2's 2-1-2D generator, scaled down by the profile):

* generator: two stride-2 gated 2-D convs (factor 4 in mel and time; rows are padded by edge
  replication to a multiple of 4 and cropped back), a 1x1 projection to 1-D over time with
  (channels x mel bins) as features, ``n_blocks`` residual 1-D blocks whose instance norms are
  modulated by the target emotion (conditional instance norm, i.e. FiLM from a class embedding),
  then 2-D up-sampling (a gated conv and a stride-2 transposed conv). Gated linear units and instance norm as in CycleGAN-VC. The network predicts a
  change that is added to its input (``residual_output``): at small budgets outputs stay close to
  the real source row instead of drifting into noise; set it False for the plain CycleGAN-VC2 output.
* discriminator: spectrally normalised 1-D conv over time (mel bins as channels) with a projection
  head (Miyato & Koyama 2018) for "real row of emotion y?" per patch of frames, plus a class head on
  time-pooled features for the domain classification loss (StarGAN).

Losses (least-squares GAN as in CycleGAN / CycleGAN-VC):

* ``L_G = L_adv + lambda_cyc * |G(G(x, t), s) - x|_1 + lambda_id * |G(x, s) - x|_1 + lambda_cls * CE(C(G(x, t)), t)``
* ``L_D = 1/2 [(D(x, s) - 1)^2 + D(G(x, t), t)^2] + lambda_cls * CE(C(x), s)``

``lambda_cyc = 10`` and ``lambda_id = 5`` are CycleGAN-VC's values, and like CycleGAN-VC the identity
loss is applied only for the first ``identity_steps`` steps (1e4 of 2e5 there; ``None`` = always).
``lambda_cls = 2`` is the domain-classification weight Bao et al. / Malik et al. (Table 1) report; 0
switches the class head off. Adam, betas 0.5/0.999, no learning-rate decay. Like CycleGAN-VC, training
uses random ``crop_frames``-frame windows of the rows (the networks are convolutional in time, so
generation converts whole rows).

Budgets. ``paper`` keeps CycleGAN-VC2's sizes and schedule (lr G 2e-4, D 1e-4). ``quick`` (the default)
is tuned for ~1 minute on a 2-core CPU: 600 steps of batch 8 on 64-frame windows, lr G 5e-4 / D 2e-4 and
the identity loss for the first 100 steps only. Measured on EmoDB fold 0 (emogen preset, 268 training
rows, 1 thread on a loaded machine, ~70 s per fit), with an independent logistic-regression judge on
per-band mean/std (65 % val accuracy on real rows): converted rows were classified as their *target*
emotion 47 % of the time (their unconverted sources: 0 %). With CycleGAN-VC's learning rates and the
identity loss always on, the generator stayed a near-copy of its input (judge 0-10 %): at CPU budgets
such rows are mislabelled copies, which is why the quick schedule differs from the paper's.

Training pairs: a mini-batch of training rows of any emotion ``s``; each row's target ``t`` is drawn
uniformly among the other emotions present in the training fold. One optimisation step = one G
update followed by one D update (on the same fakes).

Generation: for each requested target emotion ``t != source_emotion``, training rows of
``source_emotion`` (default neutral) are converted into ``t``, cycling through all of them in a
seeded random order before repeating any; for ``t == source_emotion`` rows of the other emotions are
converted into it. Ids are ``gen:cyclegan:<source item id>:<k>``, speakers are the source rows'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import EmoaugError
from ..featureset import FeatureSet
from .neural import NeuralConfig, NeuralGenerator, generated_featureset
from .options import option

NAME = "cyclegan"
#: The generator halves mel and time twice: rows are padded to a multiple of this and cropped back.
DOWNSAMPLE = 4


@dataclass(frozen=True)
class CycleGANConfig(NeuralConfig):
    """Defaults: the quick profile, about a minute per fit on 2 CPU cores for ~400 rows of 128 x 173 (measured;
    module docstring). The other profiles' sizes are in emoaug.config."""

    source_emotion: str = option("neutral", "emotion whose training rows are converted into the others")
    channels: int = option(8, "2-D channels at half resolution (x2 at quarter resolution)", ge=1)
    residual_channels: int = option(128, "width of the 1-D residual stage", ge=1)
    n_blocks: int = option(3, "residual 1-D blocks", ge=1)
    disc_channels: int = option(64, "discriminator channels at full time resolution (x2 per stride-2 layer)",
                                ge=1)
    steps: int = option(600, "optimisation steps (one G update + one D update each)", ge=1)
    batch_size: int = option(8, "rows per batch", ge=1)
    crop_frames: int | None = option(64, "train on random windows of this many frames (None: whole rows)",
                                     ge=2 * DOWNSAMPLE)
    lr_g: float = option(5e-4, "generator learning rate (CycleGAN-VC: 2e-4; faster for the short CPU budget)",
                         gt=0)
    lr_d: float = option(2e-4, "discriminator learning rate (CycleGAN-VC: 1e-4)", gt=0)
    beta1: float = option(0.5, "Adam beta1", ge=0, lt=1)
    beta2: float = option(0.999, "Adam beta2", ge=0, lt=1)
    lambda_cyc: float = option(10.0, "weight of the cycle-consistency loss", ge=0)
    lambda_id: float = option(5.0, "weight of the identity loss", ge=0)
    identity_steps: int | None = option(100, "apply the identity loss for this many steps (None: always)", ge=0)
    lambda_cls: float = option(2.0, "weight of the domain-classification loss (0: no class head)", ge=0)
    residual_output: bool = option(True, "the generator predicts a change added to its input")
    generate_batch_size: int = option(32, "rows converted per forward pass", ge=1)


# ----------------------------------------------------------------------------------- building blocks


def pad_to_multiple(x: torch.Tensor, multiple: int, *, min_frames: int = 0) -> torch.Tensor:
    """Pad ``[B, C, M, T]`` at the high end of M and T to multiples of ``multiple`` by repeating the edge.

    ``min_frames`` pads very short rows further (instance norm needs more than one frame).
    """
    pad_m = -x.shape[-2] % multiple
    n_frames = max(x.shape[-1], min_frames)
    pad_t = n_frames + (-n_frames % multiple) - x.shape[-1]
    if pad_m == 0 and pad_t == 0:
        return x
    return F.pad(x, (0, pad_t, 0, pad_m), mode="replicate")


class GatedConv2d(nn.Module):
    """Conv -> instance norm -> gated linear unit (CycleGAN-VC's down/up-sampling unit)."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm = nn.InstanceNorm2d(2 * out_channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.norm(self.conv(x)), dim=1)


class ConditionalInstanceNorm1d(nn.Module):
    """Instance norm whose scale and shift come from the target emotion (FiLM; StarGAN-VC2's CIN)."""

    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        self.norm = nn.InstanceNorm1d(channels, affine=False)
        self.scale = nn.Embedding(n_classes, channels)
        self.shift = nn.Embedding(n_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale(target).unsqueeze(-1) + self.shift(target).unsqueeze(-1)


class ConditionalResidualBlock1d(nn.Module):
    """x + CIN(conv(GLU(CIN(conv(x))))), both norms conditioned on the target emotion."""

    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        self.conv_in = nn.Conv1d(channels, 2 * channels, 3, padding=1)
        self.norm_in = ConditionalInstanceNorm1d(2 * channels, n_classes)
        self.conv_out = nn.Conv1d(channels, channels, 3, padding=1)
        self.norm_out = ConditionalInstanceNorm1d(channels, n_classes)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        h = F.glu(self.norm_in(self.conv_in(x), target), dim=1)
        return x + self.norm_out(self.conv_out(h), target)


class ConversionGenerator(nn.Module):
    """``G(x [B, M, T], target [B]) -> [B, M, T]``: 2-1-2-D conditional converter for any M, T.

    The 2-D stages work at half and quarter resolution only (a stride-2 stem and a stride-2
    transposed-conv head): full-resolution 2-D convolutions cost most of CycleGAN-VC2's compute and
    made a CPU fit ~10x slower, while the residual output keeps the source's full-resolution detail.
    """

    def __init__(self, n_mels: int, n_classes: int, *, channels: int, residual_channels: int, n_blocks: int,
                 residual_output: bool):
        super().__init__()
        self.residual_output = residual_output
        self.bottleneck_channels = 2 * channels
        flat = self.bottleneck_channels * (n_mels + (-n_mels % DOWNSAMPLE)) // DOWNSAMPLE
        self.down = nn.Sequential(GatedConv2d(1, channels, kernel_size=3, stride=2),
                                  GatedConv2d(channels, 2 * channels, kernel_size=3, stride=2))
        self.to_1d = nn.Sequential(nn.Conv1d(flat, residual_channels, 1), nn.InstanceNorm1d(residual_channels, affine=True))
        self.blocks = nn.ModuleList(ConditionalResidualBlock1d(residual_channels, n_classes) for _ in range(n_blocks))
        self.to_2d = nn.Sequential(nn.Conv1d(residual_channels, flat, 1), nn.InstanceNorm1d(flat, affine=True))
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                GatedConv2d(2 * channels, channels, kernel_size=3))
        self.head = nn.ConvTranspose2d(channels, 1, kernel_size=4, stride=2, padding=1)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n_mels, n_frames = x.shape[-2:]
        padded = pad_to_multiple(x.unsqueeze(1), DOWNSAMPLE, min_frames=2 * DOWNSAMPLE)
        h = self.down(padded)
        batch, _, mels, frames = h.shape
        h = self.to_1d(h.reshape(batch, -1, frames))
        for block in self.blocks:
            h = block(h, target)
        h = self.to_2d(h).reshape(batch, self.bottleneck_channels, mels, frames)
        out = self.head(self.up(h))
        if self.residual_output:
            out = out + padded
        return out[:, 0, :n_mels, :n_frames]


class ProjectionDiscriminator(nn.Module):
    """Spectrally normalised 1-D discriminator over time with the mel bins as input channels.

    Outputs per-patch (a window of frames) realness for "real row of emotion y" through a projection
    (Miyato & Koyama 2018) and, from time-pooled features, class logits for the domain-classification
    loss. 1-D rather than CycleGAN-VC2's 2-D PatchGAN: on 2 CPU cores a 2-D discriminator small enough
    to afford never learnt the emotions (its class loss stayed at ln(n_classes) after 600 steps on EmoDB),
    while one that sees the whole spectrum of each frame learns them in a few hundred steps at ~5x less cost.
    """

    def __init__(self, n_mels: int, n_classes: int, *, channels: int):
        super().__init__()
        widths = [channels, 2 * channels, 4 * channels]
        self.trunk = nn.Sequential(
            spectral_norm(nn.Conv1d(n_mels, widths[0], 3, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv1d(widths[0], widths[1], 3, stride=2, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv1d(widths[1], widths[2], 3, stride=2, padding=1)), nn.LeakyReLU(0.2))
        self.realness = spectral_norm(nn.Conv1d(widths[-1], 1, 1))
        self.projection = spectral_norm(nn.Embedding(n_classes, widths[-1]))
        # No spectral norm on the class head: bounding its logits slows the domain classifier down.
        self.classify = nn.Linear(widths[-1], n_classes)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch scores ``[B, t]`` for "real row of ``label``" and class logits ``[B, n_classes]``."""
        h = self.trunk(x)
        projected = (self.projection(label).unsqueeze(-1) * h).sum(dim=1)
        return self.realness(h)[:, 0] + projected, self.classify(h.mean(dim=2))


def cycle_identity_losses(generator: ConversionGenerator, x: torch.Tensor, source: torch.Tensor,
                          target: torch.Tensor) -> dict[str, torch.Tensor]:
    """The converted rows and the L1 cycle and identity losses of one batch."""
    fake = generator(x, target)
    return {"fake": fake,
            "cyc": F.l1_loss(generator(fake, source), x),
            "id": F.l1_loss(generator(x, source), x)}


def other_targets(source: torch.Tensor, present: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """For each source class, a target drawn uniformly among the other classes in ``present`` (sorted)."""
    position = torch.searchsorted(present, source)
    shift = torch.randint(1, len(present), source.shape, generator=rng)
    return present[(position + shift) % len(present)]


def random_crops(x: torch.Tensor, n_frames: int | None, rng: torch.Generator) -> torch.Tensor:
    """One random ``n_frames`` window per row (CycleGAN-VC trains on random segments); whole rows if shorter."""
    if n_frames is None or x.shape[-1] <= n_frames:
        return x
    starts = torch.randint(0, x.shape[-1] - n_frames + 1, (x.shape[0],), generator=rng)
    window = starts.view(-1, 1, 1) + torch.arange(n_frames).view(1, 1, -1)
    return torch.gather(x, 2, window.expand(-1, x.shape[1], -1))


def _lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(scores, torch.full_like(scores, 1.0 if real else 0.0))


# ----------------------------------------------------------------------------------- the generator


class CycleGAN(NeuralGenerator):
    """One conditional generator converting real training rows into other emotions."""

    name = NAME
    transforms_rows = True  # convert a given row into the chosen emotion
    Config = CycleGANConfig

    def __init__(self, **config: Any):
        super().__init__(**config)
        self.generator: ConversionGenerator | None = None
        self.discriminator: ProjectionDiscriminator | None = None
        self._present = torch.empty(0, dtype=torch.int64)  # classes with training rows, sorted
        self._x = torch.empty(0)
        self._y = torch.empty(0, dtype=torch.int64)
        self._item_ids: list[str] = []
        self._speakers: list[str] = []

    # ------------------------------------------------------------------ NeuralGenerator hooks
    def networks(self) -> dict[str, nn.Module]:
        if self.generator is None or self.discriminator is None:
            return {}  # not built yet: the runner moves generators to a device before fit()
        return {"generator": self.generator, "discriminator": self.discriminator}

    def _setup(self, train: FeatureSet) -> None:
        source = self.config["source_emotion"]
        if source not in train.labels:
            raise EmoaugError(f"generator {NAME!r}: source_emotion={source!r} is not in the label set "
                              f"{list(train.labels)}")
        self._present = torch.unique(train.y).sort().values
        if int((train.y == train.labels.index(source)).sum()) == 0:
            raise EmoaugError(f"generator {NAME!r}: the training fold has no rows of source_emotion={source!r} "
                              f"(set another source_emotion in the {NAME} generator config)")
        if len(self._present) < 2:
            raise EmoaugError(f"generator {NAME!r}: the training fold has only one emotion; conversion needs two")
        # References, not copies: generation only reads (indexes) them.
        self._x, self._y = train.x, train.y
        self._item_ids, self._speakers = list(train.item_ids), list(train.speakers)
        cfg = self.config
        self.generator = ConversionGenerator(train.n_mels, len(train.labels), channels=cfg["channels"],
                                             residual_channels=cfg["residual_channels"], n_blocks=cfg["n_blocks"],
                                             residual_output=cfg["residual_output"])
        self.discriminator = ProjectionDiscriminator(train.n_mels, len(train.labels), channels=cfg["disc_channels"])

    def _train(self, train: FeatureSet) -> None:
        cfg = self.config
        gen, disc = self.generator, self.discriminator
        opt_g = torch.optim.Adam(gen.parameters(), lr=cfg["lr_g"], betas=(cfg["beta1"], cfg["beta2"]))
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg["lr_d"], betas=(cfg["beta1"], cfg["beta2"]))
        rng = self.torch_rng(offset=1)
        gen.train()
        disc.train()
        self.history = []
        window: list[dict[str, float]] = []
        log_every = max(1, cfg["steps"] // 200)  # at most ~200 history rows, whatever the budget
        batches = self._batches(len(train), rng)
        for step in range(cfg["steps"]):
            rows = next(batches)
            x = random_crops(self._x[rows], cfg["crop_frames"], rng).to(self.device)
            source = self._y[rows].to(self.device)
            target = other_targets(self._y[rows], self._present, rng).to(self.device)
            window.append(self._step(x, source, target, step, opt_g, opt_d))
            if len(window) == log_every or step == cfg["steps"] - 1:
                self.history.append({"step": step + 1, **{k: float(np.mean([w[k] for w in window])) for k in window[0]}})
                window = []
        gen.eval()
        disc.eval()

    def _batches(self, n_rows: int, rng: torch.Generator):
        """Endless shuffled mini-batches, epoch after epoch."""
        batch_size = min(self.config["batch_size"], n_rows)
        while True:
            yield from self.minibatches(n_rows, batch_size, rng)

    def _step(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor, step: int,
              opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer) -> dict[str, float]:
        cfg = self.config
        gen, disc = self.generator, self.discriminator
        lambda_id = cfg["lambda_id"] if cfg["identity_steps"] is None or step < cfg["identity_steps"] else 0.0

        # Generator update: fool D as a row of the target emotion, come back, leave the source alone.
        for p in disc.parameters():
            p.requires_grad_(False)
        parts = cycle_identity_losses(gen, x, source, target)
        scores, logits = disc(parts["fake"], target)
        adv_g = _lsgan(scores, real=True)
        cls_g = F.cross_entropy(logits, target)
        loss_g = adv_g + cfg["lambda_cyc"] * parts["cyc"] + lambda_id * parts["id"] + cfg["lambda_cls"] * cls_g
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in disc.parameters():
            p.requires_grad_(True)

        # Discriminator update on the same fakes.
        real_scores, real_logits = disc(x, source)
        fake_scores, _ = disc(parts["fake"].detach(), target)
        adv_d = 0.5 * (_lsgan(real_scores, real=True) + _lsgan(fake_scores, real=False))
        cls_d = F.cross_entropy(real_logits, source)
        loss_d = adv_d + cfg["lambda_cls"] * cls_d
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        return {"loss_g": loss_g.item(), "adv_g": adv_g.item(), "cyc": parts["cyc"].item(),
                "id": parts["id"].item(), "cls_g": cls_g.item(), "loss_d": loss_d.item(),
                "adv_d": adv_d.item(), "cls_d": cls_d.item()}

    # ------------------------------------------------------------------ generation
    def _generate(self, n_per_class: dict[str, int], seed: int) -> FeatureSet:
        # One stream per target class: a class's rows do not depend on the other classes' counts.
        streams = self.numpy_rng(seed).spawn(len(self.labels))
        sources: list[np.ndarray] = []
        targets: list[int] = []
        for label_index, label in enumerate(self.labels):
            count = _check_count(label, n_per_class.get(label, 0))
            if count == 0:
                continue
            if label_index not in self._present.tolist():
                raise EmoaugError(f"generator {NAME!r}: cannot convert into {label!r}: the training fold has no "
                                  f"rows of it")
            sources.append(self._cycle(self._source_rows(label_index), count, streams[label_index]))
            targets += [label_index] * count
        if not targets:
            return self._empty()
        rows = np.concatenate(sources)
        x = self._convert(self._x[torch.as_tensor(rows)], torch.tensor(targets, dtype=torch.int64))
        return generated_featureset(x, torch.tensor(targets, dtype=torch.int64), self.labels, NAME,
                                    sources=[self._item_ids[i] for i in rows],
                                    speakers=[self._speakers[i] for i in rows] if self._speakers else None)

    def _source_rows(self, target_index: int) -> np.ndarray:
        """Rows of the source emotion; for the source emotion itself, rows of every other emotion."""
        source_index = self.labels.index(self.config["source_emotion"])
        y = self._y.cpu().numpy()
        return np.flatnonzero(y != source_index if target_index == source_index else y == source_index)

    @staticmethod
    def _cycle(rows: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` rows: every row once in a random order before any row is used twice."""
        n_cycles = -(-count // len(rows))
        return np.concatenate([rng.permutation(rows) for _ in range(n_cycles)])[:count]

    def _transform(self, rows: FeatureSet, conditions: torch.Tensor, seed: int) -> torch.Tensor:
        """Convert each given row into its condition emotion (deterministic; ``seed`` is unused)."""
        return self._convert(rows.x, conditions)

    def _convert(self, x_rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``x_rows`` through the generator towards ``targets`` (the rows are only read)."""
        gen = self.generator
        was_training = gen.training
        gen.eval()
        out = []
        step = self.config["generate_batch_size"]
        with torch.no_grad():
            for start in range(0, len(x_rows), step):
                x = x_rows[start:start + step].to(self.device)
                out.append(gen(x, targets[start:start + step].to(self.device)).cpu())
        gen.train(was_training)
        return torch.cat(out)

    def _empty(self) -> FeatureSet:
        n_mels, n_frames = self._x.shape[1:]
        return FeatureSet(x=torch.zeros((0, n_mels, n_frames)), y=torch.zeros(0, dtype=torch.int64),
                          labels=self.labels, item_ids=[])


# ----------------------------------------------------------------------------------- request checks


def _check_count(label: str, count: Any) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise EmoaugError(f"generator {NAME!r}: n_per_class[{label!r}] must be an integer >= 0, got {count!r}")
    return int(count)

