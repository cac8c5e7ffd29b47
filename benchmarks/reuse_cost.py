"""Cost of adding one generator to a finished comparison, against that generator's own cells.

Target (issue 10): after ``--gen none,specaugment,dcgan`` has finished, ``--gen none,specaugment,dcgan,vae``
(another ``--out``, the same cell store) takes <= 1.2 x the time of the vae cells alone: every stored cell
is reused, only vae's cells are computed. The reference is the compute time the vae cells themselves
recorded (generator fit, sampling, classifiers and protocol arms; summed over cells, in-process executor),
so the ratio is the whole second process (start-up, corpus scan, cached features, lookup of stored cells,
tables, figures and audio) over the work that could not be avoided.

    python benchmarks/reuse_cost.py                        # quick profile, 1 seed (5 vae cells)
    python benchmarks/reuse_cost.py --args "--seeds 3"
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import clean_env, time_run_bench

TARGET = 1.2


def run(gen: str, out: Path, store: Path, extra: list[str], env: dict) -> float:
    return time_run_bench(["--gen", gen, "--out", str(out), "--store", str(store), "--no-mlflow", "--quiet",
                           "--executor", "local", *extra], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="none,specaugment,dcgan")
    parser.add_argument("--add", default="vae")
    parser.add_argument("--args", default="--profile quick --seeds 1", help="extra run_bench.py arguments")
    args = parser.parse_args()
    env = clean_env()
    extra = args.args.split()
    with tempfile.TemporaryDirectory() as tmp:
        tmp, store = Path(tmp), Path(tmp) / "store"
        base_s = run(args.base, tmp / "base", store, extra, env)
        added_s = run(f"{args.base},{args.add}", tmp / "added", store, extra, env)
        run_dir = next((tmp / "added").iterdir())
        index = json.loads((run_dir / "cells.json").read_text())
        computed = [c for c in index["cells"] if c["computed_by_this_run"]]
        own_s = 0.0
        for cell in computed:
            meta = json.loads((run_dir / "cells" / cell["generator"] / f"fold{cell['fold']}_seed{cell['seed']}.json")
                              .read_text())
            own_s += sum(v for v in meta["seconds"].values() if v == v)
    generators = sorted({c["generator"] for c in computed})
    ratio = added_s / own_s
    print(f"run_bench.py {' '.join(extra)}: --gen {args.base} took {base_s:.0f} s")
    print(f"adding {args.add}: {added_s:.0f} s for the whole process; computed {len(computed)} of "
          f"{len(index['cells'])} cells (generators: {', '.join(generators)}), whose own compute took {own_s:.0f} s")
    print(f"ratio {ratio:.2f} (target <= {TARGET}: {'met' if ratio <= TARGET and generators == [args.add] else 'MISSED'})")
    return 0 if ratio <= TARGET and generators == [args.add] else 1


if __name__ == "__main__":
    sys.exit(main())
