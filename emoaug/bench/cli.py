"""Command line: ``run_bench.py [run] [options]``, ``run_bench.py describe``, ``run_bench.py list``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..config import DEFAULT_PROTOCOLS, PROTOCOLS
from ..errors import EmoaugError

log = logging.getLogger("emoaug")

COMMANDS = ("run", "describe", "list", "report")
DEFAULT_GENERATORS = "none,specaugment"
BASELINE_OFF = "off"


# ---------------------------------------------------------------------------- parsers
def _corpus_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", default="synthetic",
                        help="corpus name (see `list`); default: the embedded synthetic corpus")
    parser.add_argument("--data-root", default=None,
                        help="folder holding the corpus (or set EMOAUG_DATA to a parent folder)")
    parser.add_argument("--labels", default="6class", help="label set: 6class, 4class or all (default 6class)")
    parser.add_argument("--on-bad-file", default="skip", choices=("skip", "fail"),
                        help="skip unusable audio files (listed in the audit) or stop at the first one")


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py",
        description="Benchmark generative data augmentation for speech emotion recognition. "
                    "Other commands: `run_bench.py describe --corpus NAME`, `run_bench.py list`, "
                    "`run_bench.py report --out DIR`.",
    )
    _corpus_options(parser)
    parser.add_argument("--gen", default=DEFAULT_GENERATORS,
                        help="comma-separated generators (names from `list`, or pkg.module:Class); "
                             f"default {DEFAULT_GENERATORS}")
    parser.add_argument("--gen-opt", action="append", default=[], metavar="GEN.KEY=VALUE",
                        help="override one generator setting, e.g. diffusion.sampling_steps=50 (repeatable; "
                             "VALUE is read as JSON when it parses, else as a string)")
    parser.add_argument("--protocol", default=",".join(DEFAULT_PROTOCOLS),
                        help="comma-separated: augment (also train on synthetic only; Malik et al.), clarity (the "
                             "real-only judge on enhanced/generated test utterances; Kim & Lee), cross (test on "
                             f"--test-corpus too; implied by it), or none. Default {','.join(DEFAULT_PROTOCOLS)}; "
                             "the real and real+synthetic arms always run")
    parser.add_argument("--test-corpus", default=None,
                        help="cross-corpus test corpus (e.g. --corpus emodb --test-corpus ravdess); the shared "
                             "emotions of both are used")
    parser.add_argument("--test-data-root", default=None, help="folder holding the --test-corpus")
    parser.add_argument("--baseline-gen", default="dcgan",
                        help="generator the chosen one is compared with in Kim & Lee Tables 10-11 (default dcgan, "
                             "as in the paper); added to --gen when clarity runs a trainable generator; 'off' skips")
    parser.add_argument("--profile", default="quick", help="smoke, quick (default) or paper")
    parser.add_argument("--classifier", default=None, help="cnn_blstm or resnet50 (default: the profile's)")
    parser.add_argument("--preset", default=None, help="log-mel preset: kim2024, malik2023, emogen (default: profile's)")
    parser.add_argument("--split", default="kfold", choices=("kfold", "loso", "paper"),
                        help="kfold (speaker-independent, default), loso, or paper (random 8:2, speaker-dependent)")
    parser.add_argument("--folds", type=int, default=None, help="number of folds for --split kfold")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds per fold (default: profile's)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--synthetic-ratio", type=float, default=None,
                        help="synthetic rows per real training row (default: profile's)")
    parser.add_argument("--epochs", type=int, default=None, help="override the classifier's maximum epochs")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default 0: torch's choice; 1 is safest on a busy machine)")
    parser.add_argument("--out", default="runs", help="output folder (default ./runs)")
    parser.add_argument("--run-name", default=None,
                        help="run folder name (default: corpus-profile-<config hash>, so a re-run resumes)")
    parser.add_argument("--cache-dir", default=None,
                        help="feature/corpus cache (default $EMOAUG_CACHE or ~/.cache/emoaug; 'off' disables)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default sqlite:///<out>/mlflow.db)")
    parser.add_argument("--no-mlflow", action="store_true", help="write local results only")
    parser.add_argument("--quiet", action="store_true", help="print only the final table and errors")
    return parser


def describe_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_bench.py describe",
                                     description="Scan a corpus and summarise what is usable.")
    _corpus_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py report",
        description="Re-render every table and figure of finished runs from their stored results (nothing is "
                    "recomputed) and write a self-contained report.html into each run folder.")
    parser.add_argument("--out", default="runs", help="a run folder, or a folder of run folders (default ./runs)")
    return parser


def list_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_bench.py list",
                                     description="List corpora, generators, classifiers, profiles and presets.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


# ---------------------------------------------------------------------------- commands
def build_config(args: argparse.Namespace):
    from ..config import RunConfig, get_profile, resolve_classifier

    profile = get_profile(args.profile)
    generators = [name.strip() for name in args.gen.split(",") if name.strip()]
    if not generators:
        raise EmoaugError("--gen: give at least one generator name")
    if len(set(generators)) != len(generators):
        raise EmoaugError(f"--gen: a generator is named twice in {args.gen!r}")
    protocols = parse_protocols(args.protocol, args.test_corpus)
    baseline = None if args.baseline_gen == BASELINE_OFF else args.baseline_gen
    generators = complete_generators(generators, protocols, baseline)
    generator_configs = resolve_generator_configs(generators, profile.name, args.gen_opt)
    folds = profile.n_folds if args.folds is None else args.folds
    seeds = profile.n_seeds if args.seeds is None else args.seeds
    ratio = profile.synthetic_ratio if args.synthetic_ratio is None else args.synthetic_ratio
    if folds < 2:
        raise EmoaugError(f"--folds must be >= 2, got {folds}")
    if seeds < 1:
        raise EmoaugError(f"--seeds must be >= 1, got {seeds}")
    if not ratio >= 0:
        raise EmoaugError(f"--synthetic-ratio must be >= 0, got {args.synthetic_ratio}")
    return RunConfig(
        corpus=args.corpus, data_root=args.data_root, labels=args.labels, generators=generators,
        generator_configs=generator_configs, protocols=protocols, test_corpus=args.test_corpus,
        test_data_root=args.test_data_root, baseline_generator=baseline,
        profile=profile.name, preset=args.preset or profile.preset, split=args.split, n_folds=folds,
        n_seeds=seeds, seed=args.seed, synthetic_ratio=ratio,
        classifier=resolve_classifier(profile, args.classifier, args.epochs),
        device=args.device, on_bad_file=args.on_bad_file, out_dir=args.out, cache_dir=args.cache_dir,
        tracking_uri=args.tracking_uri, run_name=args.run_name,
    )


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


def parse_gen_opts(options: list[str], generators: list[str]) -> dict[str, dict]:
    """``["diffusion.steps=50"]`` -> ``{"diffusion": {"steps": 50}}``; names must be among --gen."""
    parsed: dict[str, dict] = {}
    for option in options:
        target, sep, raw = option.partition("=")
        name, dot, key = target.rpartition(".")
        if not (sep and dot and name and key):
            raise EmoaugError(f"--gen-opt: expected GEN.KEY=VALUE, got {option!r}")
        if name not in generators:
            raise EmoaugError(f"--gen-opt: {name!r} is not among --gen ({', '.join(generators)})")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parsed.setdefault(name, {})[key] = value
    return parsed


def resolve_generator_configs(generators: list[str], profile: str, options: list[str]) -> dict[str, dict]:
    """Each generator's profile defaults (model size, steps) overridden by --gen-opt, fully spelled out."""
    from ..generators import get_generator_class

    overrides = parse_gen_opts(options, generators)
    configs = {}
    for name in generators:
        configs[name] = {**get_generator_class(name).profile_config(profile), **overrides.get(name, {})}
    return configs


