"""Generator registry: built-ins, the ``emoaug.generators`` entry-point group and ``module:Class`` paths.

Names are known without importing anything heavy: built-ins by module path, plugins by entry point. A
generator's module (and torch) is imported only when the generator is asked for, so listing and option
errors answer instantly.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from ..errors import EmoaugError

if TYPE_CHECKING:
    from .base import Generator

ENTRY_POINT_GROUP = "emoaug.generators"
#: built-in name -> module that defines (and registers) it
BUILTIN_MODULES = {
    "none": "emoaug.generators.none",
    "specaugment": "emoaug.generators.specaugment",
    "vae": "emoaug.generators.vae",
    "dcgan": "emoaug.generators.dcgan",
    "cyclegan": "emoaug.generators.cyclegan",
    "diffusion": "emoaug.generators.diffusion",
    # waveform-domain baselines (audiomentations)
    "speed": "emoaug.generators.waveform",
    "pitch": "emoaug.generators.waveform",
    "noise": "emoaug.generators.waveform",
    "wavaug": "emoaug.generators.waveform",
}
_BUILTIN: dict[str, type[Generator]] = {}
#: names a generator may not take: the classic reference row (emoaug.classifiers.classic.REFERENCE_NAME)
RESERVED_NAMES = ("classic",)


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator that adds a built-in generator under ``cls.name``."""
    _BUILTIN[cls.name] = cls
    return cls


def _plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_generators() -> list[str]:
    return sorted({*BUILTIN_MODULES, *_plugins()} - set(RESERVED_NAMES))


def require_known_name(name: str) -> None:
    """A one-line error unless ``name`` is a built-in, a plugin or an import path (nothing is imported)."""
    if name in RESERVED_NAMES:
        raise EmoaugError(f"--gen: {name!r} names the real-only reference row (see --reference), not a generator; "
                          "a plugin must register under another name")
    if not (name in BUILTIN_MODULES or ":" in name or name in _plugins()):
        raise EmoaugError(f"--gen: unknown generator {name!r} (available: {', '.join(available_generators())})")


def _import_path(spec: str) -> type[Generator]:
    module_name, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise EmoaugError(f"--gen: cannot import {spec!r} ({err})") from None
    return cls


def get_generator_class(name: str) -> type[Generator]:
    """Resolve a built-in name, a plugin entry point or an import path ``pkg.module:Class``."""
    from .base import Generator

    require_known_name(name)
    if name in BUILTIN_MODULES:
        if name not in _BUILTIN:
            importlib.import_module(BUILTIN_MODULES[name])
        cls = _BUILTIN[name]
    elif ":" in name:
        cls = _import_path(name)
    else:
        cls = _plugins()[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Generator)):
        raise EmoaugError(f"--gen: {name!r} is not an emoaug.generators.Generator subclass")
    return cls


def make_generator(name: str, **config) -> Generator:
    return get_generator_class(name)(**config)
