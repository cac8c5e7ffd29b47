"""The tensor container that flows from the front end to generators and classifiers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class FeatureSet:
    """Normalised log-mel rows with labels.

    One row per segment: an utterance cut into several fixed-length segments gives several rows
    sharing one ``item_ids`` entry. Generated rows carry ids that start with ``"gen:"``.
    """

    x: torch.Tensor  # [N, n_mels, n_frames] float32
    y: torch.Tensor  # [N] int64, index into ``labels``
    labels: tuple[str, ...]
    item_ids: list[str]
    speakers: list[str] = field(default_factory=list)  # empty for generated rows without a speaker

    def __post_init__(self):
        if self.x.ndim != 3:
            raise ValueError(f"FeatureSet.x must be [N, n_mels, n_frames], got {tuple(self.x.shape)}")
        n = self.x.shape[0]
        if self.y.shape != (n,) or len(self.item_ids) != n:
            raise ValueError("FeatureSet: x, y and item_ids must have the same length")
        if self.speakers and len(self.speakers) != n:
            raise ValueError("FeatureSet: speakers must be empty or one per row")
        self.labels = tuple(self.labels)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_mels(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_frames(self) -> int:
        return int(self.x.shape[2])

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """``x[index]``: what a training loop reads per batch (:class:`StackedFeatureSet` reads it from parts)."""
        return self.x[index]

    def label_names(self) -> list[str]:
        return [self.labels[i] for i in self.y.tolist()]

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y.numpy(), minlength=len(self.labels))
        return {label: int(c) for label, c in zip(self.labels, counts)}

    def subset(self, index: Sequence[int] | np.ndarray | torch.Tensor) -> FeatureSet:
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        pick = idx.tolist()
        return FeatureSet(
            x=self.x[idx],
            y=self.y[idx],
            labels=self.labels,
            item_ids=[self.item_ids[i] for i in pick],
            speakers=[self.speakers[i] for i in pick] if self.speakers else [],
        )

    @staticmethod
    def concat(parts: Sequence[FeatureSet]) -> FeatureSet:
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError("FeatureSet.concat needs at least one non-empty part")
        labels = parts[0].labels
        if any(p.labels != labels for p in parts):
            raise ValueError("FeatureSet.concat: parts have different label sets")
        keep_speakers = all(p.speakers for p in parts)
        return FeatureSet(
            x=torch.cat([p.x for p in parts]),
            y=torch.cat([p.y for p in parts]),
            labels=labels,
            item_ids=[i for p in parts for i in p.item_ids],
            speakers=[s for p in parts for s in p.speakers] if keep_speakers else [],
        )


class StackedFeatureSet:
    """Several FeatureSets read as their concatenation by a training loop, without copying their rows into one
    tensor: real and generated rows of a fold are each already in memory, and their concatenation would hold
    them twice. ``rows(index)`` equals ``FeatureSet.concat(parts).x[index]`` exactly."""

    def __init__(self, parts: Sequence[FeatureSet]):
        self.parts = [p for p in parts if len(p)]
        if not self.parts:
            raise ValueError("StackedFeatureSet needs at least one non-empty part")
        self.labels = self.parts[0].labels
        if any(p.labels != self.labels for p in self.parts) or len({p.x.shape[1:] for p in self.parts}) != 1:
            raise ValueError("StackedFeatureSet: parts have different label sets or row shapes")
        self.y = torch.cat([p.y for p in self.parts])
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_mels(self) -> int:
        return self.parts[0].n_mels

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(index, dtype=torch.int64)
        out = torch.empty((len(index), *self.parts[0].x.shape[1:]), dtype=self.parts[0].x.dtype)
        for part, start, stop in zip(self.parts, self.offsets[:-1], self.offsets[1:]):
            mine = (index >= int(start)) & (index < int(stop))
            if mine.any():
                out[mine] = part.x[index[mine] - int(start)]
        return out

    def materialise(self) -> FeatureSet:
        return FeatureSet.concat(self.parts)
