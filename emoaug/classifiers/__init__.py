"""Fixed SER classifiers (CNN-BLSTM, ResNet-50) and the shared training loop.

The names are importable without torch (``available_classifiers`` answers instantly for the CLI); the
classes and functions load their modules on first use.
"""

from __future__ import annotations

import importlib
import sys

from ..registry import Registry

#: classifier name -> the function that builds its network (``builder(n_classes=..., n_mels=..., **arch_kwargs)``);
#: plugins register more under the "emoaug.classifiers" entry-point group
CLASSIFIERS = Registry("classifier", "--classifier", {"cnn_blstm": "emoaug.classifiers.cnn_blstm:cnn_blstm",
                                                     "resnet50": "emoaug.classifiers.resnet:resnet50"},
                       entry_point_group="emoaug.classifiers")

_LAZY = {
    "CNNBLSTM": ".cnn_blstm",
    "cnn_blstm": ".cnn_blstm",
    "MelResNet": ".resnet",
    "resnet50": ".resnet",
    **{name: ".training" for name in ("SERClassifier", "TrainConfig", "aggregate_items",
                                      "balanced_class_weights", "build_model", "deterministic_algorithms",
                                      "get_builder")},
}

__all__ = ["CLASSIFIERS", "available_classifiers", *_LAZY]


def available_classifiers() -> list[str]:
    return CLASSIFIERS.names()


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(_LAZY[name], __name__)
    _bind_loaded()
    return globals()[name]


def _bind_loaded() -> None:
    """Bind every lazy name whose module is loaded. Importing the submodule ``cnn_blstm`` makes the package
    attribute of that name the module; the builder function of the same name must win, as it always did."""
    for attr, module_name in _LAZY.items():
        module = sys.modules.get(__name__ + module_name)
        if module is not None and hasattr(module, attr):
            globals()[attr] = getattr(module, attr)
