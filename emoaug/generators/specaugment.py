"""SpecAugment (Park et al., Interspeech 2019) on normalised log-mel rows, in plain torch.

Only frequency and time masking; time warping is left out (Park et al. found it the least useful
part, and it needs an interpolation that would blur the comparison with the other generators).

Mask widths follow the paper's policies, scaled to this front end:

* frequency: ``freq_masks`` masks (default 2, as in LibriSpeech-Double) of width ``f ~ U{0..F}`` with
  ``F = min(max_freq_width, floor(max_freq_fraction * n_mels))``. ``max_freq_width=27`` is the
  LibriSpeech value for 80 mel bins; ``max_freq_fraction = 27/80`` keeps that *relative* width on
  other mel resolutions (27 of 80 bins, 21 of 64, 13 of 40; 27 stays the cap for 128 bins).
* time: ``time_masks`` masks (default 2) of width ``t ~ U{0..T}`` with
  ``T = min(max_time_width, floor(max_time_fraction * n_frames))``: 40 frames as in the
  Switchboard-mild policy, never more than ``p = 0.2`` of the row (the paper's upper bound).

Each mask's start is uniform over the positions where it fits. Masked cells get ``mask_value``:
``"mean"`` (default) = the mean of the source row itself, which is what Park et al. use and is about
0 for normalised features without assuming a particular normaliser; ``"zero"`` or a number fills a
constant.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import EmoaugError
from ..featureset import FeatureSet
from .base import Generator
from .options import option


@dataclass(frozen=True)
class SpecAugmentConfig:
    """Park et al.'s masking policies scaled to this front end (module docstring); the same under every profile."""

    freq_masks: int = option(2, "frequency masks per row (LibriSpeech-Double: 2)", ge=0)
    max_freq_width: int = option(27, "widest frequency mask in mel bins (LibriSpeech: 27 of 80)", ge=0)
    max_freq_fraction: float = option(27 / 80, "widest frequency mask as a fraction of the mel bins", ge=0, le=1)
    time_masks: int = option(2, "time masks per row", ge=0)
    max_time_width: int = option(40, "widest time mask in frames (Switchboard-mild: 40)", ge=0)
    max_time_fraction: float = option(0.2, "widest time mask as a fraction of the frames (Park et al.'s p)", ge=0,
                                      le=1)
    mask_value: str | float = option("mean", "what masked cells get: the row's own mean, zero, or a number",
                                     choices=("mean", "zero"))


DEFAULTS = SpecAugmentConfig()


@dataclass(frozen=True)
class MaskDraw:
    """Masks for ``N`` rows: start and width of each frequency / time mask, shapes ``[N, n_masks]``."""

    freq_start: np.ndarray
    freq_width: np.ndarray
    time_start: np.ndarray
    time_width: np.ndarray


def mask_limits(
    n_mels: int,
    n_frames: int,
    *,
    max_freq_width: int,
    max_freq_fraction: float,
    max_time_width: int,
    max_time_fraction: float,
) -> tuple[int, int]:
    """Largest allowed frequency and time mask width (F, T) for a row of this shape."""
    freq = min(max_freq_width, int(np.floor(max_freq_fraction * n_mels)))
    time = min(max_time_width, int(np.floor(max_time_fraction * n_frames)))
    return max(freq, 0), max(time, 0)


