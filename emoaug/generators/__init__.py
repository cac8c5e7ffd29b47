"""Generator registry: built-ins, the ``emoaug.generators`` entry-point group and ``module:Class`` paths.

Names are known without importing anything heavy (:class:`emoaug.registry.Registry`): built-ins by class path,
plugins by entry point. A generator's module (and torch) is imported only when the generator is asked for, so
listing and option errors answer instantly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import EmoaugError
from ..registry import Registry, import_path

if TYPE_CHECKING:
    from .base import Generator

ENTRY_POINT_GROUP = "emoaug.generators"
#: built-in name -> the class that computes it (imported on first use)
BUILTIN_CLASSES = {
    "none": "emoaug.generators.none:NoneGenerator",
    "specaugment": "emoaug.generators.specaugment:SpecAugment",
    "vae": "emoaug.generators.vae:ConditionalVAEGenerator",
    "dcgan": "emoaug.generators.dcgan:ConditionalDCGAN",
    "cyclegan": "emoaug.generators.cyclegan:CycleGAN",
    "diffusion": "emoaug.generators.diffusion:DiffusionGenerator",
    # waveform-domain baselines (audiomentations)
    "speed": "emoaug.generators.waveform:SpeedPerturbation",
    "pitch": "emoaug.generators.waveform:PitchShift",
    "noise": "emoaug.generators.waveform:AddedNoise",
    "wavaug": "emoaug.generators.waveform:WaveformChain",
}
#: names a generator may not take: the classic reference row (emoaug.classifiers.classic.REFERENCE_NAME)
RESERVED_NAMES = ("classic",)
GENERATORS = Registry("generator", "--gen", BUILTIN_CLASSES, entry_point_group=ENTRY_POINT_GROUP,
                      reserved=RESERVED_NAMES)


def available_generators() -> list[str]:
    return GENERATORS.names()


def require_known_name(name: str) -> None:
    """A one-line error unless ``name`` is a built-in, a plugin or an import path (nothing is imported)."""
    if name in RESERVED_NAMES:
        raise EmoaugError(f"--gen: {name!r} names the real-only reference row (see --reference), not a generator; "
                          "a plugin must register under another name")
    if ":" not in name:
        GENERATORS.require(name)


def get_generator_class(name: str) -> type[Generator]:
    """Resolve a built-in name, a plugin entry point or an import path ``pkg.module:Class``."""
    from .base import Generator

    require_known_name(name)
    if ":" in name:
        try:
            cls = import_path(name)
        except (ImportError, AttributeError) as err:
            raise EmoaugError(f"--gen: cannot import {name!r} ({err})") from None
    else:
        cls = GENERATORS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Generator)):
        raise EmoaugError(f"--gen: {name!r} is not an emoaug.generators.Generator subclass")
    return cls


def make_generator(name: str, **config) -> Generator:
    return get_generator_class(name)(**config)
