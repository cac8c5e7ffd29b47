"""Kim & Lee's (2024) Table 4 denoiser: a 1-D U-Net over frames, the mel bins as channels.

Table 4 (``kim2024_table04_diffusion_architecture.csv``; batch 32, 80 mel bins, 861 frames) lists

=================  ===============  ======  ===============
block              input            stride  output
=================  ===============  ======  ===============
initial input      (32, 80, 861)    -       (32, 256, 861)
ResNet block       (32, 256, 861)   1       (32, 256, 861)
Downsample         (32, 256, 861)   2       (32, 512, 430)
ResNet block       (32, 512, 430)   1       (32, 1024, 215)
Upsample           (32, 1024, 215)  2       (32, 512, 430)
ResNet block       (32, 512, 430)   1       (32, 256, 861)
Final Conv2d       (32, 256, 861)   1       (32, 1, 861)
=================  ===============  ======  ===============

Its shapes are not all consistent, so this is the reading implemented, row by row:

* **mel bins are channels, frames the length**: the input (32, 80, 861) becomes (32, 256, 861) by a conv over
  time. Only the frames are ever halved (861 -> 430 -> 215), never the 80 bins: a 1-D U-Net over time, as in
  Grad-TTS-style decoders.
* **three levels, widths 256 / 512 / 1024, two stride-2 steps.** The second "ResNet block" (stride 1, yet
  (512, 430) -> (1024, 215)) cannot halve the frames at stride 1; read as the level's residual blocks followed
  by the second downsampling, whose output the table prints. Each downsampling widens (c -> 2c, as the first
  one does: 256 -> 512), each upsampling narrows; so the third "ResNet block" ((512, 430) -> (256, 861)) is the
  level's blocks around the second upsampling. The 1024-wide level at 215 frames is the U-Net's middle.
* **the lengths are the table's**: a downsampling is a kernel-4, stride-2, padding-1 conv (floor(L / 2):
  861 -> 430 -> 215) and an upsampling a transposed conv of the same geometry told the length of its skip
  (215 -> 430 -> 861), so any frame count >= 2 ** n_down runs without padding; shorter inputs are padded with
  zeros and the output cropped.
* **the final conv outputs the input's 80 channels.** The table's "(32, 1, 861)" from a "Conv2d" is read as the
  one image channel of a [B, 1, 80, 861] view: a noise estimate has to have the input's shape.
* **residual blocks modulated by the time and emotion (+ style) embeddings**: GroupNorm-SiLU-conv twice, FiLM
  (scale, shift) from the sum of the step's sinusoidal embedding (through an MLP) and the projected
  conditioning vector (the generator's emotion embedding + style embedding), as in the 2-D net.
* **"attention in each block" with "a linear attention mechanism"**: linear attention (Katharopoulos et al.
  2020, in Grad-TTS's form: softmax over features for queries, over frames for keys) after the residual
  blocks of each level in ``attention_at`` and in the middle; linear in the frame count, so affordable at
  861 frames (``emoaug.config`` puts it at every level for the ``paper`` profile).
* skip connections from each down level to its mirror (concatenated before that level's up blocks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import EmoaugError
from .unet import _norm, sinusoidal_embedding


class ResBlock1d(nn.Module):
    """GroupNorm-SiLU-conv (kernel 3 over frames) twice, FiLM from the embedding, plus a skip path."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = nn.Conv1d(in_ch, out_ch, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = _norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class LinearAttention1d(nn.Module):
    """Linear attention over frames, residual: cost O(T d^2) per head instead of O(T^2 d)."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        if channels % heads:
            raise EmoaugError(f"unet 1d: attention width {channels} is not divisible by heads={heads}")
        self.heads = heads
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, n).unbind(1)
        q = q.softmax(dim=-2) * (c // self.heads) ** -0.5  # over each head's features
        k = k.softmax(dim=-1)  # over frames: each feature of k is a distribution over time
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return x + self.proj(out.reshape(b, c, n))


class Level(nn.Module):
    """One level's residual blocks, then linear attention when asked."""

    def __init__(self, in_ch: int, width: int, n_blocks: int, emb_dim: int, groups: int, dropout: float,
                 attention: bool, heads: int):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock1d(in_ch if i == 0 else width, width, emb_dim, groups, dropout)
                                    for i in range(n_blocks))
        self.attn = LinearAttention1d(width, heads, groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, emb)
        return self.attn(x) if self.attn is not None else x