def sample_masks(
    n_rows: int,
    n_mels: int,
    n_frames: int,
    rng: np.random.Generator,
    *,
    freq_masks: int = DEFAULTS.freq_masks,
    max_freq_width: int = DEFAULTS.max_freq_width,
    max_freq_fraction: float = DEFAULTS.max_freq_fraction,
    time_masks: int = DEFAULTS.time_masks,
    max_time_width: int = DEFAULTS.max_time_width,
    max_time_fraction: float = DEFAULTS.max_time_fraction,
) -> MaskDraw:
    """Draw every row's masks from ``rng`` (widths first, then starts)."""
    freq_limit, time_limit = mask_limits(
        n_mels,
        n_frames,
        max_freq_width=max_freq_width,
        max_freq_fraction=max_freq_fraction,
        max_time_width=max_time_width,
        max_time_fraction=max_time_fraction,
    )
    freq_width = rng.integers(0, freq_limit + 1, size=(n_rows, freq_masks))
    time_width = rng.integers(0, time_limit + 1, size=(n_rows, time_masks))
    # start ~ U{0 .. size - width}: the mask always lies inside the row.
    freq_start = np.floor(rng.random((n_rows, freq_masks)) * (n_mels - freq_width + 1)).astype(np.int64)
    time_start = np.floor(rng.random((n_rows, time_masks)) * (n_frames - time_width + 1)).astype(np.int64)
    return MaskDraw(freq_start, freq_width, time_start, time_width)


def _band(start: np.ndarray, width: np.ndarray, size: int) -> torch.Tensor:
    """``[N, size]`` bool: True inside any of each row's bands ``[start, start + width)``."""
    position = torch.arange(size).view(1, 1, size)
    lo = torch.as_tensor(start, dtype=torch.int64).unsqueeze(-1)
    hi = lo + torch.as_tensor(width, dtype=torch.int64).unsqueeze(-1)
    return ((position >= lo) & (position < hi)).any(dim=1)


def mask_grid(draw: MaskDraw, n_mels: int, n_frames: int) -> torch.Tensor:
    """``[N, n_mels, n_frames]`` bool of the cells the draw masks."""
    freq = _band(draw.freq_start, draw.freq_width, n_mels)
    time = _band(draw.time_start, draw.time_width, n_frames)
    return freq.unsqueeze(2) | time.unsqueeze(1)


def _fill_values(x: torch.Tensor, mask_value: str | float) -> torch.Tensor:
    """One fill value per row, shape ``[N, 1, 1]``."""
    if mask_value == "mean":
        return x.mean(dim=(1, 2), keepdim=True)
    value = 0.0 if mask_value == "zero" else float(mask_value)
    return torch.full((x.shape[0], 1, 1), value, dtype=x.dtype, device=x.device)


def spec_augment(
    x: torch.Tensor, rng: np.random.Generator, *, mask_value: str | float = DEFAULTS.mask_value,
    out: torch.Tensor | None = None, **policy
) -> torch.Tensor:
    """Masked copy of ``x`` (``[n_mels, n_frames]`` or ``[N, n_mels, n_frames]``, independent masks per row).

    ``policy`` takes the ``sample_masks`` options; ``x`` is never modified. ``out`` (``[N, n_mels, n_frames]``
    float32): written in place of a new tensor, so a caller filling a larger set holds no copy of these rows.
    """
    _check_mask_value(mask_value)
    single = x.ndim == 2
    batch = x.unsqueeze(0) if single else x
    if batch.ndim != 3:
        raise ValueError(f"spec_augment: x must be [M, T] or [N, M, T], got {tuple(x.shape)}")
    n_rows, n_mels, n_frames = batch.shape
    draw = sample_masks(n_rows, n_mels, n_frames, rng, **policy)
    masked = mask_grid(draw, n_mels, n_frames).to(batch.device)
    if out is not None and not single:
        return torch.where(masked, _fill_values(batch, mask_value), batch, out=out)
    masked_rows = torch.where(masked, _fill_values(batch, mask_value), batch)
    return masked_rows[0] if single else masked_rows


def _check_mask_value(mask_value) -> None:
    if mask_value in ("mean", "zero"):
        return
    if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
        raise EmoaugError(f"generator 'specaugment': mask_value must be 'mean', 'zero' or a number, got {mask_value!r}")


