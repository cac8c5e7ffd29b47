"""emoaug: an open benchmark harness for generative data augmentation in speech emotion recognition.

``emoaug.run(...)`` runs a benchmark from Python and ``emoaug.load_run(path)`` reads a finished run folder
(:mod:`emoaug.api`); both load their dependencies on first use, so ``import emoaug`` stays instant.
"""

__version__ = "0.1.0"

__all__ = ["load_run", "run"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'emoaug' has no attribute {name!r}")
