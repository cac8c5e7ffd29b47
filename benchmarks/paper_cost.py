"""What the `paper` profile costs, from counted FLOPs: per model, per corpus, on this CPU and on one GPU.

For every paper-size model -- the ResNet-50 classifier on kim2024 rows (80 x 862), the diffusion generator's
Table 4 U-Net (1-D, ``unet=1d``) with its emotion-embedding CNN-BLSTM, the paper DCGAN, CycleGAN and VAE -- it

* counts the FLOPs of one training step and of one sampling unit with ``torch.utils.flop_counter.FlopCounterMode``
  (a multiply-add is 2 FLOPs; convolutions and matrix products only, as the counter does), running the project's
  own training-step code: the step bodies of ``benchmarks/gpu_check.py``'s benches for the models the projection
  needs, ``fit`` with 1 and 3 steps (the difference) for CycleGAN and VAE;
* counts the activation memory per row: the bytes of every tensor saved for backward in one training step
  (``torch.autograd.graph.saved_tensors_hooks``, each storage once, parameters left out);
* times a few of those steps on this CPU (at 2 rows a step: FLOPs and saved bytes per row are exact at any batch,
  the CPU's FLOP/s is the figure measured at 2 rows);
* projects the `paper` and `paper-full` profiles (none + dcgan + diffusion, 5 folds x 3 seeds, protocols augment
  and clarity, worst case: every classifier runs all its epochs) on EmoDB (535 files) and RAVDESS (1,440) with
  ``gpu_check.project_hours``: in CPU-hours at the FLOP/s measured here (one thread per model, contended if the
  machine is shared) and in GPU-hours at ``GPU``'s sustained rate (its peak x the utilisation assumed below), and
  prints the `paper` sizing that fits ``gpu_check.BUDGET_HOURS`` per corpus (``gpu_check.recommend_sizing``).

The FLOPs per work unit (``flops_per_unit``) and the GPU rate they imply (``projected_rates``) are what
``gpu_check.py`` imports, so one GPU run sets its measured steps/s beside this projection.

    python benchmarks/paper_cost.py --json paper_cost.json     # ~2 minutes on one CPU thread
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import gpu_check  # noqa: E402  (pure projection functions; torch is imported lazily there)
from benchmarks.flop_count import (COUNT_BATCH, GPU, RATE_OF, SUSTAINED_FLOPS, Counted, _timed,  # noqa: E402,F401
                                   _torch, bench_cost, flops_per_unit, projected_rates)

def bench_costs(settings: dict[str, Any], repeats: int, toy: bool = False) -> dict[str, Any]:
    """Training step and sampling unit of gpu_check's benches (ResNet-50, the emotion CNN-BLSTM, DCGAN, the
    diffusion generator) on this CPU."""
    torch = _torch()
    sizes = gpu_check.model_sizes(settings, toy)
    return {bench.name: bench_cost(bench, repeats)
            for bench in gpu_check.make_benches(sizes, settings, torch.device("cpu"))}


def fit_costs(settings: dict[str, Any], name: str, config: dict[str, Any], repeats: int, toy: bool) -> dict[str, Any]:
    """One training step of CycleGAN or VAE, as ``fit`` runs it: ``fit`` with 3 steps minus ``fit`` with 1
    (setup cancels), over 2; sampling: ``generate`` of ``COUNT_BATCH`` rows of one emotion."""
    from emoaug.featureset import FeatureSet
    from emoaug.generators import get_generator_class

    torch = _torch()
    sizes = gpu_check.model_sizes(settings, toy)
    labels = ("neutral", "angry", "happy", "sad", "fear", "disgust")
    n = max(4 * COUNT_BATCH, 12)
    gen = torch.Generator().manual_seed(1234)
    rows = FeatureSet(x=torch.randn(n, sizes["n_mels"], sizes["n_frames"], generator=gen).clamp(-1, 1),
                      y=torch.arange(n) % len(labels), labels=labels, item_ids=[f"row{i}" for i in range(n)],
                      speakers=[f"s{i % 2}" for i in range(n)])
    cls = get_generator_class(name)
    full_batch = int(config["batch_size"])
    small = {**config, "batch_size": min(COUNT_BATCH, full_batch), "seed": 0}
    if name == "cyclegan":
        small["identity_steps"] = None  # every measured step pays the identity loss, as the first 10,000 do
    counted, seconds = {}, {}
    for steps in (1, 3):
        with Counted() as c:
            fitted = cls(**{**small, "steps": steps}).fit(rows)
        counted[steps], seconds[steps] = c, c.seconds
    with Counted() as sample:
        fitted.generate({"angry": COUNT_BATCH}, seed=1)
    sample_s = _timed(lambda: fitted.generate({"angry": COUNT_BATCH}, seed=1), max(1, repeats // 2))
    batch = small["batch_size"]
    step_flops = (counted[3].flops - counted[1].flops) / 2
    per_row = step_flops / batch
    params = sum(p.numel() for key, m in fitted.networks().items() if key != "ema" for p in m.parameters())
    return {"batch": full_batch, "params": int(params), "train_flops_per_step": per_row * full_batch,
            "train_flops_per_row": per_row, "activation_bytes_per_row": counted[1].saved_bytes / batch,
            "sample_unit": "items", "sample_flops_per_unit": sample.flops / COUNT_BATCH,
            "cpu_train_flops_per_s": step_flops / max(1e-9, (seconds[3] - seconds[1]) / 2),
            "cpu_sample_flops_per_s": sample.flops / sample_s if sample.flops else None,
            "note": "activation bytes: saved for backward in one whole fit() step (G and D updates summed)"}


def unet2d_for_comparison(settings: dict[str, Any]) -> dict[str, Any]:
    """The 2-D U-Net the `paper` profile used before issue 25 (widths 256/512/1024, two residual blocks per level,
    self-attention in the middle, on 80 x 862 as a 1-channel image), counted on torch's meta device (nothing is
    allocated): FLOPs and saved bytes of one training step of one row."""
    torch = _torch()
    from emoaug.generators.diffusion.generator import build_denoiser

    cfg = {**settings["diffusion_config"], "unet": "2d", "patch_size": 1, "stem_channels": 0, "num_res_blocks": 2,
           "attention_at": [], "mid_attention": True}
    with torch.device("meta"):
        net = build_denoiser(cfg, settings["n_mels"])
        x = torch.randn(1, settings["n_mels"], settings["n_frames"])
        t, cond = torch.zeros(1, dtype=torch.long), torch.randn(1, cfg["cond_dim"])
        with Counted() as c:
            net(x, t, cond).square().mean().backward()
    return {"params": int(sum(p.numel() for p in net.parameters())), "train_flops_per_row": c.flops,
            "activation_bytes_per_row": c.saved_bytes, "config": {k: cfg[k] for k in
                                                                  ("base_channels", "channel_mults", "num_res_blocks")}}


def count_all(settings: dict[str, Any], repeats: int = 2, toy: bool = False) -> dict[str, Any]:
    torch = _torch()
    torch.set_num_threads(1)
    models = bench_costs(settings, repeats, toy)
    for name in ("cyclegan", "vae"):
        config = {**settings[f"{name}_config"], **(TOY_FIT_SIZES[name] if toy else {})}
        models[name] = fit_costs(settings, name, config, repeats, toy)
    return models


#: --toy: CycleGAN and VAE as small as gpu_check's toy models (16 x 48 rows)
TOY_FIT_SIZES = {"cyclegan": {"channels": 4, "residual_channels": 16, "n_blocks": 1, "disc_channels": 4,
                              "crop_frames": 16},
                 "vae": {"widths": (4, 8)}}


# =============================================================================================== projecting
def cpu_rates(models: dict[str, Any]) -> dict[str, float]:
    """Units per second at the FLOP/s each model reached on this CPU."""
    out = {}
    for (model, what), key in RATE_OF.items():
        row = models[model]
        speed = row["cpu_train_flops_per_s"] if what == "train" else row["cpu_sample_flops_per_s"]
        out[key] = speed / flops_per_unit(models)[key]
    return out


def projections(models: dict[str, Any], profiles: tuple[str, ...] = ("paper", "paper-full")) -> dict[str, Any]:
    corpora = gpu_check.corpus_counts()
    gpu, cpu = projected_rates(models), cpu_rates(models)
    out = {}
    for profile in profiles:
        settings = gpu_check.paper_settings(profile)
        out[profile] = {"settings": {k: settings[k] for k in ("classifier_epochs", "dcgan_steps",
                                                              "diffusion_train_steps")},
                        "gpu_hours": {name: gpu_check.project_hours(gpu, corpus, settings)
                                      for name, corpus in corpora.items()},
                        "cpu_hours": {name: gpu_check.project_hours(cpu, corpus, settings)
                                      for name, corpus in corpora.items()}}
    full = gpu_check.paper_settings("paper-full")
    out["sizing"] = gpu_check.recommend_sizing(gpu, corpora, full)
    return out


# =============================================================================================== reporting
def _g(value: float, unit: float = 1e9) -> str:
    return f"{value / unit:,.1f}"


def report(models: dict[str, Any], unet2d: dict[str, Any], plan: dict[str, Any], batch_memory: int) -> None:
    print(f"\nGPU assumed: {GPU['name']}: bf16 dense {GPU['bf16_dense_tflops']} TFLOP/s, fp32 {GPU['fp32_tflops']} "
          f"TFLOP/s; sustained {GPU['utilisation']:.0%} of bf16 dense = {SUSTAINED_FLOPS / 1e12:.1f} TFLOP/s\n")
    print("| model | params | batch | GFLOP / training step | GFLOP / row (train) | activations / row | "
          f"at batch {batch_memory} | GFLOP / sampling unit | CPU GFLOP/s (train, 1 thread) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, row in {**models, "diffusion 2-D U-Net (before)": {**unet2d, "batch": 32}}.items():
        act = row["activation_bytes_per_row"]
        print(f"| {name} | {row['params'] / 1e6:.1f} M | {row['batch']} | "
              f"{_g(row['train_flops_per_row'] * row['batch'])} | {_g(row['train_flops_per_row'])} | "
              f"{act / 2**20:,.0f} MiB | {act * batch_memory / 2**30:,.1f} GiB | "
              f"{_g(row['sample_flops_per_unit']) if 'sample_flops_per_unit' in row else '-'} "
              f"({row.get('sample_unit', '')}) | "
              f"{_g(row['cpu_train_flops_per_s']) if 'cpu_train_flops_per_s' in row else '-'} |")
    print("\n| profile | classifier epochs | DCGAN steps | diffusion steps | corpus | GPU-hours (none / dcgan / "
          "diffusion = total) | CPU-hours at the measured rate |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for profile in ("paper", "paper-full"):
        p = plan[profile]
        s = p["settings"]
        for corpus, hours in p["gpu_hours"].items():
            cpu = p["cpu_hours"][corpus]["total"]
            print(f"| {profile} | {s['classifier_epochs']} | {s['dcgan_steps']:,} | {s['diffusion_train_steps']:,} | "
                  f"{corpus} | {hours['none']:.1f} / {hours['dcgan']:.1f} / {hours['diffusion']:.1f} = "
                  f"**{hours['total']:.1f}** | {cpu:,.0f} |")
    sizing = plan["sizing"]
    print(f"\nsizing that fits {sizing['budget_hours']} GPU-hours per corpus (common scale {sizing['scale']:.3f} of "
          f"the published counts): classifier_epochs {sizing['classifier_epochs']}, dcgan_steps "
          f"{sizing['dcgan_steps']}, diffusion_train_steps {sizing['diffusion_train_steps']} -> "
          + ", ".join(f"{c} {h:.1f} h" for c, h in sizing["hours"].items()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default=None, help="write every figure to this JSON file")
    parser.add_argument("--repeats", type=int, default=2, help="timed training steps per model (after a warm-up)")
    parser.add_argument("--toy", action="store_true", help="tiny shapes of the same models (seconds; tests)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    settings = gpu_check.paper_settings("paper")
    models = count_all(settings, args.repeats, args.toy)
    unet2d = unet2d_for_comparison(settings)  # on the meta device: nothing allocated, even at paper size
    plan = projections(models)
    report(models, unet2d, plan, batch_memory=int(settings["diffusion_batch_size"]))
    results = {"gpu": GPU, "sustained_flops": SUSTAINED_FLOPS, "count_batch": COUNT_BATCH, "models": models,
               "unet2d_before": unet2d, "flops_per_unit": flops_per_unit(models),
               "projected_gpu_rates": projected_rates(models), "cpu_rates": cpu_rates(models), "plan": plan,
               "toy": args.toy, "elapsed_s": time.perf_counter() - started}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
