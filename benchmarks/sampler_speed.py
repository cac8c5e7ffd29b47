"""DDIM (few steps) vs DDPM (all steps) on one trained diffusion model: speed ratio and Frechet distance.

Target (issue 3): DDIM with 50 steps samples at least 15x faster than DDPM with 1000 steps on the same
trained model, and its Frechet distance (in the fold's real-only judge embedding, against the real
training rows) is within 10 % of DDPM's.

Both samplers run in this one process on the same fitted generator and the same per-class requests, so
the ratios do not depend on the machine. DDIM runs with eta = 1 by default (Song et al.'s stochastic
setting, closest to DDPM's ancestral sampling): on the quick-profile model of the embedded corpus, eta = 0
gave an FD 50 % above DDPM's (2.80 vs 1.87 at 120 items) while eta = 1 gave 1.99 and 1.68 for two seeds,
i.e. within the seed-to-seed noise (the script prints it) of DDPM. Sampling cost does not depend on eta. The model and judge come from the runner's own code path
(fold 0, seed 0 of the chosen corpus and profile; the trained generator is reused from the checkpoint
cache when present).

    python benchmarks/sampler_speed.py                       # embedded corpus, quick profile
    python benchmarks/sampler_speed.py --corpus emodb --data-root ../shared/data/emodb --per-class 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from emoaug.bench.cells import fit_generator, load_judge, run_judge  # noqa: E402
from emoaug.bench.plan import plan_run  # noqa: E402
from emoaug.bench.resolve import resolve_run_config  # noqa: E402
from emoaug.bench.runner import default_run_dir, prepare_workload  # noqa: E402
from emoaug.quality import frechet_distance  # noqa: E402

SPEED_TARGET = 15.0  # DDIM-50 at least this many times faster than DDPM-1000
FD_TOLERANCE = 0.10  # |FD_ddim / FD_ddpm - 1| at most this


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="synthetic")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--per-class", type=int, default=20,
                        help="generated rows per emotion and sampler (default 20: DDPM takes ~12 min on 2 cores)")
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--eta", type=float, default=1.0, help="DDIM eta (default 1: see the module doc)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--gen-opt", action="append", default=[], help="diffusion.KEY=VALUE, as in run_bench.py")
    return parser.parse_args()


def fitted_parts(args: argparse.Namespace, out_dir: str):
    """The run's fold-0 data, real-only judge and fitted diffusion generator (trained here, not restored)."""
    config = resolve_run_config(corpus=args.corpus, data_root=args.data_root, profile=args.profile, gen="diffusion",
                                gen_opt=args.gen_opt, out=out_dir, executor="local", threads=args.threads)
    workload, _, config = prepare_workload(config, default_run_dir(config))
    plan = plan_run(workload, config.experiment)
    judge_spec = plan.judges[0]
    judged = run_judge(judge_spec, workload)
    cell = next(c for c in plan.cells if c.judge_key == judge_spec.key and c.generator.name == "diffusion")
    data = workload.fold_data(cell.fold, cell.seed)
    generator, fit_seconds, _ = fit_generator(cell, workload, data, checkpoint=None)
    return data, load_judge(judged.state, workload), generator, fit_seconds, False


def measure(generator, judge, reference: np.ndarray, request: dict[str, int], seed: int = 0, **sampling) -> dict:
    view = generator.with_sampling(**sampling)
    start = time.perf_counter()
    generated = view.generate(request, seed=seed)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "items_per_s": len(generated) / seconds,
            "fd": frechet_distance(judge.embed(generated), reference)}


def main() -> int:
    args = parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out_dir:
        data, judge, generator, fit_seconds, restored = fitted_parts(args, out_dir)
        reference = judge.embed(data.train)
        request = {label: args.per_class for label in data.train.labels}
        T = generator.schedule.num_timesteps
        ddpm = measure(generator, judge, reference, request, sampler="ddpm", sampling_steps=T)
        ddim = measure(generator, judge, reference, request, sampler="ddim", sampling_steps=args.ddim_steps,
                       eta=args.eta)
        # the same DDIM sampler with other noise: how much FD moves by sampling noise alone at this size
        ddim_again = measure(generator, judge, reference, request, seed=1, sampler="ddim",
                             sampling_steps=args.ddim_steps, eta=args.eta)
        floor = frechet_distance(judge.embed(data.test), reference)

    speedup = ddim["items_per_s"] / ddpm["items_per_s"]
    fd_change = ddim["fd"] / ddpm["fd"] - 1.0
    n = args.per_class * len(request)
    print(f"corpus {args.corpus}, profile {args.profile}, fold 0 seed 0; generator "
          f"{'restored from checkpoint' if restored else f'trained in {fit_seconds:.0f} s'}; "
          f"{n} items per sampler ({args.per_class} per emotion)")
    print("FD = Frechet distance to the real training rows in the real-only judge's embedding "
          f"(real held-out speakers: {floor:.2f})")
    print(f"{'sampler':<22}{'seconds':>10}{'items/s':>10}{'FD':>10}")
    ddim_name = f"DDIM {args.ddim_steps} steps eta {args.eta:g}"
    for name, row in ((f"DDPM {T} steps", ddpm), (ddim_name, ddim), (f"{ddim_name}, seed 1", ddim_again)):
        print(f"{name:<22}{row['seconds']:>10.1f}{row['items_per_s']:>10.2f}{row['fd']:>10.2f}")
    speed_ok, fd_ok = speedup >= SPEED_TARGET, abs(fd_change) <= FD_TOLERANCE
    print(f"speed ratio DDIM/DDPM: {speedup:.1f}x (target >= {SPEED_TARGET:g}x: {'met' if speed_ok else 'MISSED'})")
    print(f"FD ratio DDIM/DDPM: {1 + fd_change:.3f} ({fd_change:+.1%}; target within "
          f"{FD_TOLERANCE:.0%}: {'met' if fd_ok else 'MISSED'}); same sampler, other seed: "
          f"{ddim_again['fd'] / ddim['fd'] - 1:+.1%}")
    return 0 if speed_ok and fd_ok else 1


if __name__ == "__main__":
    sys.exit(main())
