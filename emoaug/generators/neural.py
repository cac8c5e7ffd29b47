"""Shared machinery of trainable (neural) generators: seeding, device, checkpoint state, mini-batches.

A ``NeuralGenerator`` splits fitting in two so that a checkpoint can stand in for training:

* ``_setup(train)`` builds the networks from the data's shape and labels and keeps whatever training
  rows generation needs later (e.g. neutral items to convert, items to enhance);
* ``_train(train)`` runs the optimisation.

``fit(train)`` = setup + train; ``restore(train, state)`` = setup + load the saved weights. The runner
keys checkpoints by corpus, preset, fold, seed, the hash of the training ids and the generator config.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..featureset import FeatureSet
from .base import Generator
from .options import option


@dataclass(frozen=True)
class NeuralConfig:
    """Options every trainable generator has; its own ``Config`` subclasses this."""

    seed: int = option(0, "seed of the weights and of every training draw (each cell sets its own)")


class NeuralGenerator(Generator):
    """Base of generators with learned weights (option ``seed``; sizes come with each profile)."""

    Config = NeuralConfig
    trainable: ClassVar[bool] = True
    accepts_seed: ClassVar[bool] = True

    def __init__(self, **config: Any):
        super().__init__(**config)
        self.seed = self.options.seed
        self.device = torch.device("cpu")
        self.history: list[dict[str, float]] = []

    def to(self, device: str | torch.device) -> NeuralGenerator:
        """Run on ``device`` (not part of the config: results must not depend on it beyond float noise)."""
        self.device = torch.device(device)
        for module in self.networks().values():
            module.to(self.device)
        return self

    # ------------------------------------------------------------------ to implement
    def networks(self) -> dict[str, nn.Module]:
        """The modules whose weights make up a checkpoint (built by ``_setup``)."""
        raise NotImplementedError

    def _setup(self, train: FeatureSet) -> None:
        raise NotImplementedError

    def _train(self, train: FeatureSet) -> None:
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """Tensors / plain values besides network weights that generation needs (e.g. class embeddings)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # ------------------------------------------------------------------ fit / restore
    def _fit(self, train: FeatureSet) -> None:
        with seeded(self.seed):
            self._setup(train)
            self.to(self.device)
            self._train(train)

    def restore(self, train: FeatureSet, state: dict[str, Any]) -> NeuralGenerator:
        """Rebuild from ``train`` (shapes, rows kept for generation) and load trained weights."""
        self._remember(train)
        with seeded(self.seed):
            self._setup(train)
        self.load_state_dict(state)
        self.to(self.device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and primitives only, so ``torch.load(weights_only=True)`` can read it."""
        return {
            "networks": {name: module.state_dict() for name, module in self.networks().items()},
            "extra": self.extra_state(),
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, module in self.networks().items():
            module.load_state_dict(state["networks"][name])
        self.load_extra_state(state.get("extra", {}))
        self.history = list(state.get("history", []))

    # ------------------------------------------------------------------ helpers for subclasses
    def minibatches(self, n_rows: int, batch_size: int, rng: torch.Generator) -> Iterator[torch.Tensor]:
        """Shuffled index batches covering all rows once; a lone last row joins the previous batch."""
        order = torch.randperm(n_rows, generator=rng)
        starts = list(range(0, n_rows, batch_size))
        if len(starts) > 1 and n_rows - starts[-1] == 1:
            starts.pop()
        for k, start in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else n_rows
            yield order[start:end]

    def torch_rng(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)

    def numpy_rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, seed])

    def sample_rows_per_class(self, train_y: torch.Tensor, n_per_class: dict[str, int],
                              rng: np.random.Generator) -> list[int]:
        """Indices of source rows, cycling through each class's rows before repeating any."""
        picked: list[int] = []
        for label, count in n_per_class.items():
            rows = np.flatnonzero(train_y.numpy() == self.labels.index(label))
            if count <= 0 or rows.size == 0:
                continue
            reps = -(-count // rows.size)
            order = np.concatenate([rng.permutation(rows) for _ in range(reps)])[:count]
            picked.extend(int(i) for i in order)
        return picked


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global RNG inside the block and restore the caller's state afterwards (the CUDA
    generators' too: ``manual_seed`` seeds them as well)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def labels_tensor(labels: tuple[str, ...], n_per_class: dict[str, int]) -> torch.Tensor:
    """Class indices, ``n_per_class[label]`` times each, in label order."""
    return torch.tensor([labels.index(label) for label, n in n_per_class.items() for _ in range(n)],
                        dtype=torch.int64)


def generated_featureset(x: torch.Tensor, y: torch.Tensor, labels: tuple[str, ...], name: str,
                         sources: list[str] | None = None, speakers: list[str] | None = None) -> FeatureSet:
    """Wrap generated rows; ids ``gen:<name>:<k>`` or ``gen:<name>:<source id>:<k>`` keep provenance."""
    if sources is None:
        ids = [f"gen:{name}:{k}" for k in range(len(y))]
    else:
        ids = [f"gen:{name}:{src}:{k}" for k, src in enumerate(sources)]
    return FeatureSet(x=x.detach().to("cpu", torch.float32), y=y.to("cpu"), labels=labels, item_ids=ids,
                      speakers=list(speakers) if speakers else [])
