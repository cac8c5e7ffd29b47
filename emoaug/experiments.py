"""Experiments as TOML files: ``run_bench.py --config exp.toml``, and ``experiment.toml`` in every run folder.

A file holds run options by their command-line names (``folds = 5``, ``data-root`` or ``data_root``) and the
generators as tables of typed options, in the order they run::

    corpus = "emodb"
    profile = "quick"
    seeds = 3

    [generators.none]
    [generators.diffusion]
    sampling_steps = 50

Options given on the command line override the file's. Every run writes the experiment it resolved to
(:func:`experiment_toml`): running that file again asks the very same question (same fingerprint, same run
folder name, same cell keys). Where and how it ran (executor, jobs, store, ...) is written as comments: it is
not part of the experiment, and command-line flags set it.

Anything wrong in a file is one :class:`~emoaug.errors.EmoaugError` line naming the file, the line and the key.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Experiment, RunConfig
from .errors import EmoaugError

GENERATORS_TABLE = "generators"
#: options whose value may be one item or a list (the command line takes them comma-separated)
LIST_OPTIONS = {"gen": str, "protocol": str, "synthetic_ratio": float}
#: how a generator option set to none is written (emoaug.generators.options reads it as none)
NULL = "null"


@dataclass(frozen=True)
class OptionKind:
    """What a file may give for one run option (from the command line's parser)."""

    kind: type  # bool (a flag), int, float or str
    choices: tuple[str, ...] | None = None
    repeatable: bool = False  # --gen-opt: a list of strings


# ------------------------------------------------------------------------------------------------ reading
def read_experiment_file(path: str | Path, schema: Mapping[str, OptionKind]) -> dict[str, Any]:
    """The run options of an experiment file, checked against ``schema`` (option name -> kind), as keyword
    options of :func:`emoaug.bench.resolve.resolve_run_config` (the generators' tables as ``gen`` and
    ``gen_options``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EmoaugError(f"--config: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EmoaugError(f"--config: cannot read {path} ({err})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise EmoaugError(f"{path}: not valid TOML: {err}") from None
    locate = _Locator(path, text)
    options: dict[str, Any] = {}
    for raw_key, value in document.items():
        if raw_key == GENERATORS_TABLE:
            continue
        key = raw_key.replace("-", "_")
        if key not in schema:
            known = sorted([*schema, GENERATORS_TABLE])
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise EmoaugError(f"{locate.key(raw_key)}: unknown key {raw_key!r}{hint}")
        options[key] = _checked(value, key, schema[key], f"{locate.key(raw_key)}: {raw_key!r}")
    generators = document.get(GENERATORS_TABLE)
    if generators is not None:
        if "gen" in options:
            raise EmoaugError(f"{locate.key('gen')}: give the generators either as `gen` or as "
                              f"[{GENERATORS_TABLE}.NAME] tables, not both")
        if not isinstance(generators, dict) or not all(isinstance(v, dict) for v in generators.values()):
            raise EmoaugError(f"{locate.key(GENERATORS_TABLE)}: `{GENERATORS_TABLE}` must hold one table per "
                              f"generator ([{GENERATORS_TABLE}.NAME] with its options)")
        options["gen"] = list(generators)
        options["gen_options"] = {name: _generator_options(name, values, locate)
                                  for name, values in generators.items() if values}
    return options


def _checked(value: Any, key: str, kind: OptionKind, where: str) -> Any:
    """``value`` as the option's command-line form (lists of the list options joined by commas); ``where``:
    the file, line and key as written, for errors."""
    if kind.repeatable:
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise EmoaugError(f"{where} must be a list of strings, got {_shown(value)}")
        return value
    if key in LIST_OPTIONS:
        items = value if isinstance(value, list) else [value]
        item_type = LIST_OPTIONS[key]
        good = all(isinstance(v, str) for v in items) if item_type is str else \
            all(_is_number(v) or isinstance(v, str) for v in items)
        if not items or not good:
            raise EmoaugError(f"{where} must be a {_type_name(item_type)} or a list of them, got "
                              f"{_shown(value)}")
        return ",".join(_number_text(v) if _is_number(v) else str(v) for v in items)
    if kind.kind is bool and not isinstance(value, bool):
        raise EmoaugError(f"{where} must be true or false, got {_shown(value)}")
    if kind.kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise EmoaugError(f"{where} must be an integer, got {_shown(value)}")
    if kind.kind is float and not _is_number(value):
        raise EmoaugError(f"{where} must be a number, got {_shown(value)}")
    if kind.kind is str and not isinstance(value, str):
        raise EmoaugError(f"{where} must be a string, got {_shown(value)}")
    if kind.choices and value not in kind.choices:
        raise EmoaugError(f"{where} must be one of {', '.join(kind.choices)}, got {value!r}")
    return float(value) if kind.kind is float else value


def _generator_options(name: str, values: dict[str, Any], locate: _Locator) -> dict[str, Any]:
    """A generator's table, checked by its own Config (unknown options, types, bounds) with the line named."""
    from .generators import get_generator_class

    where = locate.table(f"{GENERATORS_TABLE}.{name}")
    try:
        cls = get_generator_class(name)
        cls.resolve_config({k: v for k, v in values.items() if k != "seed"})
    except EmoaugError as err:
        bad = _first_named(str(err), values)
        at = locate.key_in_table(f"{GENERATORS_TABLE}.{name}", bad) if bad else where
        raise EmoaugError(f"{at}: [{GENERATORS_TABLE}.{name}]: {err}") from None
    if "seed" in values:
        raise EmoaugError(f"{locate.key_in_table(f'{GENERATORS_TABLE}.{name}', 'seed')}: "
                          f"[{GENERATORS_TABLE}.{name}]: `seed` is set per cell (use the top-level `seed`)")
    return dict(values)


def _first_named(message: str, keys: Mapping[str, Any]) -> str | None:
    """The key the message names first (a "did you mean" hint names others after it)."""
    found = {key: match.start() for key in keys
             if (match := re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", message))}
    return min(found, key=found.get) if found else None


class _Locator:
    """``file:line`` of a key (tomllib parses values, not positions; errors still name the line)."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()

    def _find(self, pattern: str, start: int = 0, stop: int | None = None) -> int | None:
        regex = re.compile(pattern)
        for number in range(start, len(self.lines) if stop is None else stop):
            if regex.match(self.lines[number]):
                return number
        return None

    def _at(self, number: int | None) -> str:
        return f"{self.path}" if number is None else f"{self.path}:{number + 1}"

    @staticmethod
    def _key_pattern(key: str) -> str:
        variants = {key, key.replace("_", "-"), key.replace("-", "_")}
        names = "|".join(re.escape(v) for v in variants) + "|" + "|".join(f'"{re.escape(v)}"' for v in variants)
        return rf"\s*({names})\s*="

    def key(self, key: str) -> str:
        first_table = self._find(r"\s*\[")
        return self._at(self._find(self._key_pattern(key), 0, first_table))

    def table(self, name: str) -> str:
        return self._at(self._table_line(name))

    def _table_line(self, name: str) -> int | None:
        parts = [re.escape(p) for p in name.split(".")]
        return self._find(r"\s*\[\s*" + r"\s*\.\s*".join(parts) + r"\s*\]")

    def key_in_table(self, name: str, key: str) -> str:
        header = self._table_line(name)
        if header is None:
            return self._at(None)
        following = self._find(r"\s*\[", header + 1)
        return self._at(self._find(self._key_pattern(key), header + 1, following) or header)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_text(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _type_name(kind: type) -> str:
    return {str: "string", float: "number"}.get(kind, kind.__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


# ------------------------------------------------------------------------------------------------ writing
def experiment_options(experiment: Experiment) -> dict[str, Any]:
    """``experiment`` as run options (command-line names) that resolve back to an equal experiment."""
    classifier = experiment.classifier
    ratios = experiment.curve_ratios
    # with several ratios the tables' ratio goes first: the first given is the tables' when the profile's
    # own ratio is not among them (emoaug.bench.resolve.parse_synthetic_ratios)
    ratio: Any = ([experiment.synthetic_ratio, *[r for r in ratios if r != experiment.synthetic_ratio]]
                  if ratios else experiment.synthetic_ratio)
    options = {
        "corpus": experiment.corpus, "data_root": experiment.data_root, "labels": experiment.labels,
        "test_corpus": experiment.test_corpus, "test_data_root": experiment.test_data_root,
        "profile": experiment.profile, "preset": experiment.preset, "split": experiment.split,
        "folds": experiment.n_folds, "seeds": experiment.n_seeds, "seed": experiment.seed,
        "protocol": list(experiment.protocols) or "none", "synthetic_ratio": ratio,
        "baseline_gen": experiment.baseline_generator or "off", "reference": experiment.reference,
        "speaker_norm": experiment.speaker_norm, "on_bad_file": experiment.on_bad_file,
        "follow_links": experiment.follow_links, "allow_near_duplicates": experiment.allow_near_duplicates,
        "min_duration": experiment.min_duration, "max_duration": experiment.max_duration,
    }
    if classifier is not None:
        options.update({"classifier": classifier.arch, "epochs": classifier.epochs,
                        "precision": classifier.precision, "val_speakers": classifier.val_speakers})
    return {key: value for key, value in options.items() if value is not None}


def experiment_toml(config: RunConfig) -> str:
    """The text of a run folder's ``experiment.toml``: the experiment in full, its execution as comments."""
    experiment, execution = config.experiment, config.execution
    lines = ["# The experiment this run resolved to (emoaug.experiments). Run it again with",
             "#   python run_bench.py --config experiment.toml",
             "# Its fingerprint names the run folder; the same file gives the same cells (reused from the store).",
             "# The classifier's other settings (learning rate, batch size, schedule) are the profile's.",
             f"# fingerprint: {experiment.fingerprint()}",
             "#",
             "# Where and how it ran (not part of the experiment; set these on the command line):",
             f"#   {execution_flags(execution.to_dict())}", ""]
    lines += [f"{key} = {_toml_value(value)}" for key, value in experiment_options(experiment).items()]
    for name in experiment.generators:
        lines += ["", f"[{GENERATORS_TABLE}.{_toml_key(name)}]"]
        options = experiment.generator_configs.get(name, {})
        # TOML has no null: an option set to none is written as the string "null", which options read as none
        lines += [f"{_toml_key(key)} = {_toml_value(NULL if value is None else value)}"
                  for key, value in options.items()]
    return "\n".join(lines) + "\n"


#: Execution fields -> the command line's flags
EXECUTION_FLAGS = {"out_dir": "--out", "store_dir": "--store", "run_name": "--run-name", "cache_dir": "--cache-dir",
                   "tracking_uri": "--tracking-uri", "ray_address": "--ray-address"}


def execution_flags(execution: Mapping[str, Any]) -> str:
    parts = []
    for key, value in execution.items():
        flag = EXECUTION_FLAGS.get(key, f"--{key.replace('_', '-')}")
        if isinstance(value, bool):
            parts += [flag] if value else []
        elif value is not None:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped)
    return f'"{escaped}"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()
                               if v is not None) + "}"
    raise TypeError(f"experiment.toml cannot hold {type(value).__name__} values")
