"""Fixed SER classifiers (CNN-BLSTM, ResNet-50) and the shared training loop."""

from __future__ import annotations

from .cnn_blstm import CNNBLSTM, cnn_blstm
from .resnet import MelResNet, resnet50
from .training import (
    BUILDERS,
    SERClassifier,
    TrainConfig,
    aggregate_items,
    available_classifiers,
    balanced_class_weights,
    build_model,
    deterministic_algorithms,
    get_builder,
)

__all__ = [
    "BUILDERS",
    "CNNBLSTM",
    "MelResNet",
    "SERClassifier",
    "TrainConfig",
    "aggregate_items",
    "available_classifiers",
    "balanced_class_weights",
    "build_model",
    "cnn_blstm",
    "deterministic_algorithms",
    "get_builder",
    "resnet50",
]
