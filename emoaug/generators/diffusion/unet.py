"""A 2-D U-Net noise predictor for 1-channel log-mel "images" (``unet=2d``; the widths of Kim & Lee 2024, Table 4,
but a 2-D net: Table 4 itself, mel bins as channels over frames, is ``unet1d.py``).

conv in -> residual blocks per level (+ self-attention where asked) -> downsampling between levels
-> middle: residual block, self-attention, residual block -> mirrored levels with skip connections
and upsampling -> GroupNorm, SiLU, conv out. With ``channel_mults=(1, 2, 4)`` and
``base_channels=256`` the level widths are Kim & Lee's 256 / 512 / 1024 with two downsamplings.

The network knows nothing about noise schedules: it maps ``(x_t, t, cond)`` to a noise estimate.
``t`` enters through a sinusoidal embedding and an MLP; the conditioning vector ``cond`` (any
``cond_dim``) is projected and added to that embedding, which then modulates every residual block
by FiLM (scale and shift after its second GroupNorm). Inputs of any mel x frame size are padded to
a multiple of ``patch_size * 2 ** n_down`` and the output is cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import EmoaugError


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style embedding of (possibly fractional) steps ``t`` ``[B]`` -> ``[B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    # the largest group count <= ``groups`` that divides the width, so any width works
    g = max(d for d in range(1, min(groups, channels) + 1) if channels % d == 0)
    return nn.GroupNorm(g, channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with FiLM from the (time + condition) embedding, plus a skip path."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = _norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all (mel, frame) positions, residual."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        if channels % heads:
            raise EmoaugError(f"unet: attention width {channels} is not divisible by heads={heads}")
        self.heads = heads
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Block(nn.Module):
    """A residual block, optionally followed by self-attention."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float, attention: bool,
                 heads: int):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, groups, dropout)
        self.attn = SelfAttention(out_ch, heads, groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class UNet(nn.Module):
    """``forward(x [B, M, T] or [B, 1, M, T], t [B], cond [B, cond_dim] | None)`` -> noise estimate, x's shape."""

    def __init__(self, *, in_channels: int, base_channels: int, channel_mults: Sequence[int], num_res_blocks: int,
                 attention_at: Sequence[int], mid_attention: bool, cond_dim: int, groups: int, heads: int,
                 dropout: float, patch_size: int, stem_channels: int):
        super().__init__()
        widths = [base_channels * m for m in channel_mults]
        self.in_channels, self.cond_dim, self.n_down = in_channels, cond_dim, len(widths) - 1
        self.patch_size, self.stem_channels = patch_size, stem_channels
        emb_dim = 4 * base_channels
        self.time_dim = base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.cond_proj = nn.Linear(cond_dim, emb_dim) if cond_dim > 0 else None
        # optional full-resolution stem/head around the patch folding (see ``unet``)
        pixel_channels = stem_channels if stem_channels else in_channels
        self.stem = nn.Conv2d(in_channels, stem_channels, 3, padding=1) if stem_channels else None
        self.head = nn.Conv2d(2 * stem_channels, in_channels, 3, padding=1) if stem_channels else None
        patch_channels = pixel_channels * patch_size**2
        self.conv_in = nn.Conv2d(patch_channels, widths[0], 3, padding=1)

        def block(i: int, o: int, attention: bool) -> Block:
            return Block(i, o, emb_dim, groups, dropout, attention, heads)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_widths, ch = [widths[0]], widths[0]
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(block(ch, width, level in attention_at))
                ch = width
                skip_widths.append(ch)
            self.down.append(blocks)
            if level < self.n_down:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_widths.append(ch)
        self.mid1 = block(ch, ch, mid_attention)
        self.mid2 = block(ch, ch, False)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(widths))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(block(ch + skip_widths.pop(), widths[level], level in attention_at))
                ch = widths[level]
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.norm_out = _norm(ch, groups)
        self.conv_out = nn.Conv2d(ch, patch_channels, 3, padding=1)

    def embedding(self, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        if self.cond_proj is not None:
            if cond is None:
                raise ValueError(f"UNet built with cond_dim={self.cond_dim} needs a conditioning vector")
            emb = emb + self.cond_proj(cond)
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        squeeze = x.ndim == 3 and self.in_channels == 1
        h = x.unsqueeze(1) if squeeze else x
        height, width = h.shape[-2:]
        multiple = self.patch_size * 2**self.n_down
        # pad (zeros) to a size every downsampling halves exactly; cropped back at the end
        h = F.pad(h, (0, -width % multiple, 0, -height % multiple))
        emb = self.embedding(t, cond)
        stem = F.silu(self.stem(h)) if self.stem is not None else None
        h = self.conv_in(F.pixel_unshuffle(stem if stem is not None else h, self.patch_size))
        skips = [h]
        for level, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, emb)
                skips.append(h)
            if level < self.n_down:
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid2(self.mid1(h, emb), emb)
        for k, blocks in enumerate(self.up):
            for blk in blocks:
                h = blk(torch.cat([h, skips.pop()], dim=1), emb)
            if k < self.n_down:
                h = self.upsample[k](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), self.patch_size)
        if self.head is not None:
            out = self.head(F.silu(torch.cat([out, stem], dim=1)))
        out = out[..., :height, :width]
        return out.squeeze(1) if squeeze else out


def unet(
    *,
    in_channels: int = 1,
    base_channels: int = 64,
    channel_mults: Sequence[int] = (1, 2, 4),
    num_res_blocks: int = 1,
    attention_at: Sequence[int] = (),
    mid_attention: bool = True,
    cond_dim: int = 0,
    groups: int = 32,
    heads: int = 4,
    dropout: float = 0.0,
    patch_size: int = 1,
    stem_channels: int = 0,
) -> UNet:
    """Build the U-Net. ``channel_mults``: width of each level relative to ``base_channels`` (one
    downsampling between consecutive levels); ``attention_at``: level indices (0 = full resolution)
    whose blocks add self-attention; the middle block has attention when ``mid_attention``;
    ``patch_size`` > 1 folds p x p cells into channels before the first conv and unfolds them after the
    last one (pixel (un)shuffle, as in Imagen's efficient U-Net and patch-based diffusion): p**2 times
    less work at full resolution, which is what makes CPU training feasible. ``stem_channels`` > 0 adds
    a thin full-resolution conv before the folding and a head conv after the unfolding that also sees the
    stem's features: a cheap local path for the pixel-level denoising that folding otherwise starves."""
    if stem_channels < 0:
        raise EmoaugError("unet: stem_channels must be >= 0")
    if base_channels < 1 or not channel_mults or min(channel_mults) < 1 or num_res_blocks < 1 or patch_size < 1:
        raise EmoaugError("unet: base_channels, channel_mults, num_res_blocks and patch_size must be positive")
    bad = sorted(set(attention_at) - set(range(len(channel_mults))))
    if bad:
        raise EmoaugError(f"unet: attention_at levels {bad} do not exist (levels 0..{len(channel_mults) - 1})")
    return UNet(in_channels=in_channels, base_channels=base_channels, channel_mults=tuple(channel_mults),
                num_res_blocks=num_res_blocks, attention_at=tuple(attention_at), mid_attention=mid_attention,
                cond_dim=cond_dim, groups=groups, heads=heads, dropout=dropout, patch_size=patch_size,
                stem_channels=stem_channels)