class SpecAugment(Generator):
    """New rows = training rows of the requested class with random frequency and time masks."""

    name = "specaugment"
    Config = SpecAugmentConfig
    transforms_rows = True  # masking keeps the emotion: the condition is ignored

    def __init__(self, **config):
        super().__init__(**config)
        self._train: FeatureSet | None = None
        self._x = torch.empty(0)
        self._y = torch.empty(0, dtype=torch.int64)
        self._item_ids: list[str] = []
        self._speakers: list[str] = []

    def _fit(self, train: FeatureSet) -> None:
        # A reference, not a copy (training sets can be large); generate() only reads it, a class's rows at a
        # time through rows() (from the fold's file when the worker keeps its rows there)
        self._train = train
        self._x = train.x
        self._y = train.y
        self._item_ids = list(train.item_ids)
        self._speakers = list(train.speakers)

    def _generate(self, n_per_class: dict[str, int], seed: int) -> FeatureSet:
        policy = {k: v for k, v in self.config.items() if k != "mask_value"}
        counts = {label: _check_count(label, n_per_class.get(label, 0)) for label in self.labels}
        # one preallocated output filled class by class: memory holds the generated set once (and one class's
        # temporaries), not the classes' parts beside their concatenation
        x = torch.empty((sum(counts.values()), *self._x.shape[1:]), dtype=torch.float32)
        ys, sources = [], []
        for label_index, (label, count) in enumerate(counts.items()):
            if count == 0:
                continue
            # One stream per (seed, class): a class's rows do not depend on the other classes' counts.
            rng = np.random.default_rng([seed, label_index])
            rows = self._pick_sources(label, label_index, count, rng)
            start = len(sources)
            spec_augment(self._train.rows(torch.as_tensor(rows)), rng, mask_value=self.config["mask_value"],
                         out=x[start:start + count], **policy)
            ys.append(torch.full((count,), label_index, dtype=torch.int64))
            sources.extend(rows.tolist())
        return self._featureset(x, ys, sources)

    def _transform(self, rows: FeatureSet, conditions: torch.Tensor, seed: int) -> torch.Tensor:
        policy = {k: v for k, v in self.config.items() if k != "mask_value"}
        rng = np.random.default_rng([seed, len(self.labels)])  # a stream apart from _generate's per-class ones
        return spec_augment(rows.x, rng, mask_value=self.config["mask_value"], **policy)

    def _pick_sources(self, label: str, label_index: int, count: int, rng: np.random.Generator) -> np.ndarray:
        """Balanced cycling: every training row of the class is used once before any is used twice."""
        rows = torch.nonzero(self._y == label_index).flatten().cpu().numpy()
        if len(rows) == 0:
            raise EmoaugError(f"generator 'specaugment': no training rows of class {label!r} to augment")
        n_cycles = -(-count // len(rows))
        return np.concatenate([rng.permutation(rows) for _ in range(n_cycles)])[:count]

    def _featureset(self, x: torch.Tensor, ys: list[torch.Tensor], sources: list[int]) -> FeatureSet:
        if not ys:
            n_mels, n_frames = self._x.shape[1:]
            return FeatureSet(
                x=torch.zeros((0, n_mels, n_frames), dtype=torch.float32),
                y=torch.zeros(0, dtype=torch.int64),
                labels=self.labels,
                item_ids=[],
            )
        uses: Counter[str] = Counter()
        item_ids = []
        for row in sources:
            source_id = self._item_ids[row]
            item_ids.append(f"gen:{self.name}:{source_id}:{uses[source_id]}")  # k = k-th copy of that item
            uses[source_id] += 1
        return FeatureSet(
            x=x,
            y=torch.cat(ys),
            labels=self.labels,
            item_ids=item_ids,
            speakers=[self._speakers[row] for row in sources] if self._speakers else [],
        )


def _check_count(label: str, count) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise EmoaugError(f"generator 'specaugment': n_per_class[{label!r}] must be an integer >= 0, got {count!r}")
    return int(count)

