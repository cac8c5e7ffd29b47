"""How close the quick classifier's training comes to the CPU's limit, and what the speed levers give.

Counts the FLOPs of one training step of the ``quick`` profile's CNN-BLSTM on ``emogen`` rows (128 mels x 173
frames, batch 32) with ``torch.utils.flop_counter.FlopCounterMode`` (forward + backward; torch counts a
multiply-add as 2 FLOPs and counts convolutions and matrix products, not element-wise work or the LSTM's
gates, which makes the figure a lower bound), times whole training runs of the same rows on one thread, and
prints the achieved GFLOP/s beside the machine's peak for one core:

    peak = clock x FLOPs per cycle, clock from /proc/cpuinfo (``cpu MHz``, the nominal rate), FLOPs per cycle
    = 2 FMA ports x vector lanes x 2 (AVX-512: 16 fp32 lanes -> 64; AVX2: 8 -> 32). The bf16 peak with AMX
    (``amx_bf16``) is 1,024 bf16 multiply-adds per cycle per core (2,048 FLOPs).

Then each lever, timed on the same rows in the same process (ratio = baseline seconds / lever seconds):
``bf16`` (``torch.autocast("cpu", torch.bfloat16)`` around forward and loss), ``batch64`` (batch size per
thread 64 instead of 32: fewer, larger matrix products), ``no-mkldnn`` (oneDNN off, to show what it gives), and
``compile`` (``torch.compile`` of the model; skipped with the reason when it fails here). Channels-last does not
apply: the network's convolutions are 1-D (``[B, mels, frames]``), for which torch has no channels-last layout.
Whether a lever may be adopted is a question of UA, not speed: a lever that changes the numbers must keep the
paired real-only UA over 5 folds x 3 seeds within noise (``benchmarks/classifier_ablation.py``).

    python benchmarks/classifier_flops.py                # 360 rows (an EmoDB training fold), 3 epochs per timing
    python benchmarks/classifier_flops.py --rows 2000 --epochs 2
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emoaug.classifiers.training import build_model  # noqa: E402
from emoaug.config import PROFILES  # noqa: E402
from emoaug.features import get_preset  # noqa: E402


def cpu_peak() -> tuple[float, int, float, str]:
    """(GHz, fp32 FLOPs per cycle, bf16 FLOPs per cycle, how it was derived) for one core."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mhz = re.findall(r"cpu MHz\s*:\s*([\d.]+)", text)
    flags = set(re.findall(r"^flags\s*:(.*)$", text, re.M)[0].split()) if "flags" in text else set()
    ghz = float(mhz[0]) / 1000 if mhz else float("nan")
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fp32 = 2 * lanes * 2
    bf16 = 2048.0 if "amx_bf16" in flags else (2.0 * fp32 if "avx512_bf16" in flags else float(fp32))
    how = (f"{ghz:.2f} GHz (cpuinfo) x {fp32} fp32 FLOPs/cycle (2 FMA x {lanes} lanes x 2"
           f"{', AVX-512' if lanes == 16 else ''}); bf16 {bf16:.0f} FLOPs/cycle"
           f"{' (AMX tiles)' if 'amx_bf16' in flags else ''}")
    return ghz, fp32, bf16, how


def quick_model(n_mels: int, n_classes: int) -> torch.nn.Module:
    settings = PROFILES["quick"].classifiers["cnn_blstm"]
    return build_model(settings.arch, n_mels=n_mels, n_classes=n_classes, **settings.arch_kwargs)


def step_flops(model: torch.nn.Module, batch: torch.Tensor, y: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss = torch.nn.functional.cross_entropy(model(batch - batch.mean(dim=-1, keepdim=True)), y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def train_seconds(x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int, bf16: bool = False,
                  compile_model: bool = False, n_classes: int = 6) -> float:
    """Seconds of ``epochs`` of the quick protocol's training loop (Adam, cosine-free: the schedule costs nothing)."""
    torch.manual_seed(0)
    model = quick_model(x.shape[1], n_classes)
    if compile_model:
        model = torch.compile(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in torch.split(order, batch_size):
            if len(batch) < 2:
                continue
            rows = x[batch]
            rows = rows - rows.mean(dim=-1, keepdim=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = torch.nn.functional.cross_entropy(model(rows), y[batch])
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=360, help="training rows (an EmoDB training fold: ~360)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timing")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the default run: 1 per worker)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset("emogen")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.rows, preset.n_mels, preset.frames, generator=generator)
    y = torch.randint(0, 6, (args.rows,), generator=generator)

    batch_size = PROFILES["quick"].classifiers["cnn_blstm"].batch_size
    flops_per_row = step_flops(quick_model(preset.n_mels, 6), x[:batch_size], y[:batch_size]) / batch_size
    ghz, fp32, bf16, how = cpu_peak()
    peak_fp32, peak_bf16 = args.threads * ghz * fp32, args.threads * ghz * bf16
    total = flops_per_row * args.rows * args.epochs
    print(f"quick CNN-BLSTM on {preset.n_mels} x {preset.frames} rows: {flops_per_row / 1e6:.1f} MFLOP per row per "
          f"training step (forward + backward, counted)")
    print(f"peak for {args.threads} thread(s): {peak_fp32:.0f} GFLOP/s fp32, {peak_bf16:.0f} GFLOP/s bf16 ({how})")

    def timed(name: str, **options) -> float | None:
        train_seconds(x[: 4 * batch_size], y[: 4 * batch_size], epochs=1, batch_size=options.get("batch_size",
                      batch_size), bf16=options.get("bf16", False), compile_model=options.get("compile_model", False))
        seconds = train_seconds(x, y, epochs=args.epochs, **{"batch_size": batch_size, **options})
        achieved = total / seconds / 1e9
        peak = peak_bf16 if options.get("bf16") else peak_fp32
        print(f"{name:10s} {seconds:7.2f} s  {achieved:6.1f} GFLOP/s  {100 * achieved / peak:5.1f} % of its peak  "
              f"x{base / seconds if base else 1.0:.2f} vs fp32", flush=True)
        return seconds

    print(f"\n{args.epochs} epochs of {args.rows} rows each (first a warm-up):")
    base = None
    base = timed("fp32")
    timed("bf16", bf16=True)
    timed("batch64", batch_size=2 * batch_size)
    with_mkldnn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        timed("no-mkldnn")
    finally:
        torch.backends.mkldnn.enabled = with_mkldnn
    try:
        timed("compile", compile_model=True)
    except Exception as err:  # no compiler, or a graph torch cannot compile here
        print(f"compile    skipped: {type(err).__name__}: {str(err).splitlines()[0][:160]}")


if __name__ == "__main__":
    main()
