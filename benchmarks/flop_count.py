"""Counting what a training step and a sampling unit cost: FLOPs (``torch.utils.flop_counter``), activation
bytes saved for backward (saved-tensor hooks) and, optionally, seconds; and the GPU the projections assume.

Shared by ``benchmarks/paper_cost.py`` (counts on this CPU, projects hours) and ``benchmarks/gpu_check.py``
(counts the same steps on the GPU and sets its measured rates beside the projection); it imports neither.
"""

from __future__ import annotations

import time
from typing import Any

#: the GPU the GPU-hours assume: NVIDIA H100 SXM5 and H200 SXM share the Hopper GH100 compute (132 SMs); the H200
#: adds memory (141 GB HBM3e), not FLOP/s. Dense peaks from NVIDIA's data sheets (the 1,979 TFLOP/s bf16 figure
#: assumes 2:4 sparsity).
GPU = {"name": "NVIDIA H100 SXM5 / H200 SXM", "bf16_dense_tflops": 989.4, "tf32_dense_tflops": 494.7,
       "fp32_tflops": 66.9,
       # the share of the bf16 dense peak the whole workload sustains under bf16 autocast: small convolutions,
       # batch 32, GroupNorm, a BLSTM and per-step Python make these models far from peak (ResNet-50 training
       # reaches ~10-15 % of an A100's bf16 peak in tuned codebases); 10 % is the assumption gpu_check tests
       "utilisation": 0.10}
SUSTAINED_FLOPS = GPU["bf16_dense_tflops"] * 1e12 * GPU["utilisation"]
#: rows per measured step: counts are per row, so any small batch gives the same FLOPs and bytes per row
COUNT_BATCH = 2
#: (model, what) -> the rate key of gpu_check.project_hours it gives
RATE_OF = {("resnet50", "train"): "classifier_train_steps_per_s",
           ("resnet50", "sample"): "classifier_infer_items_per_s",
           ("ser_cnn_blstm", "train"): "ser_train_steps_per_s", ("dcgan", "train"): "dcgan_train_steps_per_s",
           ("dcgan", "sample"): "dcgan_items_per_s", ("diffusion", "train"): "diffusion_train_steps_per_s",
           ("diffusion", "sample"): "diffusion_row_steps_per_s"}


# =============================================================================================== counting
def _torch():
    import torch

    return torch


class Counted:
    """FLOPs and saved-for-backward bytes of what runs inside ``with Counted() as c:``."""

    def __enter__(self):
        torch = _torch()
        from torch.utils.flop_counter import FlopCounterMode

        # held until exit, so a freed storage's address cannot come back as another one's key
        self.storages: dict[int, Any] = {}
        self._flops = FlopCounterMode(display=False)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._flops.__enter__()
        self._hooks.__enter__()
        self._started = time.perf_counter()
        return self

    def _pack(self, tensor):
        if not (tensor.is_leaf and tensor.requires_grad):  # parameters are weights, not activations
            storage = tensor.untyped_storage()
            self.storages[storage._cdata] = storage
        return tensor

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._started
        self._hooks.__exit__(*exc)
        self._flops.__exit__(*exc)
        self.flops = int(self._flops.get_total_flops())
        self.saved_bytes = int(sum(storage.nbytes() for storage in self.storages.values()))
        self.storages.clear()
        return False


def _timed(call, repeats: int) -> float:
    """Seconds per call of ``call`` after one warm-up call."""
    call()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats


def bench_cost(bench, repeats: int = 0) -> dict[str, Any]:
    """One gpu_check bench, counted (and, with ``repeats``, timed) at ``COUNT_BATCH`` rows on its device: FLOPs
    per training step at the profile's batch, per sampling unit, saved bytes per row. gpu_check calls this on
    the GPU, so its measured rates meet the same counts."""
    with bench.context():
        run = bench.run(0, False, False)
        full_batch = run.batch
        run.set_batch(COUNT_BATCH)
        run.second_batch = COUNT_BATCH
        with Counted() as train:
            run.step()
        with Counted() as sample:
            units = run.second()
        train_s = _timed(run.step, repeats) if repeats else None
        sample_s = _timed(run.second, max(1, repeats // 2)) if repeats else None
    per_row = train.flops / COUNT_BATCH
    return {"batch": full_batch, "params": _parameters(run),
            "train_flops_per_step": per_row * full_batch, "train_flops_per_row": per_row,
            "activation_bytes_per_row": train.saved_bytes / COUNT_BATCH,
            "sample_unit": bench.second_metric.removesuffix("_per_s"), "sample_flops_per_unit": sample.flops / units,
            "cpu_train_flops_per_s": train.flops / train_s if train_s else None,
            "cpu_sample_flops_per_s": sample.flops / sample_s if sample_s else None}


def _parameters(run) -> int:
    modules = [run.model] if hasattr(run, "model") else list(run.gen.networks().values())
    if hasattr(run, "gen") and getattr(run.gen, "ema", None) is not None:
        modules = [run.gen.model]  # the EMA copy is not trained
    return int(sum(p.numel() for m in modules for p in m.parameters()))


def flops_per_unit(models: dict[str, Any]) -> dict[str, float]:
    """FLOPs of each work unit ``gpu_check.project_hours`` counts, keyed by its rate name."""
    out = {}
    for (model, what), key in RATE_OF.items():
        row = models[model]
        out[key] = row["train_flops_per_step"] if what == "train" else row["sample_flops_per_unit"]
    return out


def projected_rates(models: dict[str, Any], flops_per_s: float = SUSTAINED_FLOPS) -> dict[str, float]:
    """Units per second at a sustained ``flops_per_s`` (default: ``GPU``'s): what gpu_check's measured rates
    are set beside."""
    return {key: flops_per_s / flops for key, flops in flops_per_unit(models).items()}