def command_run(args: argparse.Namespace) -> int:
    from ..reports.run_report import render_run
    from .runner import Benchmark
    from .tracking import default_tracking_uri, log_run, summary_metrics

    config = build_config(args)
    if args.threads < 0:
        raise EmoaugError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    progress = sys.stderr.isatty() and not args.quiet
    bench = Benchmark(config, progress=progress)
    try:
        result = bench.run()
    except KeyboardInterrupt:
        log.error("interrupted: finished cells are kept in %s; run the same command again to resume",
                  bench.run_dir)
        return 130
    print(render_run(bench.run_dir, result))
    print(f"results: {bench.run_dir} (report: report.html)")
    if args.no_mlflow:
        return 0
    uri = config.tracking_uri or default_tracking_uri(config.out_dir)
    try:
        run_id = log_run(
            tracking_uri=uri, out_dir=Path(config.out_dir), run_name=bench.run_dir.name,
            params=config.to_dict(), metrics=summary_metrics(result.summary),
            artifacts=[bench.run_dir / name for name in (
                "report.html", "tables", "figures", "confusion", "audio", "config.json", "split.json",
                "split_audit.json", "skipped.json", "leakage_audit.json", "summary.csv", "fold_metrics.csv",
                "comparisons.csv", "predictions.csv", "generators.csv", "quality.csv", "timings.csv")],
            tags={"corpus": config.corpus, "profile": config.profile, "split": config.split,
                  "protocols": ",".join(config.protocols), "test_corpus": config.test_corpus or "",
                  "generators": ",".join(config.generators), "run_dir": str(bench.run_dir.resolve())},
        )
    except Exception as err:  # tracking is a copy: its failure must not lose local results
        log.warning("MLflow logging failed (%s: %s); results are kept in %s", type(err).__name__, err,
                    bench.run_dir)
        return 0
    print(f"mlflow: run {run_id} at {uri}")
    return 0


