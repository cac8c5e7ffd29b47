"""Wall time of the quick-profile run with every neural generator, against the 30-minute target.

Target (issue 3): ``python run_bench.py --gen vae,dcgan,cyclegan,diffusion --corpus synthetic`` (quick
profile) completes on a 2-core CPU in under 30 minutes.

That target was set when the quick profile ran one seed and only the real and real+synthetic arms. Since
issue 4 the quick default is 3 seeds with the augment and clarity protocols (three times the cells, plus a
synthetic-only classifier per generator cell). ``--seeds`` and ``--protocol`` are passed through, so both
the original configuration (``--seeds 1 --protocol none``) and
the current default (no flags) can be measured; the printout names what ran.

The run goes to a temporary output folder and a temporary cell store, so no finished cell is reused. By default it also uses a
temporary cache, so nothing is reused at all: the embedded corpus is synthesised, its features
extracted and every generator trained from scratch, as on a fresh machine. ``--keep-cache`` uses the
normal cache instead (corpus and features reused; trained generators reused too, which then measures
a re-run rather than a first run).

    python benchmarks/quick_walltime.py
    python benchmarks/quick_walltime.py --corpus emodb --data-root ../shared/data/emodb
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 30 * 60
GENERATORS = "vae,dcgan,cyclegan,diffusion"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="synthetic")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--gen", default=GENERATORS)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seeds", default=None, help="passed to run_bench.py (default: the profile's)")
    parser.add_argument("--protocol", default=None, help="passed to run_bench.py (default: run_bench.py's)")
    parser.add_argument("--keep-cache", action="store_true", help="reuse the normal cache (see module doc)")
    parser.add_argument("--out", default=None,
                        help="keep the run's results in this (new or empty) folder instead of a temporary one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.out) if args.out else Path(tmp) / "runs"
        if runs.exists() and any(runs.iterdir()):
            parser.error(f"--out {runs} is not empty: finished cells there would be reused")
        command = [sys.executable, str(ROOT / "run_bench.py"), "--gen", args.gen, "--corpus", args.corpus,
                   "--profile", args.profile, "--out", str(runs), "--store", str(Path(tmp) / "store"),
                   "--no-mlflow"]
        if args.data_root:
            command += ["--data-root", args.data_root]
        for flag, value in (("--seeds", args.seeds), ("--protocol", args.protocol)):
            if value is not None:
                command += [flag, str(value)]
        if not args.keep_cache:
            command += ["--cache-dir", str(Path(tmp) / "cache")]
        start = time.perf_counter()
        done = subprocess.run(command, env=os.environ.copy())
        seconds = time.perf_counter() - start
        timings = next(runs.glob("*/timings.csv"), None)
        per_generator = pd.read_csv(timings).groupby("generator").sum(numeric_only=True) if timings else None

    print("command:", " ".join(command[1:]))
    print(f"exit code {done.returncode}; wall time {seconds / 60:.1f} min on {os.cpu_count()} CPU cores "
          f"({'normal cache' if args.keep_cache else 'empty cache: corpus, features and generators from scratch'})")
    if per_generator is not None:
        columns = [c for c in ("generator_fit_s", "generate_s", "classifier_s") if c in per_generator]
        print("seconds summed over folds and seeds:")
        print(per_generator[columns].round(1).to_string())
    ratio = seconds / TARGET_SECONDS
    print(f"wall time / 30-minute target: {ratio:.2f} ({'met' if ratio < 1 else 'MISSED'})")
    return 0 if done.returncode == 0 and ratio < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
