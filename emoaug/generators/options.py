"""Typed generator options: each generator declares a frozen dataclass ``Config``.

Every field carries its type (the annotation), its default, a one-line doc and optional bounds or choices,
all declared with :func:`option`. :func:`resolve_options` is the one place options are checked: it turns a
mapping of values -- Python values, or the strings of ``--gen-opt`` -- into that dataclass, and every
problem (an unknown key, a wrong type, a value out of range, a bad choice) is a one-line
:class:`~emoaug.errors.EmoaugError` naming the generator and the option. Checks that one field cannot
express (one option must match another) go in the dataclass's ``__post_init__``, raising ``EmoaugError``.

Supported field types: ``int``, ``float``, ``bool``, ``str``, ``tuple[T, ...]`` of those, and unions of them
with each other or with ``None`` (``int | None``, ``float | str | None``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any

from ..errors import EmoaugError


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A generator that takes no options."""


def option(default: Any, doc: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, choices: tuple[str, ...] | None = None, min_items: int = 0,
           keyed_at_default: bool = True) -> Any:
    """A config field: ``default``, a one-line ``doc``, bounds on numbers (on each item of a tuple),
    ``choices`` for string values and, for tuples, ``min_items``. ``keyed_at_default=False`` is for an option
    added after cells were stored whose default computes what those cells computed: it enters content keys
    only when set to something else, so the stored cells keep their keys (see :func:`keyed_dict`)."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    metadata = {"doc": doc, "bounds": {k: v for k, v in bounds.items() if v is not None}, "choices": choices,
                "min_items": min_items, "keyed_at_default": keyed_at_default}
    return dataclasses.field(default=default, metadata=metadata)


# ---------------------------------------------------------------------------------------------- describing
def fields_of(config_cls: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(config_cls))


def field_types(config_cls: type) -> dict[str, Any]:
    """Field name -> annotation as a type (modules using ``from __future__ import annotations`` store strings)."""
    return typing.get_type_hints(config_cls)


def type_name(annotation: Any) -> str:
    """``int``, ``tuple[int, ...]``, ``float | str | None``: the annotation as the user reads it."""
    if annotation is type(None):
        return "None"
    if _is_tuple(annotation):
        return f"tuple[{type_name(_item_type(annotation))}, ...]"
    if _is_union(annotation):
        return " | ".join(type_name(member) for member in typing.get_args(annotation))
    return annotation.__name__


def bounds_text(f: dataclasses.Field) -> str:
    """``>= 0 and < 1``; ``one of 'ddim', 'ddpm'``; ``> 0; one of 'auto'``; empty when the field has neither."""
    numbers_within = " and ".join(f"{_SYMBOL[key]} {value:g}" for key, value in f.metadata.get("bounds", {}).items())
    choices = f.metadata.get("choices")
    strings_among = "one of " + ", ".join(repr(c) for c in choices) if choices else ""
    return "; ".join(part for part in (numbers_within, strings_among) if part)


def plain_dict(options: Any) -> dict[str, Any]:
    """A resolved config as a plain JSON-shaped dict (tuples as lists), in field order: what generators read,
    what runs record and what cell keys hash (a list survives a JSON round trip unchanged, a tuple does not)."""
    return {f.name: _jsonable(getattr(options, f.name)) for f in fields_of(type(options))}


def keyed_dict(config_cls: type, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a :func:`plain_dict`) as content keys hash it: without the options declared
    ``keyed_at_default=False`` while they hold their default."""
    unkeyed_defaults = {f.name: _jsonable(f.default) for f in fields_of(config_cls)
                        if not f.metadata.get("keyed_at_default", True)}
    return {key: value for key, value in config.items()
            if key not in unkeyed_defaults or value != unkeyed_defaults[key]}


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value


# ---------------------------------------------------------------------------------------------- resolving
def resolve_options(generator: str, config_cls: type, values: Mapping[str, Any]) -> Any:
    """``values`` (a subset of the fields; strings are parsed to the field's type) as a ``config_cls``."""
    _require_frozen_dataclass(generator, config_cls)
    fields = {f.name: f for f in fields_of(config_cls)}
    _reject_unknown(generator, fields, values)
    types_by_name = field_types(config_cls)
    _require_supported_types(generator, types_by_name)
    checked = {key: _checked(generator, fields[key], types_by_name[key], value) for key, value in values.items()}
    try:
        return config_cls(**checked)
    except EmoaugError as err:  # a cross-field check in __post_init__
        raise EmoaugError(f"generator {generator!r}: {err}") from None


def _require_frozen_dataclass(generator: str, config_cls: type) -> None:
    if not (dataclasses.is_dataclass(config_cls) and config_cls.__dataclass_params__.frozen):
        raise EmoaugError(f"generator {generator!r}: its Config must be a frozen dataclass "
                          f"(@dataclass(frozen=True)), got {config_cls!r}")


def _require_supported_types(generator: str, types_by_name: Mapping[str, Any]) -> None:
    for name, annotation in types_by_name.items():
        if not all(_supported(member) for member in _members(annotation)):
            raise EmoaugError(f"generator {generator!r}: Config field {name} has type {annotation!r}; options "
                              "take int, float, bool, str, None, tuple[T, ...] and unions of them")


