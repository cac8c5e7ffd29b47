"""Training loop shared by every classifier: seeded, deterministic, early stopping on item-level UA."""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import ClassifierSettings
from ..devices import resolve_device
from ..errors import EmoaugError
from ..featureset import FeatureSet, StackedFeatureSet
from ..metrics import classification_metrics

CLASS_WEIGHTS = (None, "balanced")
LR_SCHEDULES = ("constant", "cosine")
INPUT_NORMS = ("none", "utterance", "utterance_mean", "bins")
PRECISIONS = ("fp32", "bf16")


def available_classifiers() -> list[str]:
    from . import CLASSIFIERS

    return CLASSIFIERS.names()


def get_builder(name: str) -> Callable[..., nn.Module]:
    from . import CLASSIFIERS

    return CLASSIFIERS.get(name)


def build_model(name: str, *, n_mels: int, n_classes: int, **arch_kwargs: Any) -> nn.Module:
    """Call the builder of ``name``; ``n_mels`` is passed only to builders that take it."""
    builder = get_builder(name)
    params = inspect.signature(builder).parameters
    unknown = sorted(set(arch_kwargs) - set(params))
    if unknown:
        raise EmoaugError(f"--classifier: {name!r} has no option(s) {unknown}")
    if "n_mels" in params:
        return builder(n_mels, n_classes, **arch_kwargs)
    return builder(n_classes, **arch_kwargs)


@dataclass
class TrainConfig:
    """Optimisation settings. ``patience`` counts epochs without a better validation UA (None = never stop early)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 10
    seed: int = 0
    device: str = "cpu"
    class_weight: str | None = None  # None or "balanced" (n / (n_classes * count), from the training rows)
    max_grad_norm: float | None = None  # gradient clipping by global norm when set
    lr_schedule: str = "constant"  # "constant" or "cosine" (annealed to 0 over ``epochs``, per batch)
    # "utterance": each row's mel bins are standardised over its own frames before the network (CMVN; no
    # statistics of other utterances, so nothing of the test speakers leaks in). "utterance_mean": only each
    # bin's mean over the row's own frames is removed (cepstral-mean-style normalisation: the spectral level
    # of speaker and channel goes, the dynamics within the utterance stay). "bins": each mel bin is
    # standardised with the mean and std of that bin over the training rows (fit() learns them, like a
    # scikit-learn StandardScaler in front of the network).
    input_norm: str = "none"
    # After early stopping on validation, train a fresh model (same seed) on train + validation rows for
    # the epoch count validation chose: the validation speakers then also teach the model.
    refit: bool = False
    label_smoothing: float = 0.0  # cross-entropy against (1 - e) one-hot + e uniform targets
    # "bf16": forward passes (training and inference) and the loss run under bfloat16 autocast: matrix products
    # and convolutions in bf16 (AMX / AVX-512 BF16 on CPUs that have them), weights, gradients and the optimiser
    # in fp32. Deterministic for a given setting, but other numbers than fp32.
    precision: str = "fp32"

    @classmethod
    def from_settings(cls, settings: ClassifierSettings, *, seed: int, device: str) -> TrainConfig:
        """The training half of a classifier spec, for one seed on one device."""
        return cls(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                   weight_decay=settings.weight_decay, patience=settings.patience, seed=seed, device=device,
                   lr_schedule=settings.lr_schedule, class_weight=settings.class_weight,
                   input_norm=settings.input_norm, precision=settings.precision)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise EmoaugError(f"train config: epochs and batch_size must be >= 1 (got {self.epochs}, {self.batch_size})")
        if self.class_weight not in CLASS_WEIGHTS:
            raise EmoaugError(f"train config: class_weight must be None or 'balanced', got {self.class_weight!r}")
        if self.patience is not None and self.patience < 1:
            raise EmoaugError(f"train config: patience must be >= 1 or None, got {self.patience}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise EmoaugError(f"train config: lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise EmoaugError(f"train config: label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.input_norm not in INPUT_NORMS:
            raise EmoaugError(f"train config: input_norm must be one of {INPUT_NORMS}, got {self.input_norm!r}")
        if self.precision not in PRECISIONS:
            raise EmoaugError(f"train config: precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def deterministic_algorithms(device: torch.device) -> Iterator[None]:
    """Enable ``torch.use_deterministic_algorithms`` inside the block and restore the caller's setting.

    On CPU it is strict. On CUDA some kernels used here (e.g. pooling backward) have no deterministic
    version, so it only warns there: GPU runs are seeded but not bit-reproducible.
    """
    was_enabled = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_enabled, warn_only=was_warn_only)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch for model init and dropout without leaving the caller's global RNG changed."""
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield


def balanced_class_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``n / (n_classes * count_c)`` as in scikit-learn; 0 for classes without training rows."""
    counts = torch.bincount(y, minlength=n_classes).double()
    weights = torch.zeros(n_classes, dtype=torch.float64)
    present = counts > 0
    weights[present] = len(y) / (int(present.sum()) * counts[present])
    return weights.float()


def aggregate_items(
    proba: np.ndarray, item_ids: Sequence[str], y: np.ndarray | torch.Tensor, labels: Sequence[str]
) -> pd.DataFrame:
    """Average row (segment) probabilities per item, in order of first appearance, and take the argmax.

    Returns columns ``item_id``, ``y_true``, ``y_pred`` (label strings) and ``prob_<label>``.
    """
    labels = list(labels)
    y = np.asarray(y)
    frame = pd.DataFrame(np.asarray(proba, dtype=np.float64), columns=[f"prob_{label}" for label in labels])
    frame.insert(0, "item_id", list(item_ids))
    frame.insert(1, "y_index", y)
    n_labels_per_item = frame.groupby("item_id", sort=False)["y_index"].nunique()
    if (n_labels_per_item > 1).any():
        bad = n_labels_per_item[n_labels_per_item > 1].index[0]
        raise ValueError(f"item {bad!r} has segments with different labels")
    items = frame.groupby("item_id", sort=False).mean().reset_index()
    prob_columns = [f"prob_{label}" for label in labels]
    predicted = items[prob_columns].to_numpy().argmax(axis=1)
    items.insert(1, "y_true", [labels[int(i)] for i in items.pop("y_index")])
    items.insert(2, "y_pred", [labels[int(i)] for i in predicted])
    return items


class SERClassifier:
    """A classifier architecture plus its training procedure (scikit-learn contract).

    ``__init__`` stores configuration only; ``fit`` builds and trains the model.
    """

    def __init__(self, arch: str, train_config: TrainConfig | None = None, **arch_kwargs: Any):
        self.arch = arch
        self.train_config = train_config if train_config is not None else TrainConfig()
        self.arch_kwargs = dict(arch_kwargs)
        self.model: nn.Module | None = None
        self.labels: tuple[str, ...] = ()
        self.n_mels: int | None = None
        self.history: list[dict[str, float]] = []
        self.best_epoch: int | None = None
        self.bin_stats: tuple[torch.Tensor, torch.Tensor] | None = None  # (mean, std) [n_mels, 1] for "bins"

    # ----------------------------------------------------------------- training
    def fit(self, train: FeatureSet | StackedFeatureSet, val: FeatureSet | None = None, *,
            progress: bool | None = None) -> SERClassifier:
        """Train on ``train``; with ``val``, keep the weights of the epoch with the best item-level UA.

        ``train`` may be a :class:`StackedFeatureSet` (real and generated rows read as one set without a copy).
        ``progress``: True shows a tqdm bar over epochs, None shows it only on a terminal.
        """
        cfg = self.train_config
        device = resolve_device(cfg.device)
        if len(train) == 0:
            raise EmoaugError("classifier: the training set is empty")
        if val is not None and val.labels != train.labels:
            raise ValueError("fit: train and val have different label sets")
        self.labels, self.n_mels = train.labels, train.n_mels
        self.history, self.best_epoch = [], None
        self.bin_stats = _bin_stats(_as_featureset(train).x) if cfg.input_norm == "bins" else None
        with deterministic_algorithms(device), _seeded(cfg.seed, device):
            self.model = build_model(self.arch, n_mels=train.n_mels, n_classes=len(train.labels), **self.arch_kwargs)
            self.model.to(device)
            self._train_epochs(train, val, device, progress)
        if cfg.refit and self.best_epoch is not None:
            with deterministic_algorithms(device), _seeded(cfg.seed, device):  # the same initial weights
                self.model = build_model(self.arch, n_mels=train.n_mels, n_classes=len(train.labels),
                                         **self.arch_kwargs)
                self.model.to(device)
                self._train_epochs(FeatureSet.concat([_as_featureset(train), val]), None, device, progress,
                                   stop_after=self.best_epoch)
        return self

    def _train_epochs(self, train: FeatureSet, val: FeatureSet | None, device: torch.device, progress: bool | None,
                      stop_after: int | None = None):
        """Train for ``epochs`` (or ``stop_after``, for a refit), keeping the weights of the best validation UA."""
        cfg = self.train_config
        optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # the schedule's horizon is always ``epochs``: a refit follows the very trajectory validation judged
        schedule = _lr_schedule(optimizer, cfg.lr_schedule, cfg.epochs * len(_batches(torch.arange(len(train)),
                                                                                         cfg.batch_size)))
        weight = balanced_class_weights(train.y, len(self.labels)).to(device) if cfg.class_weight else None
        loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        # shuffling has its own generator so it does not depend on how many numbers model init drew
        shuffler = torch.Generator().manual_seed(cfg.seed)
        best_ua, best_state, stale = -1.0, None, 0
        epochs = range(1, (stop_after or cfg.epochs) + 1)
        bar = tqdm(epochs, desc=f"train {self.arch}", unit="epoch", disable=_tqdm_disable(progress))
        for epoch in bar:
            started = time.perf_counter()
            train_loss = self._train_one_epoch(train, optimizer, schedule, loss_fn, shuffler, device)
            record = {"epoch": epoch, "train_loss": train_loss, "val_ua": float("nan"), "val_wa": float("nan"),
                      "refit": stop_after is not None}
            if val is not None and len(val):
                scores = classification_metrics(*self._item_predictions(val, device), list(self.labels))
                record["val_ua"], record["val_wa"] = scores["ua"], scores["wa"]
            record["seconds"] = time.perf_counter() - started  # training + validation of this epoch
            self.history.append(record)
            bar.set_postfix(loss=f"{train_loss:.3f}", val_ua=f"{record['val_ua']:.3f}")
            if val is None or not len(val):
                continue
            if record["val_ua"] > best_ua:  # strict: ties keep the earlier (shorter-trained) epoch
                best_ua, stale, self.best_epoch = record["val_ua"], 0, epoch
                best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            else:
                stale += 1
                if cfg.patience is not None and stale >= cfg.patience:
                    break
        bar.close()
        if best_state is not None:
            self.model.load_state_dict(best_state)

    def _train_one_epoch(self, train, optimizer, schedule, loss_fn, shuffler, device) -> float:
        cfg = self.train_config
        self.model.train()
        order = torch.randperm(len(train), generator=shuffler)
        total, seen = 0.0, 0
        for batch in _batches(order, cfg.batch_size):
            x = self._inputs(train.rows(batch).to(device, dtype=torch.float32, non_blocking=True))
            y = train.y[batch].to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with self._autocast(device):
                logits = self.model(x)
            loss = loss_fn(logits.float(), y)  # the loss and its gradient's start in fp32 whatever the precision
            loss.backward()
            if cfg.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
        return total / max(seen, 1)

    # ---------------------------------------------------------------- inference
    def _require_fitted(self, fs: FeatureSet) -> None:
        if self.model is None:
            raise EmoaugError(f"classifier {self.arch!r}: predict/embed called before fit()")
        if fs.labels != self.labels:
            raise ValueError(f"label set {fs.labels} differs from the one the classifier was fitted on {self.labels}")

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.train_config.input_norm == "utterance":
            return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-5)
        if self.train_config.input_norm == "utterance_mean":
            return x - x.mean(dim=-1, keepdim=True)
        if self.bin_stats is not None:
            mean, std = self.bin_stats
            return (x - mean.to(x.device)) / std.to(x.device)
        return x

    def _autocast(self, device: torch.device):
        if self.train_config.precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def _run_batched(self, fs: FeatureSet, device: torch.device, method: Callable[[torch.Tensor], torch.Tensor]):
        self.model.eval()
        batch_size = self.train_config.batch_size
        with self._autocast(device):
            outputs = [method(self._inputs(fs.block(i, i + batch_size).to(device))).float().cpu()
                       for i in range(0, len(fs), batch_size)]
        if not outputs:
            return None
        return torch.cat(outputs).numpy()

    def _proba(self, fs: FeatureSet, device: torch.device) -> np.ndarray:
        out = self._run_batched(fs, device, lambda x: torch.softmax(self.model(x).float(), dim=1))
        return out if out is not None else np.zeros((0, len(self.labels)), dtype=np.float32)

    def _item_predictions(self, fs: FeatureSet, device: torch.device) -> tuple[list[str], list[str]]:
        items = aggregate_items(self._proba(fs, device), fs.item_ids, fs.y, self.labels)
        return items["y_true"].tolist(), items["y_pred"].tolist()

    def predict_proba(self, fs: FeatureSet) -> np.ndarray:
        """Class probabilities per row, ``[N, n_classes]`` float32."""
        self._require_fitted(fs)
        device = resolve_device(self.train_config.device)
        with deterministic_algorithms(device):
            return self._proba(fs, device)

    def predict_items(self, fs: FeatureSet) -> pd.DataFrame:
        """One row per item: ``item_id``, ``y_true``, ``y_pred``, ``prob_<label>`` (segment average)."""
        return aggregate_items(self.predict_proba(fs), fs.item_ids, fs.y, self.labels)

    def embed(self, fs: FeatureSet) -> np.ndarray:
        """Penultimate-layer features per row, ``[N, D]``."""
        self._require_fitted(fs)
        device = resolve_device(self.train_config.device)
        with deterministic_algorithms(device):
            out = self._run_batched(fs, device, self.model.embed)
        return out if out is not None else np.zeros((0, self.model.embedding_dim), dtype=np.float32)

    # ------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted classifier (weights on CPU, config, labels, history)."""
        if self.model is None:
            raise EmoaugError(f"classifier {self.arch!r}: state_dict() called before fit()")
        return {
            "arch": self.arch,
            "arch_kwargs": dict(self.arch_kwargs),
            "train_config": self.train_config.to_dict(),
            "labels": list(self.labels),
            "n_mels": self.n_mels,
            "history": [dict(r) for r in self.history],
            "best_epoch": self.best_epoch,
            "bin_stats": None if self.bin_stats is None else [t.clone() for t in self.bin_stats],
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> SERClassifier:
        """Restore a classifier saved with ``state_dict`` (the architecture must match)."""
        if state["arch"] != self.arch or dict(state["arch_kwargs"]) != self.arch_kwargs:
            raise ValueError(f"checkpoint is {state['arch']} {state['arch_kwargs']}, not {self.arch} {self.arch_kwargs}")
        self.labels, self.n_mels = tuple(state["labels"]), state["n_mels"]
        self.history, self.best_epoch = [dict(r) for r in state["history"]], state["best_epoch"]
        stats = state.get("bin_stats")
        self.bin_stats = None if stats is None else (stats[0], stats[1])
        self.model = build_model(self.arch, n_mels=self.n_mels, n_classes=len(self.labels), **self.arch_kwargs)
        self.model.load_state_dict(state["model"])
        self.model.to(resolve_device(self.train_config.device))
        return self

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: str = "cpu") -> SERClassifier:
        config = TrainConfig(**{**state["train_config"], "device": device})
        return cls(state["arch"], config, **state["arch_kwargs"]).load_state_dict(state)


def _as_featureset(train: FeatureSet | StackedFeatureSet) -> FeatureSet:
    return train.materialise() if isinstance(train, StackedFeatureSet) else train


def _bin_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of each mel bin over every frame of every training row, ``[n_mels, 1]`` each."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    return flat.mean(dim=1, keepdim=True).float(), (flat.std(dim=1, keepdim=True) + 1e-5).float()


def _lr_schedule(optimizer: torch.optim.Optimizer, kind: str, total_steps: int):
    if kind == "constant":
        return None
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1))))


def _batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    batches = list(torch.split(order, batch_size))
    # BatchNorm cannot normalise a batch of one row once the spatial axes are pooled away; a lone
    # trailing row joins the previous batch (the shuffle moves it to another batch next epoch).
    if len(batches) > 1 and len(batches[-1]) == 1:
        lone = batches.pop()
        batches[-1] = torch.cat([batches[-1], lone])
    return batches


def _tqdm_disable(progress: bool | None) -> bool | None:
    # tqdm's disable=None means "off unless the stream is a terminal"
    return None if progress is None else not progress
