"""Small building blocks shared by the convolutional generators (VAE, DCGAN, CycleGAN).

Everything works on mel-spectrogram batches ``[B, C, n_mels, n_frames]`` of any size: networks
that down-sample by ``2**k`` pad their input up to a multiple of ``2**k`` with :func:`pad_to_multiple`
and cut the output back with :func:`crop`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import EmoaugError


def padded_size(size: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``size``."""
    return -(-size // multiple) * multiple


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the last two dims (mel, time) at their end up to a multiple of ``multiple``.

    Replicate padding (not zeros) because the features are normalised: zero is "average energy",
    not silence, and a hard edge would be a pattern the networks have to learn around.
    """
    n_mels, n_frames = x.shape[-2:]
    pad_mels = padded_size(n_mels, multiple) - n_mels
    pad_frames = padded_size(n_frames, multiple) - n_frames
    if pad_mels == 0 and pad_frames == 0:
        return x
    squeeze = x.ndim == 3
    batch = x.unsqueeze(1) if squeeze else x  # replicate padding needs a channel dim
    out = F.pad(batch, (0, pad_frames, 0, pad_mels), mode="replicate")
    return out.squeeze(1) if squeeze else out


def crop(x: torch.Tensor, n_mels: int, n_frames: int) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the first ``n_mels`` x ``n_frames`` cells."""
    return x[..., :n_mels, :n_frames]


def group_norm(channels: int, max_groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``max_groups`` that divides ``channels``.

    Batch-independent (unlike BatchNorm), so a row's output never depends on its batch-mates.
    """
    return nn.GroupNorm(math.gcd(channels, max_groups), channels)


class ResBlock2d(nn.Module):
    """Pre-activation residual block: (norm, SiLU, conv3x3) x 2 plus a (1x1 when needed) skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            group_norm(in_channels), nn.SiLU(), nn.Conv2d(in_channels, out_channels, 3, padding=1),
            group_norm(out_channels), nn.SiLU(), nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


def sn_conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
              padding: int = 0) -> nn.Module:
    """Conv2d under spectral normalisation (Miyato et al. 2018), the usual discriminator stabiliser."""
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding))


def sn_linear(in_features: int, out_features: int) -> nn.Module:
    return spectral_norm(nn.Linear(in_features, out_features))


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    """``[B, M, T]`` or ``[B, 1, M, T]`` -> ``[B, 1, M, T]``."""
    return x.unsqueeze(1) if x.ndim == 3 else x


def multi_resolution_spectral_loss(pred: torch.Tensor, target: torch.Tensor,
                                   scales: Sequence[int] = (1, 2, 4, 8)) -> torch.Tensor:
    """Distance between two log-mel batches at several resolutions along time and frequency.

    Two families of terms, averaged:

    * envelopes: L1 between average-pooled copies, pooled along time (``1 x s``) and along frequency
      (``s x 1``) for each scale ``s`` (scales larger than an axis are clipped to it), so coarse
      energy contours count as much as single cells;
    * modulation spectra: L1 between ``log1p(|rfft|)`` along time and along frequency, which an L1
      on cells alone blurs away (temporal modulation, harmonic ripple).
    """
    pred, target = _as_batch(pred), _as_batch(target)
    n_mels, n_frames = pred.shape[-2:]
    terms = []
    for scale in scales:
        for kernel in ((1, min(scale, n_frames)), (min(scale, n_mels), 1)):
            terms.append(F.l1_loss(F.avg_pool2d(pred, kernel), F.avg_pool2d(target, kernel)))
    for dim in (-1, -2):
        terms.append(F.l1_loss(torch.log1p(torch.fft.rfft(pred, dim=dim).abs()),
                               torch.log1p(torch.fft.rfft(target, dim=dim).abs())))
    return torch.stack(terms).mean()


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, batches) -> None:
    """Replace BatchNorm running statistics by exact averages over ``batches`` of forward calls.

    ``batches`` is an iterable of zero-argument callables, each running one forward pass. Training
    ends with running statistics that lag the last weights (momentum 0.1); recomputing them with
    the final weights makes eval-mode outputs match what the network produced while training.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = plain mean over the batches
        m.train()
    for forward in batches:
        forward()
    for m, (momentum, training) in zip(norms, saved):
        m.momentum = momentum
        m.train(training)


# ---------------------------------------------------------------------------- generator plumbing
def endless_minibatches(make_epoch, steps: int):
    """Yield exactly ``steps`` index batches, drawing fresh shuffled epochs from ``make_epoch()``."""
    done = 0
    while done < steps:
        for batch in make_epoch():
            if done == steps:
                return
            yield batch
            done += 1


def class_generator(*key: int) -> torch.Generator:
    """A CPU torch generator seeded from integers (e.g. model seed, call seed, class index).

    Noise is always drawn on the CPU and then moved, so a seed gives the same draws on any device.
    """
    seed = int(np.random.default_rng(list(key)).integers(0, 2**63 - 1))
    return torch.Generator().manual_seed(seed)


def check_count(name: str, label: str, count) -> int:
    """A requested per-class count as an ``int``; anything but an integer >= 0 is a user error."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise EmoaugError(f"generator {name!r}: n_per_class[{label!r}] must be an integer >= 0, got {count!r}")
    return int(count)