def _supported(member: Any) -> bool:
    if _is_tuple(member):
        args = typing.get_args(member)
        return len(args) == 2 and args[1] is Ellipsis and all(_supported(m) for m in _members(args[0]))
    return member is type(None) or member in (str, *_CONVERTERS)


def _reject_unknown(generator: str, fields: Mapping[str, dataclasses.Field], values: Mapping[str, Any]) -> None:
    unknown = sorted(set(values) - set(fields))
    if not unknown:
        return
    if not fields:
        raise EmoaugError(f"generator {generator!r} takes no options, got {', '.join(unknown)} (a generator "
                          "declares its options in a frozen dataclass `Config`)")
    described = ", ".join(_unknown_with_hint(key, fields) for key in unknown)
    raise EmoaugError(f"generator {generator!r}: unknown option {described}")


def _unknown_with_hint(key: str, fields: Mapping[str, dataclasses.Field]) -> str:
    close = difflib.get_close_matches(key, list(fields), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"options: {', '.join(fields)}"
    return f"{key!r} ({hint})"


def _checked(generator: str, f: dataclasses.Field, annotation: Any, value: Any) -> Any:
    """``value`` converted to the field's type and checked against its bounds and choices."""
    converted = _convert(value, annotation, f)
    if converted is _INVALID:
        raise EmoaugError(f"generator {generator!r}: {f.name} must be {_expected(annotation, f)}, got {value!r}")
    return converted


_INVALID = object()
_SYMBOL = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_WITHIN = {"ge": lambda v, b: v >= b, "gt": lambda v, b: v > b, "le": lambda v, b: v <= b, "lt": lambda v, b: v < b}


def _convert(value: Any, annotation: Any, f: dataclasses.Field) -> Any:
    """The first member of the (union) type that accepts ``value``, else ``_INVALID``."""
    for member in _members(annotation):
        converted = _convert_to(value, member, f)
        if converted is not _INVALID:
            return converted
    return _INVALID


def _convert_to(value: Any, member: Any, f: dataclasses.Field) -> Any:
    if member is type(None):
        return None if value is None or (isinstance(value, str) and value.lower() in ("none", "null")) else _INVALID
    if _is_tuple(member):
        return _convert_tuple(value, _item_type(member), f)
    if member is str:
        return _accept_choice(value, f)
    number = _CONVERTERS[member](value)
    return number if number is _INVALID or member is bool else _within_bounds(number, f)


def _accept_choice(value: Any, f: dataclasses.Field) -> Any:
    choices = f.metadata.get("choices")
    if not isinstance(value, str) or (choices and value not in choices):
        return _INVALID
    return value


def _within_bounds(number: Any, f: dataclasses.Field) -> Any:
    bounds = f.metadata.get("bounds", {})
    return number if all(_WITHIN[key](number, bound) for key, bound in bounds.items()) else _INVALID


def _to_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return _INVALID


def _to_int(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return _INVALID
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)  # numpy integers too
    return _INVALID


def _to_float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return _INVALID
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return _INVALID
    return float(value) if math.isfinite(value) else _INVALID


_CONVERTERS = {bool: _to_bool, int: _to_int, float: _to_float}


def _convert_tuple(value: Any, item_type: Any, f: dataclasses.Field) -> Any:
    """A list or tuple, or a string ``"[1, 2]"`` / ``"1,2"``, with every item converted."""
    if isinstance(value, str):
        value = [part for part in value.strip().strip("[]()").split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or len(value) < f.metadata.get("min_items", 0):
        return _INVALID
    items = tuple(_convert(item, item_type, f) for item in value)
    return _INVALID if _INVALID in items else items


def _expected(annotation: Any, f: dataclasses.Field) -> str:
    """What a field accepts, in words: ``an integer >= 1``, ``a number > 0 or 'auto' or None``."""
    return " or ".join(_expected_member(member, f) for member in _members(annotation))


def _expected_member(member: Any, f: dataclasses.Field) -> str:
    if member is type(None):
        return "None"
    if _is_tuple(member):
        least = f.metadata.get("min_items", 0)
        size = "a list" if not least else "a non-empty list" if least == 1 else f"a list of >= {least} items"
        return f"{size} of {_plural(_expected_member(_item_type(member), f))}"
    if member is str:
        choices = f.metadata.get("choices")
        return "one of " + ", ".join(repr(c) for c in choices) if choices else "a string"
    noun = {bool: "true or false", int: "an integer", float: "a finite number"}[member]
    limits = " and ".join(f"{_SYMBOL[key]} {bound:g}" for key, bound in f.metadata.get("bounds", {}).items())
    return f"{noun} {limits}" if limits and member is not bool else noun


def _plural(phrase: str) -> str:
    for singular, plural in (("an integer", "integers"), ("a finite number", "finite numbers"), ("a string", "strings")):
        if phrase.startswith(singular):
            return plural + phrase[len(singular):]
    return phrase


# ---------------------------------------------------------------------------------------------- annotations
def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _is_tuple(annotation: Any) -> bool:
    return typing.get_origin(annotation) is tuple


def _item_type(annotation: Any) -> Any:
    return typing.get_args(annotation)[0]


def _members(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(annotation) if _is_union(annotation) else (annotation,)