class UNet1d(nn.Module):
    """``forward(x [B, M, T], t [B], cond [B, cond_dim] | None)`` -> noise estimate ``[B, M, T]``."""

    def __init__(self, *, n_mels: int, base_channels: int, channel_mults: Sequence[int], num_res_blocks: int,
                 attention_at: Sequence[int], mid_attention: bool, cond_dim: int, groups: int, heads: int,
                 dropout: float):
        super().__init__()
        widths = [base_channels * m for m in channel_mults]
        self.n_mels, self.cond_dim, self.n_down = n_mels, cond_dim, len(widths) - 1
        emb_dim = 4 * base_channels
        self.time_dim = base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.cond_proj = nn.Linear(cond_dim, emb_dim) if cond_dim > 0 else None
        self.conv_in = nn.Conv1d(n_mels, widths[0], 3, padding=1)

        def level(i: int, o: int, at: int) -> Level:
            return Level(i, o, num_res_blocks, emb_dim, groups, dropout, at in attention_at, heads)

        # down: level l's blocks (kept as the skip), then a stride-2 conv to level l + 1's width
        self.down = nn.ModuleList(level(w, w, at) for at, w in enumerate(widths[:-1]))
        self.downsample = nn.ModuleList(nn.Conv1d(w, w_next, 4, stride=2, padding=1)
                                        for w, w_next in zip(widths, widths[1:]))
        self.mid1 = ResBlock1d(widths[-1], widths[-1], emb_dim, groups, dropout)
        self.mid_attn = LinearAttention1d(widths[-1], heads, groups) if mid_attention else None
        self.mid2 = ResBlock1d(widths[-1], widths[-1], emb_dim, groups, dropout)
        # up (deepest first): a transposed conv back to level l's width and length, then blocks on [h, skip]
        self.upsample = nn.ModuleList(nn.ConvTranspose1d(w_next, w, 4, stride=2, padding=1)
                                      for w, w_next in reversed(list(zip(widths, widths[1:]))))
        self.up = nn.ModuleList(level(2 * w, w, at) for at, w in reversed(list(enumerate(widths[:-1]))))
        self.norm_out = _norm(widths[0], groups)
        self.conv_out = nn.Conv1d(widths[0], n_mels, 3, padding=1)

    def embedding(self, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        if self.cond_proj is not None:
            if cond is None:
                raise ValueError(f"UNet1d built with cond_dim={self.cond_dim} needs a conditioning vector")
            emb = emb + self.cond_proj(cond)
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        frames = x.shape[-1]
        # a floor-halving conv needs >= 2 frames at every level; longer inputs run at their own length
        h = F.pad(x, (0, max(0, 2**self.n_down - frames)))
        emb = self.embedding(t, cond)
        h = self.conv_in(h)
        skips = []
        for level, down in zip(self.down, self.downsample):
            h = level(h, emb)
            skips.append(h)
            h = down(h)
        h = self.mid1(h, emb)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid2(h, emb)
        for level, up in zip(self.up, self.upsample):
            skip = skips.pop()
            h = up(h, output_size=[skip.shape[-1]])
            h = level(torch.cat([h, skip], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))[..., :frames]


def unet1d(*, n_mels: int, base_channels: int = 64, channel_mults: Sequence[int] = (1, 2, 4),
           num_res_blocks: int = 1, attention_at: Sequence[int] = (), mid_attention: bool = True, cond_dim: int = 0,
           groups: int = 32, heads: int = 4, dropout: float = 0.0) -> UNet1d:
    """Build the 1-D U-Net: ``channel_mults`` gives each level's width relative to ``base_channels`` (one
    stride-2 step between consecutive levels; the last level is the middle); ``attention_at``: levels whose
    blocks end in linear attention; ``mid_attention``: linear attention in the middle."""
    if n_mels < 1 or base_channels < 1 or not channel_mults or min(channel_mults) < 1 or num_res_blocks < 1:
        raise EmoaugError("unet 1d: n_mels, base_channels, channel_mults and num_res_blocks must be positive")
    bad = sorted(set(attention_at) - set(range(len(channel_mults))))
    if bad:
        raise EmoaugError(f"unet 1d: attention_at levels {bad} do not exist (levels 0..{len(channel_mults) - 1})")
    return UNet1d(n_mels=n_mels, base_channels=base_channels, channel_mults=tuple(channel_mults),
                  num_res_blocks=num_res_blocks, attention_at=tuple(attention_at), mid_attention=mid_attention,
                  cond_dim=cond_dim, groups=groups, heads=heads, dropout=dropout)
