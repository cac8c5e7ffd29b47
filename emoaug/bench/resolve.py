"""Options -> a fully resolved :class:`~emoaug.config.RunConfig` (the command line and ``benchmarks/`` scripts
both call :func:`resolve_run_config`). Every option error is a one-line :class:`EmoaugError`, raised before
any audio is read: generator options are checked by building each generator from its resolved config.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import (DEFAULT_PROTOCOLS, PROTOCOLS, ClassifierSettings, Execution, Experiment, RunConfig, get_profile,
                      resolve_classifier)
from ..errors import EmoaugError
from ..limits import DEFAULT_MAX_DURATION, DEFAULT_MIN_DURATION

log = logging.getLogger("emoaug")

DEFAULT_GENERATORS = "none,specaugment"
BASELINE_OFF = "off"
#: synthetic rows per real training row at most (a cell holds its synthetic rows in memory)
MAX_SYNTHETIC_RATIO = 16.0


def resolve_run_config(*, corpus: str = "synthetic", data_root: str | None = None, labels: str = "6class",
                       gen: str | Sequence[str] = DEFAULT_GENERATORS, gen_opt: Sequence[str] = (),
                       protocol: str = ",".join(DEFAULT_PROTOCOLS), test_corpus: str | None = None,
                       test_data_root: str | None = None, baseline_gen: str = "dcgan", reference: str = "compare",
                       profile: str = "quick",
                       classifier: str | None = None, preset: str | None = None, split: str = "kfold",
                       folds: int | None = None, seeds: int | None = None, seed: int = 0,
                       synthetic_ratio: str | float | None = None, epochs: int | None = None, device: str = "auto",
                       executor: str = "auto", jobs: int = 0, threads: int = 0, ray_address: str | None = None,
                       on_bad_file: str = "skip", follow_links: bool = False,
                       min_duration: float = DEFAULT_MIN_DURATION,
                       max_duration: float = DEFAULT_MAX_DURATION, out: str = "runs", run_name: str | None = None,
                       cache_dir: str | None = None, store: str | None = None, fresh: bool = False,
                       tracking_uri: str | None = None, speaker_norm: bool = False,
                       precision: str | None = None, val_speakers: int | None = None,
                       allow_near_duplicates: bool = False,
                       gen_options: Mapping[str, Mapping[str, Any]] | None = None) -> RunConfig:
    """The option names and defaults are the command line's (``--gen-opt`` -> ``gen_opt``, ...);
    ``gen_options``: generator name -> typed options (an experiment file's tables), under ``gen_opt``.

    Cheap checks come first (names, numbers, the corpus folder), so a typo answers before torch is imported;
    then generators are built from their resolved options and the device is checked.
    """
    from ..datasets import check_bad_file_policy, check_duration_bounds
    from ..devices import check_device_spec
    from ..generators import require_known_name
    from ..labels import resolve_labels
    from ..presets import get_preset
    from .parallelism import resolve_parallelism

    chosen = get_profile(profile)
    names = parse_generators(gen)
    protocols = parse_protocols(protocol, test_corpus)
    baseline = None if baseline_gen == BASELINE_OFF else baseline_gen
    n_folds = chosen.n_folds if folds is None else folds
    n_seeds = chosen.n_seeds if seeds is None else seeds
    ratio, curve = parse_synthetic_ratios(synthetic_ratio, chosen.synthetic_ratio)
    if n_folds < 2:
        raise EmoaugError(f"--folds must be >= 2, got {n_folds}")
    if n_seeds < 1:
        raise EmoaugError(f"--seeds must be >= 1, got {n_seeds}")
    if val_speakers is not None and val_speakers < 0:
        raise EmoaugError(f"--val-speakers must be >= 0, got {val_speakers}")
    check_bad_file_policy(on_bad_file)
    check_duration_bounds(min_duration, max_duration)
    check_out_dir(out)
    check_device_spec(device)
    get_preset(preset or chosen.preset)
    classifier_settings = with_speaker_norm(resolve_classifier(chosen, classifier, epochs, precision, device),
                                            speaker_norm)
    if val_speakers is not None:  # part of the classifier's settings, hence of every cell's key
        classifier_settings = dataclasses.replace(classifier_settings, val_speakers=val_speakers)
    resolve_labels(labels, ())  # a known label set ("all" takes the corpus's own labels later)
    for name in [*names, *([baseline] if baseline else [])]:
        require_known_name(name)
    check_reference(reference)
    check_corpus(corpus, data_root)
    if test_corpus:
        check_corpus(test_corpus, test_data_root)
    known = complete_generators_by_name(names, protocols, baseline)
    parse_gen_opts(list(gen_opt), known)
    check_gen_option_targets(gen_options or {}, known)

    # from here on generator modules (and torch) are imported
    generators = complete_generators(names, protocols, baseline)
    generator_configs = resolve_generator_configs(generators, chosen.name, list(gen_opt), gen_options)
    warn_curve_without_generators(curve, generators)
    resolved_device = resolve_device_name(device)
    parallel = resolve_parallelism(executor, jobs, threads, resolved_device)
    if parallel.executor == "ray":
        from .executors import check_ray_address, import_ray

        import_ray()  # not installed: a one-line error now, not after the corpus is read
        if ray_address:
            check_ray_address(ray_address)  # nothing there: the same, within seconds
    experiment = Experiment(
        corpus=corpus, data_root=data_root, labels=labels, generators=generators,
        generator_configs=generator_configs, protocols=protocols, test_corpus=test_corpus,
        test_data_root=test_data_root, baseline_generator=baseline, reference=reference, profile=chosen.name,
        preset=preset or chosen.preset, split=split, n_folds=n_folds, n_seeds=n_seeds, seed=seed,
        synthetic_ratio=ratio, curve_ratios=curve, classifier=classifier_settings, speaker_norm=bool(speaker_norm),
        on_bad_file=on_bad_file, follow_links=bool(follow_links),
        allow_near_duplicates=bool(allow_near_duplicates), min_duration=float(min_duration),
        max_duration=float(max_duration))
    execution = Execution(
        device=resolved_device, out_dir=out, run_name=run_name, cache_dir=cache_dir, store_dir=store,
        tracking_uri=tracking_uri, executor=parallel.executor, jobs=parallel.jobs, threads=parallel.threads,
        ray_address=ray_address, fresh=bool(fresh))
    return RunConfig(experiment, execution)


def with_speaker_norm(settings: ClassifierSettings, speaker_norm: bool) -> ClassifierSettings:
    """With --speaker-norm, each speaker's statistics take the place of the classifier's per-utterance mean
    removal: both remove the spectral level, and removing it per utterance as well would also discard the
    utterance's level relative to its speaker, which speaker normalisation keeps (docs/CLASSIFIER_ABLATION.md)."""
    from dataclasses import replace

    if not speaker_norm or settings.input_norm != "utterance_mean":
        return settings
    log.info("--speaker-norm: the classifier's per-utterance mean removal is off (the speaker's statistics take "
             "its place)")
    return replace(settings, input_norm="none")


def check_reference(reference: str) -> None:
    """A known --reference value; its package installed (found without importing it: the CLI stays instant)."""
    import importlib.util

    from ..classifiers.classic import settings_for

    if settings_for(reference) is not None and importlib.util.find_spec("opensmile") is None:
        raise EmoaugError("--reference: the classic reference needs the opensmile package (pip install opensmile); "
                          "or pass --reference off")


def check_out_dir(out: str) -> None:
    """``--out`` must be a folder (or not exist yet) that this process can write into."""
    import os
    from pathlib import Path

    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise EmoaugError(f"--out: {path} is a file, not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise EmoaugError(f"--out: cannot write into {existing}")


def check_corpus(name: str, root: str | None) -> None:
    """A known corpus whose folder exists (the embedded corpus makes itself later)."""
    from ..datasets import corpus_module, resolve_root

    module = corpus_module(name)
    if not (root is None and name == "synthetic"):
        resolve_root(name, root, module)


def complete_generators_by_name(names: list[str], protocols: list[str], baseline: str | None) -> list[str]:
    """Every generator a run may get (before knowing which are trainable): for checking ``--gen-opt`` targets."""
    extra = [baseline] if baseline and "clarity" in protocols else []
    return list(dict.fromkeys(["none", *names, *extra]))


def resolve_device_name(spec: str) -> str:
    from ..devices import resolve_device

    return str(resolve_device(spec))


def parse_generators(gen: str | Sequence[str]) -> list[str]:
    names = gen.split(",") if isinstance(gen, str) else list(gen)
    generators = [name.strip() for name in names if name.strip()]
    if not generators:
        raise EmoaugError("--gen: give at least one generator name")
    if len(set(generators)) != len(generators):
        raise EmoaugError(f"--gen: a generator is named twice in {gen!r}")
    return generators


def parse_synthetic_ratios(text: str | float | None, profile_ratio: float) -> tuple[float, list[float]]:
    """``--synthetic-ratio``: one ratio, or several (a curve). Returns (the ratio of the tables' cells, the
    curve's ratios ascending, or [] for one ratio). With several, the tables keep the profile's ratio when it
    is among them (so the curve adds cells beside an unchanged run), else they use the first value given."""
    if text is None:
        return float(profile_ratio), []
    values = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (value >= 0 and math.isfinite(value)):
            raise EmoaugError(f"--synthetic-ratio must be finite numbers >= 0 separated by commas, got {part.strip()!r}")
        if value > MAX_SYNTHETIC_RATIO:
            raise EmoaugError(f"--synthetic-ratio {value:g} is above {MAX_SYNTHETIC_RATIO:g}: the synthetic rows of one "
                              f"cell are held in memory ({MAX_SYNTHETIC_RATIO:g} x the training fold is already "
                              "about 6 GB on IEMOCAP with the emogen preset)")
        values.append(value)
    if len(set(values)) == 1:
        return values[0], []
    if 0 in values:
        raise EmoaugError("--synthetic-ratio: leave 0 out of a curve; the real-only classifier (none) is its "
                          "ratio-0 point in every run")
    main = float(profile_ratio) if profile_ratio in values else values[0]
    return main, sorted(set(values))


def warn_curve_without_generators(curve: list[float], generators: list[str]) -> None:
    from ..generators import get_generator_class

    if curve and all(get_generator_class(name).produces_nothing for name in generators):
        log.warning("--synthetic-ratio %s: no generator in --gen adds rows, so there is no curve to draw",
                    ",".join(f"{r:g}" for r in curve))


def parse_protocols(text: str, test_corpus: str | None) -> list[str]:
    """``--protocol`` as a list; ``none`` keeps only the real and real+synthetic arms."""
    protocols = [name.strip() for name in text.split(",") if name.strip() and name.strip() != "none"]
    unknown = [name for name in protocols if name not in PROTOCOLS]
    if unknown:
        raise EmoaugError(f"--protocol: unknown protocol {unknown[0]!r} (choose from {', '.join(PROTOCOLS)})")
    if test_corpus and "cross" not in protocols:
        protocols.append("cross")
    if "cross" in protocols and not test_corpus:
        raise EmoaugError("--protocol cross needs --test-corpus NAME (and --test-data-root for a real corpus)")
    return list(dict.fromkeys(protocols))


def complete_generators(generators: list[str], protocols: list[str], baseline: str | None) -> list[str]:
    """``none`` first (it is the judge, trained in every cell anyway, and every comparison's reference); with
    the clarity protocol and a trainable generator, the baseline generator of Kim & Lee Tables 10-11."""
    from ..generators import get_generator_class

    classes = {name: get_generator_class(name) for name in generators}
    completed = ["none", *[name for name in generators if name != "none"]]
    if "none" not in generators:
        log.info("--gen: added `none` (the real-only reference every generator is compared with)")
    wants_baseline = "clarity" in protocols and any(c.trainable for n, c in classes.items() if n != baseline)
    if baseline and wants_baseline and baseline not in completed:
        get_generator_class(baseline)  # a clear error for a typo in --baseline-gen
        completed.insert(1, baseline)
        log.info("--gen: added %s, the baseline of Kim & Lee Tables 10-11 (--baseline-gen off skips it)", baseline)
    return completed


def parse_gen_opts(options: list[str], generators: list[str]) -> dict[str, dict[str, str]]:
    """``["diffusion.steps=50"]`` -> ``{"diffusion": {"steps": "50"}}``; names must be among --gen. Values stay
    strings: each generator's Config parses them to its option's type (emoaug.generators.options)."""
    parsed: dict[str, dict[str, str]] = {}
    for option in options:
        target, sep, raw = option.partition("=")
        name, dot, key = target.rpartition(".")
        if not (sep and dot and name and key):
            raise EmoaugError(f"--gen-opt: expected GEN.KEY=VALUE, got {option!r}")
        if name not in generators:
            raise EmoaugError(f"--gen-opt: {name!r} is not among --gen ({', '.join(generators)})")
        parsed.setdefault(name, {})[key] = raw
    return parsed


def check_gen_option_targets(gen_options: Mapping[str, Mapping[str, Any]], generators: list[str]) -> None:
    for name in gen_options:
        if name not in generators:
            raise EmoaugError(f"generator options for {name!r}: it is not among the generators "
                              f"({', '.join(generators)})")


def resolve_generator_configs(generators: list[str], profile: str, options: list[str],
                              typed: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict]:
    """Each generator's Config: its defaults, then the profile's preset for it (model size, steps), then the
    ``typed`` options (an experiment file's), then --gen-opt, fully spelled out as a plain dict (what the run
    records and cell keys hash).

    Each generator is built once from its config (constructors take config only and do no work), so an
    unknown or ill-typed option fails here, before any audio is read.
    """
    overrides = parse_gen_opts(options, generators)
    configs = {}
    for name in generators:
        given = {**(typed or {}).get(name, {}), **overrides.get(name, {})}
        resolved = generator_config_under(profile, name, given)
        resolved.pop("seed", None)  # each cell sets its own seed
        configs[name] = resolved
    return configs


def generator_config_under(profile: str, name: str, overrides: dict[str, str] | None = None) -> dict:
    """Generator ``name``'s whole config under ``profile`` (its Config's defaults, the profile's preset for it,
    then ``overrides``) as a plain dict, checked by building the generator."""
    from ..generators import get_generator_class

    config = {**get_profile(profile).generators.get(name, {}), **(overrides or {})}
    try:
        return get_generator_class(name)(**config).get_config()
    except EmoaugError as err:
        raise EmoaugError(f"--gen-opt: {err}") from None
    except (TypeError, ValueError) as err:
        raise EmoaugError(f"--gen-opt: generator {name!r} rejects its options ({err})") from None
