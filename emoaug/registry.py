"""One registry for every kind of named component: generators, corpora, classifiers and log-mel presets.

A :class:`Registry` knows its built-ins by import path (``"package.module:Attribute"``, or a module), so a name
is known without importing anything heavy (listing and option errors stay instant); plugins come from the
kind's entry-point group, e.g. in a package's ``pyproject.toml``::

    [project.entry-points."emoaug.corpora"]
    mycorpus = "mypkg.corpus"          # a module with the corpus protocol (emoaug.datasets.base)

An unknown name is one line naming the option and what is available.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from .errors import EmoaugError


class Registry:
    """Names of one kind -> objects, loaded on first use.

    ``builtins``: name -> an import path (``"module"`` or ``"module:attr"``) or the object itself;
    ``entry_point_group``: where plugins register; ``reserved``: names nothing may take."""

    def __init__(self, kind: str, option: str, builtins: Mapping[str, Any], *,
                 entry_point_group: str | None = None, reserved: Iterable[str] = ()):
        self.kind, self.option, self.entry_point_group = kind, option, entry_point_group
        self._builtins = dict(builtins)
        self.reserved = tuple(reserved)

    def add(self, name: str, target: Any) -> None:
        """Register ``name`` at run time (an import path or the object), e.g. a script's own variant."""
        self._builtins[name] = target

    def builtins(self) -> list[str]:
        return list(self._builtins)

    def plugins(self) -> dict[str, Any]:
        if self.entry_point_group is None:
            return {}
        return {ep.name: ep for ep in entry_points(group=self.entry_point_group)}

    def names(self) -> list[str]:
        return sorted({*self._builtins, *self.plugins()} - set(self.reserved))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name not in self.reserved and (name in self._builtins
                                                                      or name in self.plugins())

    def require(self, name: str) -> None:
        """A one-line error unless ``name`` is known (nothing is imported)."""
        if name not in self:
            raise EmoaugError(f"{self.option}: unknown {self.kind} {name!r} (available: {', '.join(self.names())})")

    def get(self, name: str) -> Any:
        """The object registered as ``name``, imported when asked for (Python keeps imported modules)."""
        self.require(name)
        target = self._builtins.get(name)
        if target is None:
            try:
                return self.plugins()[name].load()
            except Exception as err:  # noqa: BLE001 -- a broken plugin is one line, whatever it raised
                raise EmoaugError(f"{self.option}: {self.kind} {name!r} (a plugin) cannot be loaded ({err})") from None
        if not isinstance(target, str):
            return target
        try:
            return import_path(target)
        except (ImportError, AttributeError) as err:
            raise EmoaugError(f"{self.option}: {self.kind} {name!r} cannot be loaded ({err})") from None


def import_path(path: str) -> Any:
    """``"package.module"`` -> the module; ``"package.module:Name.attr"`` -> that attribute."""
    module_name, _, attribute = path.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split(".") if attribute else ():
        found = getattr(found, part)
    return found
