"""The real-only baseline: a generator that adds nothing."""

from __future__ import annotations

import torch

from ..featureset import FeatureSet
from .base import Generator


class NoneGenerator(Generator):
    """Adds no rows, so "augmented" training equals the real training fold (``FeatureSet.concat`` drops empties)."""

    name = "none"
    produces_nothing = True

    def __init__(self, **config):
        super().__init__(**config)  # no Config: any option is refused there
        self.shape: tuple[int, int] = (0, 0)  # (n_mels, n_frames) of the training rows

    def _fit(self, train: FeatureSet) -> None:
        self.shape = (train.n_mels, train.n_frames)

    def _generate(self, n_per_class: dict[str, int], seed: int) -> FeatureSet:
        n_mels, n_frames = self.shape
        return FeatureSet(
            x=torch.zeros((0, n_mels, n_frames), dtype=torch.float32),
            y=torch.zeros(0, dtype=torch.int64),
            labels=self.labels,
            item_ids=[],
            speakers=[],
        )