def run_folders(out: Path) -> list[Path]:
    """``out`` itself when it is a run folder, else its subfolders that are (sorted)."""
    if not out.is_dir():
        raise EmoaugError(f"--out: {out} is not a folder")
    if (out / "config.json").exists():
        return [out]
    found = sorted(p for p in out.iterdir() if (p / "config.json").exists())
    if not found:
        raise EmoaugError(f"--out: no run folders (with config.json) in {out}")
    return found


def command_report(args: argparse.Namespace) -> int:
    from ..reports.run_report import render_run
    from .runner import load_result

    folders = run_folders(Path(args.out))
    for run_dir in folders:
        try:
            result = load_result(run_dir)
        except EmoaugError as err:
            if len(folders) == 1:
                raise
            log.warning("skipped %s", err)  # an unfinished run among finished ones
            continue
        print(render_run(run_dir, result))
        print(f"report: {run_dir / 'report.html'}")
    return 0


def describe_corpus(scan) -> dict:
    items = scan.items
    per_emotion = items["emotion"].value_counts()
    duration = items["duration"]
    return {
        "corpus": scan.corpus,
        "root": scan.root,
        "labels": list(scan.labels),
        "n_items": int(len(items)),
        "n_speakers": scan.n_speakers,
        "per_emotion": {label: int(per_emotion.get(label, 0)) for label in scan.labels},
        "per_speaker": {str(k): int(v) for k, v in items["speaker"].value_counts().sort_index().items()},
        "per_gender": {str(k or "unknown"): int(v) for k, v in items["gender"].value_counts().items()},
        "total_duration_s": round(float(duration.sum()), 3),
        "duration_s": {"min": round(float(duration.min()), 3), "mean": round(float(duration.mean()), 3),
                       "max": round(float(duration.max()), 3)} if len(items) else {},
        "sample_rates": {str(k): int(v) for k, v in items["sample_rate"].value_counts().items()},
        "channels": {str(k): int(v) for k, v in items["channels"].value_counts().items()},
        "excluded_by_label_set": dict(scan.excluded),
        "skipped": list(scan.skipped),
    }


def command_describe(args: argparse.Namespace) -> int:
    from ..datasets import load_corpus

    scan = load_corpus(args.corpus, args.data_root, labels=args.labels, on_bad_file=args.on_bad_file,
                       progress=sys.stderr.isatty() and not args.json)
    info = describe_corpus(scan)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['corpus']} at {info['root']}: {info['n_items']} items, {info['n_speakers']} speakers, "
          f"{info['total_duration_s'] / 60:.1f} min")
    for label, count in info["per_emotion"].items():
        print(f"  {label:<10} {count}")
    if info["excluded_by_label_set"]:
        print(f"  excluded by --labels {args.labels}: {info['excluded_by_label_set']}")
    for entry in info["skipped"]:
        print(f"  skipped {entry['path']}: {entry['reason']}")
    return 0


def command_list(args: argparse.Namespace) -> int:
    from ..classifiers import available_classifiers
    from ..config import PROFILES
    from ..datasets import available_corpora
    from ..features import PRESETS
    from ..generators import available_generators

    listing = {
        "corpora": available_corpora(),
        "generators": available_generators(),
        "classifiers": available_classifiers(),
        "profiles": {name: p.description for name, p in PROFILES.items()},
        "presets": list(PRESETS),
    }
    if args.json:
        print(json.dumps(listing))
        return 0
    for key, values in listing.items():
        print(f"{key}:")
        if isinstance(values, dict):
            for name, text in values.items():
                print(f"  {name:<10} {text}")
        else:
            for name in values:
                print(f"  {name}")
    return 0


HANDLERS = {
    "run": (run_parser, command_run),
    "describe": (describe_parser, command_describe),
    "list": (list_parser, command_list),
    "report": (report_parser, command_report),
}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the moment (it may be replaced, e.g. under pytest)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler assigns it in __init__; we always follow sys.stderr
        pass


def configure_logging(quiet: bool) -> None:
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.WARNING if quiet else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    make_parser, handler = HANDLERS[command]
    args = make_parser().parse_args(argv)
    configure_logging(getattr(args, "quiet", False))
    try:
        return handler(args)
    except EmoaugError as err:
        print(f"emoaug: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
