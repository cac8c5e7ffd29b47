"""The run command's options: the parser, its values as keyword options of
:func:`emoaug.bench.resolve.resolve_run_config`, which were given explicitly, and what an experiment file may
give for each (:mod:`emoaug.experiments`). Shared by the command line (:mod:`emoaug.cli`) and the Python API
(:mod:`emoaug.api`); importing it loads nothing heavy.
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Sequence

from .bench.parallelism import EXECUTORS
from .bench.resolve import DEFAULT_GENERATORS, resolve_run_config
from .config import DEFAULT_PROTOCOLS, RAY_CONNECT_TIMEOUT_S, STORE_LOCK_WAIT_S, TRACKING_REQUEST_TIMEOUT_S
from .limits import DEFAULT_MAX_DURATION, DEFAULT_MIN_DURATION


def corpus_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", default="synthetic",
                        help="corpus name (see `list`); default: the embedded synthetic corpus")
    parser.add_argument("--data-root", default=None,
                        help="folder holding the corpus (or set EMOAUG_DATA to a parent folder)")
    parser.add_argument("--labels", default="6class", help="label set: 6class, 4class or all (default 6class)")
    parser.add_argument("--on-bad-file", default="skip", choices=("skip", "fail"),
                        help="skip unusable audio files (listed in the audit) or stop at the first one")
    parser.add_argument("--min-duration", type=float, default=DEFAULT_MIN_DURATION, metavar="SECONDS",
                        help=f"skip clips shorter than this (default {DEFAULT_MIN_DURATION:g} s)")
    parser.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION, metavar="SECONDS",
                        help=f"skip clips longer than this, before decoding them (default {DEFAULT_MAX_DURATION:g} s)")
    parser.add_argument("--follow-links", action="store_true",
                        help="read files reached through a symbolic link that leads outside the corpus root "
                             "(default: skip them with a reason; links inside the root are always read)")


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py",
        description="Benchmark generative data augmentation for speech emotion recognition. "
                    "Other commands: `run_bench.py describe --corpus NAME`, `run_bench.py list`, "
                    "`run_bench.py report --out DIR`.",
    )
    parser.add_argument("--config", default=None, metavar="FILE.toml",
                        help="an experiment file (TOML: these options by name, generators as [generators.NAME] "
                             "tables of their options; see examples/); options given here override it. Every run "
                             "writes its experiment.toml, which runs the same experiment again")
    corpus_options(parser)
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
    parser.add_argument("--reference", default="compare", choices=("compare", "egemaps", "off"),
                        help="the classic real-only reference row in every table: openSMILE ComParE_2016 (compare, "
                             "default) or eGeMAPSv02 (egemaps) functionals + RBF SVM on the same folds; off skips it")
    parser.add_argument("--speaker-norm", action="store_true",
                        help="standardise each speaker's log-mel rows (and the classic reference's functionals) "
                             "with that speaker's own statistics; uses the test speakers' unlabelled audio, so "
                             "every table flags it")
    parser.add_argument("--profile", default="quick",
                        help="smoke, quick (default), paper (published sizes, training cut to 12 GPU-hours per "
                             "corpus) or paper-full (the published training lengths)")
    parser.add_argument("--classifier", default=None, help="cnn_blstm or resnet50 (default: the profile's)")
    parser.add_argument("--preset", default=None, help="log-mel preset: kim2024, malik2023, emogen (default: profile's)")
    parser.add_argument("--split", default="kfold", choices=("kfold", "loso", "paper", "standard"),
                        help="kfold (speaker-independent, default), loso, paper (random 8:2, speaker-dependent), or "
                             "standard (the corpus's own protocol: leave-one-session-out for IEMOCAP and "
                             "MSP-IMPROV, the release partitions for MSP-Podcast, else kfold)")
    parser.add_argument("--allow-near-duplicates", action="store_true",
                        help="run although test items have near-copies (dithered, re-gained, resampled, re-encoded "
                             "or trimmed copies) in training; without it such a run stops as leakage. The pairs are "
                             "in split_audit.json and every table is flagged")
    parser.add_argument("--folds", type=int, default=None, help="number of folds for --split kfold")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds per fold (default: profile's)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--synthetic-ratio", default=None, metavar="R[,R...]",
                        help="synthetic rows per real training row (default: profile's); several, e.g. "
                             "0.25,0.5,1,2,4, also write a UA-vs-ratio curve per generator (each ratio its own "
                             "cells; the tables keep the profile's ratio when listed, else the first)")
    parser.add_argument("--epochs", type=int, default=None, help="override the classifier's maximum epochs")
    parser.add_argument("--val-speakers", type=int, default=None, metavar="N",
                        help="whole speakers per fold held out of training to pick the best epoch (0: none, every "
                             "training speaker trains for the whole schedule). Default: the profile's; where that "
                             "leaves a fold too few training speakers, fewer (down to 0), said in one line. Part "
                             "of every cell's key")
    parser.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16"),
                        help="the classifier's arithmetic (default: the profile's): bf16 runs forward passes under "
                             "bfloat16 autocast; auto picks bf16 on a CPU with AVX-512 BF16 or AMX, else fp32. "
                             "Part of every cell's key")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    parser.add_argument("--executor", default=os.environ.get("EMOAUG_EXECUTOR", "auto"), choices=EXECUTORS,
                        help="where cells run: local (this process), process (a local pool of --jobs workers), "
                             "ray (Ray tasks; pip install -e '.[ray]'); default auto: a process per core on a "
                             "multi-core CPU, else local; $EMOAUG_EXECUTOR sets the default")
    parser.add_argument("--jobs", type=int, default=0,
                        help="concurrent workers for process/ray (default 0: one per core)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("EMOAUG_THREADS") or 0),
                        help="torch CPU threads per worker (default 0: cores / jobs, so they never oversubscribe; "
                             "$EMOAUG_THREADS sets the default)")
    parser.add_argument("--ray-address", default=None,
                        help="address (host:port) of a running Ray cluster (default: start a local Ray instance); "
                             f"a run stops with one line when nothing answers there within "
                             f"{RAY_CONNECT_TIMEOUT_S:g} s")
    parser.add_argument("--store", default=None,
                        help="cell store shared across runs (default <cache>/store): finished cells with the "
                             "same content key are reused by any run")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore stored cells, judges and generator checkpoints: compute everything anew")
    parser.add_argument("--out", default="runs", help="output folder (default ./runs)")
    parser.add_argument("--run-name", default=None,
                        help="run folder name (default: corpus-profile-<config hash>, so a re-run resumes)")
    parser.add_argument("--cache-dir", default=None,
                        help="feature/corpus cache (default $EMOAUG_CACHE or ~/.cache/emoaug; 'off' disables)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default sqlite:///<out>/mlflow.db). A server gets "
                             f"{TRACKING_REQUEST_TIMEOUT_S:g} s per request, no retries; another run's lock on a "
                             f"sqlite store is waited for up to {STORE_LOCK_WAIT_S:g} s; either failure is one "
                             "warning and the local results are kept")
    parser.add_argument("--no-mlflow", action="store_true", help="write local results only")
    parser.add_argument("--quiet", action="store_true", help="print only the final table and errors")
    return parser


def run_options(args: argparse.Namespace) -> dict:
    """The parsed command line as keyword options of :func:`emoaug.bench.resolve.resolve_run_config`."""
    names = inspect.signature(resolve_run_config).parameters
    return {name: value for name, value in vars(args).items() if name in names}


def run_option_schema() -> dict:
    """Option name -> what an experiment file may give for it (emoaug.experiments), from the run parser."""
    from .experiments import OptionKind

    names = inspect.signature(resolve_run_config).parameters
    schema = {}
    for action in run_parser()._actions:
        if action.dest not in names:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            kind = OptionKind(bool)
        elif isinstance(action, argparse._AppendAction):
            kind = OptionKind(str, repeatable=True)
        else:
            kind = OptionKind(action.type or str, tuple(action.choices) if action.choices else None)
        schema[action.dest] = kind
    return schema


def explicit_options(argv: Sequence[str]) -> set[str]:
    """The run options given on the command line (not left at their defaults)."""
    parser = run_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(list(argv))))
