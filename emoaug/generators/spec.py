"""A generator resolved once, in the plan: what a cell needs to build it and what its key hashes.

A :class:`GeneratorSpec` names the class by its import path and carries the class's ``version`` and the
fully resolved options, so a worker builds the generator from the spec alone: no registry lookup, no run
config. Equal identities mean the same code with the same options, which is what cell and checkpoint keys
rest on.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import EmoaugError
from .options import keyed_dict

if TYPE_CHECKING:
    from .base import Generator


@dataclass(frozen=True)
class GeneratorSpec:
    name: str  # as asked for on the command line (a built-in, an entry point or a module:Class path)
    class_path: str  # module:qualname of the class that computes it
    version: str
    config: dict[str, Any] = field(default_factory=dict)  # every option, resolved (the cell's seed included)
    #: option names that change how it computes (memory, batching), never what: recorded, not keyed
    execution_keys: tuple[str, ...] = ()
    trainable: bool = False
    produces_nothing: bool = False
    #: options left out of the key because they hold a default that computes what earlier cells did
    unkeyed_keys: tuple[str, ...] = ()

    @classmethod
    def resolve(cls, name: str, config: dict[str, Any], seed: int | None = None) -> GeneratorSpec:
        """``config``: the run's resolved options of ``name`` (emoaug.bench.resolve); ``seed``: the cell's,
        added for generators that take one."""
        from . import get_generator_class

        generator = get_generator_class(name)
        options = dict(config)
        if generator.accepts_seed and seed is not None:
            options["seed"] = seed
        # options added after cells were stored stay out of keys while they hold the default that computes
        # what those cells did (emoaug.generators.options.keyed_dict)
        unkeyed = tuple(key for key in options if key not in keyed_dict(generator.Config, options))
        return cls(name=name, class_path=f"{generator.__module__}:{generator.__qualname__}",
                   version=str(generator.version), config=options,
                   execution_keys=tuple(generator.execution_config), trainable=bool(generator.trainable),
                   produces_nothing=bool(generator.produces_nothing), unkeyed_keys=unkeyed)

    def identity(self) -> dict[str, Any]:
        """Name, code (class path and version) and options less the execution ones and those left out of keys
        at their default: what makes two generators the same."""
        left_out = {*self.execution_keys, *self.unkeyed_keys}
        what = {key: value for key, value in self.config.items() if key not in left_out}
        return {"name": self.name, "class": self.class_path, "version": self.version, "config": what}

    def generator_class(self) -> type[Generator]:
        module_name, _, qualname = self.class_path.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as err:
            raise EmoaugError(f"generator {self.name!r}: cannot import {self.class_path} ({err})") from None
        return found

    def build(self) -> Generator:
        """A new, unfitted generator with exactly these options."""
        return self.generator_class()(**self.config)
