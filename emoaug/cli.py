"""Command line: ``run_bench.py [run] [options]``, ``run_bench.py describe``, ``run_bench.py list``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import interrupts
from .errors import EmoaugError, WriteFailed
from .run_options import corpus_options, explicit_options, run_options, run_parser
from .storage import refused_write

log = logging.getLogger("emoaug")

COMMANDS = ("run", "describe", "list", "report", "leaderboard")


# ---------------------------------------------------------------------------- parsers (run: emoaug.run_options)
def describe_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_bench.py describe",
                                     description="Scan a corpus and summarise what is usable.")
    corpus_options(parser)
    parser.add_argument("--duplicates", action="store_true",
                        help="also list near-duplicate recordings within the corpus (dithered, re-gained, "
                             "resampled, re-encoded or trimmed copies of one recording), from the log-mel features "
                             "of --preset (computed once into the feature cache, as a run would)")
    parser.add_argument("--preset", default="emogen", help="log-mel preset for --duplicates (default emogen, the "
                                                          "quick profile's)")
    parser.add_argument("--cache-dir", default=None, help="feature cache for --duplicates (default: a run's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py report",
        description="Re-render every table and figure of finished runs from their stored results (nothing is "
                    "recomputed) and write a self-contained report.html into each run folder.")
    parser.add_argument("--out", default="runs", help="a run folder, or a folder of run folders (default ./runs)")
    return parser


def leaderboard_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py leaderboard",
        description="Fold every finished run under --out into one table: corpus x generator, real-only UA, UA "
                    "with the generator, paired ΔUA with CI, MAD, FD, cost; only runs with identical protocol "
                    "settings side by side. Writes leaderboard.md, .csv and .html (nothing is recomputed).")
    parser.add_argument("--out", default="runs", help="a folder of run folders, or one run folder (default ./runs)")
    parser.add_argument("--to", default=None, help="folder for leaderboard.md/.csv/.html (default: --out)")
    return parser


def list_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_bench.py list",
                                     description="List corpora, generators, classifiers, profiles and presets.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--gen", metavar="NAME", default=None,
                        help="list this generator's options instead: type, bounds, default per profile, doc")
    return parser


# ---------------------------------------------------------------------------- commands
#: what an interrupted or failed run keeps: every cell stored before it stopped
CELLS_KEPT = "finished cells are kept in the cell store"


def command_run(args: argparse.Namespace) -> int:
    from .api import read_config_file, run_resolved
    from .bench.resolve import resolve_run_config

    options = run_options(args)
    if args.config:  # the file's options, overridden by those given on the command line
        from_file = read_config_file(args.config)
        given = {key: value for key, value in options.items() if key in args.explicit}
        if "gen_opt" in given:
            given["gen_opt"] = [*from_file.get("gen_opt", []), *given["gen_opt"]]
        options = {**options, **from_file, **given}
    config = resolve_run_config(**options)
    from .bench.runner import default_run_dir  # torch comes with it: after the options are known to be good

    progress = sys.stderr.isatty() and not args.quiet
    run_dir = default_run_dir(config)
    try:
        result = run_resolved(config, progress=progress, mlflow=not args.no_mlflow)
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM in any phase (emoaug.interrupts); finished.json unwritten
        log.error("interrupted by %s: %s; run the same command again to resume", interrupts.signal_name(err),
                  CELLS_KEPT)
        return interrupts.exit_code(err)
    except OSError as err:  # a write outside the atomic writers (those raise WriteFailed)
        if (line := refused_write(err)) is None:
            raise
        raise WriteFailed(f"{line}; {CELLS_KEPT}") from None
    except WriteFailed as err:
        raise WriteFailed(f"{err}; {CELLS_KEPT}") from None
    print(result.rendered)
    print(f"results: {run_dir} (report: report.html)")
    if result.mlflow_run_id is not None:
        print(f"mlflow: run {result.mlflow_run_id} at {result.mlflow_uri}")
    print(result.timings_line)
    return 0


def run_folders(out: Path) -> list[Path]:
    """``out`` itself when it is a run folder, else its subfolders that are (sorted); at least one."""
    from .bench.results import run_folders as folders_under

    if not out.is_dir():
        raise EmoaugError(f"--out: {out} is not a folder")
    found = folders_under(out)
    if not found:
        raise EmoaugError(f"--out: no run folders (with config.json) in {out}")
    return found


def command_leaderboard(args: argparse.Namespace) -> int:
    from .reports.leaderboard import write_leaderboard

    out = Path(args.out)
    if not out.is_dir():
        raise EmoaugError(f"--out: {out} is not a folder")
    to = Path(args.to) if args.to else out
    if to.exists() and not (to.is_dir() and os.access(to, os.W_OK | os.X_OK)):
        raise EmoaugError(f"--to: cannot write into {to}")
    try:
        _, markdown, written = write_leaderboard(out, to)
    except ValueError as err:
        raise EmoaugError(f"--out: {err}") from None
    print(markdown)
    print(f"leaderboard: {', '.join(str(path) for path in written)}")
    return 0


def command_report(args: argparse.Namespace) -> int:
    from .reports.run_report import render_run
    from .bench.results import STORED_RESULTS, load_result, unfinished_reason

    folders = run_folders(Path(args.out))
    for run_dir in folders:
        try:
            reason = unfinished_reason(run_dir, ("config.json", *STORED_RESULTS))
            if reason:
                fix = "to the end first" if reason.startswith("unfinished") else "again to rewrite it"
                raise EmoaugError(f"{run_dir}: {reason}; run the benchmark {fix}")
            result = load_result(run_dir)
        except EmoaugError as err:
            if len(folders) == 1:
                raise
            log.warning("skipped %s", err)  # an unfinished or damaged run among finished ones
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
        "labels_without_items": list(scan.missing),
        "skipped": list(scan.skipped),
        "links": list(scan.links),
    }


def command_describe(args: argparse.Namespace) -> int:
    from .datasets import load_corpus, split_skipped, summarise_skipped

    scan = load_corpus(args.corpus, args.data_root, labels=args.labels, on_bad_file=args.on_bad_file,
                       min_duration=args.min_duration, max_duration=args.max_duration,
                       follow_links=args.follow_links, progress=sys.stderr.isatty() and not args.json)
    info = describe_corpus(scan)
    if args.duplicates:
        info["near_duplicates"] = corpus_near_duplicates(scan, args.preset, args.cache_dir,
                                                         progress=sys.stderr.isatty() and not args.json)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['corpus']} at {info['root']}: {info['n_items']} items, {info['n_speakers']} speakers, "
          f"{info['total_duration_s'] / 60:.1f} min")
    for label, count in info["per_emotion"].items():
        print(f"  {label:<10} {count}")
    if info["excluded_by_label_set"]:
        print(f"  excluded by --labels {args.labels}: {info['excluded_by_label_set']}")
    if info["labels_without_items"]:
        print(f"  no usable items of: {', '.join(info['labels_without_items'])} (a run stops on this)")
    notable, other_files = split_skipped(info["skipped"])
    for entry in notable:
        print(f"  skipped ({entry['stage']}) {entry['path']}: {entry['reason']}")
    for line in summarise_skipped(other_files):  # every path is in --json
        print(f"  {line}")
    for link in info["links"]:
        print(f"  link {link['path']} -> {link['target']}{_link_note(link, args.follow_links)}")
    if args.duplicates:
        found = info["near_duplicates"]
        print(f"  near-duplicates ({found['preset']} log-mel, similarity >= {found['threshold']}): "
              f"{len(found['pairs'])} pair(s)")
        for pair in found["pairs"]:
            print(f"    {pair['path_a']} ~ {pair['path_b']} ({pair['similarity']:.3f}; speakers "
                  f"{pair['speaker_a']}, {pair['speaker_b']})")
    return 0


def corpus_near_duplicates(scan, preset_name: str, cache_dir: str | None, *, progress: bool) -> dict:
    """``describe --duplicates``: every near-duplicate pair within the corpus, whatever the speakers."""
    from .features import FeatureCache, default_cache_root, extract_features
    from .near_duplicates import METHOD, THRESHOLD, near_duplicate_pairs
    from .presets import get_preset

    preset = get_preset(preset_name)
    cache = FeatureCache(cache_dir or default_cache_root(), preset)
    failures: list = []
    features = extract_features(scan.items, preset, cache=cache, lazy=True, failures=failures, progress=progress)
    items = scan.items[scan.items["item_id"].astype(str).isin(list(features))]
    pairs = near_duplicate_pairs(features, items, preset, separate_speakers=False)
    by_id = items.set_index(items["item_id"].astype(str))
    listed = [{"item_a": a, "path_a": by_id.at[a, "path"], "speaker_a": by_id.at[a, "speaker"],
               "item_b": b, "path_b": by_id.at[b, "path"], "speaker_b": by_id.at[b, "speaker"],
               "similarity": similarity} for a, b, similarity in pairs.itertuples(index=False)]
    return {"method": METHOD, "threshold": THRESHOLD, "preset": preset.name, "pairs": listed,
            "not_compared": [str(err) for err in failures]}


def _link_note(link: dict, follow_links: bool) -> str:
    """What became of what a link leaving the root leads to (a link inside it is read like any file)."""
    if not link["outside_root"]:
        return ""
    if follow_links:
        return " (outside the corpus root; read: --follow-links)"
    return " (outside the corpus root; not read: --follow-links reads it)"


def command_list(args: argparse.Namespace) -> int:
    if args.gen:
        return list_generator_options(args.gen, args.json)
    from .classifiers import available_classifiers
    from .config import PROFILES
    from .datasets import available_corpora
    from .generators import available_generators
    from .presets import PRESET_REGISTRY

    listing = {
        "corpora": available_corpora(),
        "generators": available_generators(),
        "classifiers": available_classifiers(),
        "profiles": {name: p.description for name, p in PROFILES.items()},
        "presets": PRESET_REGISTRY.names(),
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


def list_generator_options(name: str, as_json: bool) -> int:
    options = generator_options(name)
    if as_json:
        print(json.dumps({"generator": name, "options": options}))
        return 0
    if not options:
        print(f"{name} takes no options")
        return 0
    print(f"{name} options (--gen-opt {name}.KEY=VALUE):")
    for opt in options:
        bounds = f", {opt['bounds']}" if opt["bounds"] else ""
        print(f"  {opt['name']} ({opt['type']}{bounds}) = {_defaults_text(opt['defaults'])}")
        print(f"      {opt['doc']}")
    return 0


def generator_options(name: str) -> list[dict]:
    """Each option of generator ``name``: type, bounds, doc and its value under each profile."""
    from .bench.resolve import generator_config_under
    from .config import PROFILES
    from .generators import get_generator_class
    from .generators.options import bounds_text, field_types, fields_of, type_name

    cls = get_generator_class(name)
    per_profile = {profile: generator_config_under(profile, name) for profile in PROFILES}
    types_by_name = field_types(cls.Config)

    def describe(f) -> dict:
        doc = f.metadata.get("doc", "")
        if f.name in cls.execution_config:
            doc += " (left out of cell keys: changes how, not what, it computes)"
        return {"name": f.name, "type": type_name(types_by_name[f.name]), "bounds": bounds_text(f),
                "defaults": {profile: config[f.name] for profile, config in per_profile.items()}, "doc": doc}

    return [describe(f) for f in fields_of(cls.Config)]


def _defaults_text(defaults: dict) -> str:
    """``15`` when every profile agrees, else ``smoke 4 | quick 15 | paper 50``."""
    shown = {profile: json.dumps(value) for profile, value in defaults.items()}
    if len(set(shown.values())) == 1:
        return next(iter(shown.values()))
    return " | ".join(f"{profile} {value}" for profile, value in shown.items())


HANDLERS = {
    "run": (run_parser, command_run),
    "describe": (describe_parser, command_describe),
    "list": (list_parser, command_list),
    "report": (report_parser, command_report),
    "leaderboard": (leaderboard_parser, command_leaderboard),
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
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    make_parser, handler = HANDLERS[command]
    args = make_parser().parse_args(argv)
    if command == "run":
        args.explicit = explicit_options(argv)
    configure_logging(getattr(args, "quiet", False))
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print escaped, not as a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    handlers = interrupts.install()  # SIGINT and SIGTERM: one clean path (emoaug.interrupts)
    try:
        return handler(args)
    except KeyboardInterrupt as err:  # outside a run's own handling: options, report, leaderboard, describe
        print(f"emoaug: interrupted by {interrupts.signal_name(err)}", file=sys.stderr)
        return interrupts.exit_code(err)
    except OSError as err:  # a write the disk refused outside the atomic writers: one line as for those
        if (line := refused_write(err)) is None:
            raise
        print(f"emoaug: error: {line}", file=sys.stderr)
        return 2
    except EmoaugError as err:
        print(f"emoaug: error: {err}", file=sys.stderr)
        return 2
    finally:
        if from_command_line:
            interrupts.ignore_from_now_on()  # the process exits next: no late signal inside atexit callbacks
        else:
            interrupts.restore(handlers)  # called in-process (tests, notebooks): leave their handlers as they were


if __name__ == "__main__":
    sys.exit(main())
