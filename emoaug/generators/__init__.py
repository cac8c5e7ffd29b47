"""Generator registry: built-ins, the ``emoaug.generators`` entry-point group and ``module:Class`` paths."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..errors import EmoaugError
from .base import Generator

ENTRY_POINT_GROUP = "emoaug.generators"
_BUILTIN: dict[str, type[Generator]] = {}


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator that adds a built-in generator under ``cls.name``."""
    _BUILTIN[cls.name] = cls
    return cls


def _plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_generators() -> list[str]:
    return sorted({*_BUILTIN, *_plugins()})


def _import_path(spec: str) -> type[Generator]:
    module_name, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise EmoaugError(f"--gen: cannot import {spec!r} ({err})") from None
    return cls


def get_generator_class(name: str) -> type[Generator]:
    """Resolve a built-in name, a plugin entry point or an import path ``pkg.module:Class``."""
    if name in _BUILTIN:
        cls = _BUILTIN[name]
    elif ":" in name:
        cls = _import_path(name)
    elif name in (plugins := _plugins()):
        cls = plugins[name].load()
    else:
        raise EmoaugError(f"--gen: unknown generator {name!r} (available: {', '.join(available_generators())})")
    if not (isinstance(cls, type) and issubclass(cls, Generator)):
        raise EmoaugError(f"--gen: {name!r} is not an emoaug.generators.Generator subclass")
    return cls


def make_generator(name: str, **config) -> Generator:
    return get_generator_class(name)(**config)


# Built-ins register themselves on import.
from . import cyclegan, dcgan, diffusion, none, specaugment, vae  # noqa: E402,F401
