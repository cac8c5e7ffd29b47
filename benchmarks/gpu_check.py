"""One prepared GPU check: paper-size speed, memory and precision of the real models, and the paper profile's cost.

On the `paper` profile's sizes (kim2024 preset rows of 80 x 862; the ResNet-50 classifier; the diffusion
generator's Table 4 1-D U-Net with its emotion-embedding CNN-BLSTM; the paper DCGAN) it measures, on random inputs
of the real shapes and with the project's own classes and training-step code:

* training steps/s and peak memory of each model under fp32, bf16 autocast, channels_last and
  bf16 + channels_last (channels_last is skipped for the 1-D CNN-BLSTM: it applies to 4-D tensors only);
* inference items/s of the classifier (validation passes), sampled items/s of DCGAN, and denoising
  row-steps/s of the diffusion sampler (a few DDIM steps are timed and extrapolated to the paper's 50);
* CPU-vs-device agreement: the same weights and input, forward on CPU fp32 vs the device under each setting;
* a mixed-precision proxy: K steps from the same init and data under fp32 and bf16, against two fp32 seeds.

Every measurement is time-boxed (a fixed number of seconds after warm-up, not a fixed step count), so the
whole script keeps within ``--budget-s`` (default 420 s: under 8 minutes on one GPU). From the best setting
that passed the agreement check (and, for bf16, the proxy; and fits an 80 GiB H100) it projects the GPU-hours
of the full `paper` profile (none + dcgan + diffusion, 5 folds x 3 seeds, worst case: every classifier runs
all its epochs) on EmoDB and RAVDESS, prints a `paper` sizing that fits 12 GPU-hours per corpus (cut from
`paper-full`'s published lengths), and sets the measured rates beside those ``benchmarks/paper_cost.py`` projects
from the FLOPs it counts on this device (``check_projection``).

    python benchmarks/gpu_check.py --json gpu.json              # paper sizes on cuda (if available), < 8 min
    python benchmarks/gpu_check.py --toy --device cpu --json x  # tiny shapes on a CPU in seconds (tests run it)

The projection and sizing functions (``project_hours``, ``recommend_sizing``) are pure and import no torch.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()  # the budget counts from here (before torch is imported)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import csv  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> (bf16 autocast, channels_last)
PRECISIONS: dict[str, tuple[bool, bool]] = {
    "fp32": (False, False),
    "bf16": (True, False),
    "channels_last": (False, True),
    "bf16+channels_last": (True, True),
}
#: agreement tolerance on max|device - cpu| / max|cpu|: fp32 on CUDA convolves in TF32 by default (cuDNN)
TOLERANCE = {False: 1e-2, True: 5e-2}
#: allocator memory an 80 GB H100 leaves a process (torch reports about 79.1 GiB in all; the CUDA context takes
#: some): on a larger GPU the script caps itself to this, so a batch that fits here fits an H100
H100_MEMORY_GIB = 78.0
BUDGET_HOURS = 12.0
#: file counts of the corpora (all emotions) and their speakers; items per class come from Kim & Lee Table 1
CORPORA = {"emodb": {"files": 535, "speakers": 10}, "ravdess": {"files": 1440, "speakers": 24}}
TABLE1 = ROOT / "emoaug" / "reference" / "kim2024_table01_counts.csv"
#: rate names the projection needs (see ``project_hours``)
RATE_KEYS = ("classifier_train_steps_per_s", "classifier_infer_items_per_s", "ser_train_steps_per_s",
             "dcgan_train_steps_per_s", "dcgan_items_per_s", "diffusion_train_steps_per_s",
             "diffusion_row_steps_per_s")


# =============================================================================================== projection
# Pure functions of plain numbers: no torch, unit-tested in tests/test_gpu_check.py.

def corpus_counts(path: Path = TABLE1) -> dict[str, dict[str, Any]]:
    """The 6-class label set of the `paper` profile (Kim & Lee Table 1): items per class, speakers, files."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["emotion"] != "total"]
    out = {}
    for corpus, column in (("emodb", "EmoDB"), ("ravdess", "RAVDESS")):
        classes = {row["emotion"]: int(row[column]) for row in rows}
        out[corpus] = {"classes": classes, "items": sum(classes.values()), **CORPORA[corpus]}
    return out


def default_val_speakers(n_train_speakers: int, n_folds: int) -> int:
    """``emoaug.splits._default_val_count``: about 1/(k-1) of a fold's training speakers validate."""
    share = round(n_train_speakers / (n_folds - 1))
    return max(1, min(share, n_train_speakers // 2))


def fold_rows(corpus: dict[str, Any], n_folds: int) -> list[dict[str, float]]:
    """Expected train / val / test rows of each speaker-independent fold (kfold split, one row per item:
    kim2024 pads every clip to 10 s). Speakers are assumed to hold equal shares of the items and classes."""
    speakers, items = int(corpus["speakers"]), float(corpus["items"])
    folds = []
    for index in range(n_folds):
        test = speakers // n_folds + (1 if index < speakers % n_folds else 0)
        val = default_val_speakers(speakers - test, n_folds)
        train = speakers - test - val
        folds.append({"train_speakers": train, "val_speakers": val, "test_speakers": test,
                      "train": items * train / speakers, "val": items * val / speakers,
                      "test": items * test / speakers, "train_fraction": train / speakers})
    return folds


def n_batches(n_rows: float, batch_size: int) -> int:
    """Mini-batches per epoch as ``emoaug.classifiers.training._batches`` makes them (a lone row joins the last)."""
    n = int(round(n_rows))
    if n <= 0:
        return 0
    count = -(-n // batch_size)
    return count - 1 if count > 1 and n % batch_size == 1 else count


def synthetic_shortfall(train_classes: dict[str, float], n_synthetic: float) -> float:
    """Rows the synthetic-only arm generates anew: ``allocate_synthetic`` fills the smallest classes first,
    so the augmentation set may lack rows of the largest; the arm wants the real training proportions."""
    counts = sorted(train_classes.values())
    if not counts or n_synthetic <= 0:
        return float(sum(counts))
    level, filled = counts[0], 0.0  # water level reached by the synthetic rows
    for k in range(1, len(counts) + 1):
        nxt = counts[k] if k < len(counts) else math.inf
        if filled + k * (nxt - level) >= n_synthetic:
            level += (n_synthetic - filled) / k
            break
        filled += k * (nxt - level)
        level = nxt
    given = {label: max(0.0, level - count) for label, count in train_classes.items()}
    return sum(max(0.0, count - given[label]) for label, count in train_classes.items())


def project_hours(rates: dict[str, float], corpus: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """GPU-hours of a run of ``settings`` on ``corpus`` at measured ``rates`` (worst case: every classifier
    trains all ``classifier_epochs``; early stopping can only make it shorter).

    Per (fold, seed), as ``emoaug.bench.cells`` computes it: ``none`` = the judge (real-only classifier; the
    none cell reuses it). Each generator cell: fit the generator on the training fold, generate
    ``synthetic_ratio`` x train rows, score them with the judge, train the classifier on real + synthetic; with
    protocol ``augment`` also a classifier on synthetic rows only; with ``clarity`` the judge on generated
    test-fold versions (DCGAN samples as many as the test fold; diffusion enhances each test row twice). The
    diffusion fit includes its CNN-BLSTM emotion-embedding classifier (``ser_epochs``, all of them).
    Classifier epochs include a validation pass; forward-only passes of the CNN-BLSTM are counted as 1/3
    of a training step per batch."""
    missing = [key for key in RATE_KEYS if not rates.get(key) or not math.isfinite(rates[key]) or rates[key] <= 0]
    if missing:
        raise ValueError(f"project_hours: missing or non-positive rates {missing}")
    s = settings
    epochs, batch = int(s["classifier_epochs"]), int(s["classifier_batch_size"])
    step_s, infer_s = 1.0 / rates["classifier_train_steps_per_s"], 1.0 / rates["classifier_infer_items_per_s"]
    ser_step_s = 1.0 / rates["ser_train_steps_per_s"]
    dcgan_step_s, dcgan_item_s = 1.0 / rates["dcgan_train_steps_per_s"], 1.0 / rates["dcgan_items_per_s"]
    diff_step_s, row_step_s = 1.0 / rates["diffusion_train_steps_per_s"], 1.0 / rates["diffusion_row_steps_per_s"]
    protocols = set(s["protocols"])
    share = {label: n / corpus["items"] for label, n in corpus["classes"].items()}
    parts = {"none": {}, "dcgan": {}, "diffusion": {}}

    def add(gen: str, what: str, seconds: float) -> None:
        parts[gen][what] = parts[gen].get(what, 0.0) + seconds

    for fold in fold_rows(corpus, int(s["n_folds"])):
        n_train, n_val, n_test = fold["train"], fold["val"], fold["test"]
        n_syn = round(float(s["synthetic_ratio"]) * n_train)
        short = synthetic_shortfall({k: v * n_train for k, v in share.items()}, n_syn)

        def classifier(n_rows: float) -> float:
            return epochs * (n_batches(n_rows, batch) * step_s + n_val * infer_s) + n_test * infer_s

        add("none", "judge", classifier(n_train))
        quality = (2 * n_syn + n_train + n_test) * infer_s  # judge embeddings of 3 sets + its predictions
        # dcgan
        add("dcgan", "generator_fit", int(s["dcgan_steps"]) * dcgan_step_s
            + int(s["dcgan_bn_batches"]) * int(s["dcgan_batch_size"]) * dcgan_item_s)
        add("dcgan", "generate", n_syn * dcgan_item_s)
        add("dcgan", "quality", quality)
        add("dcgan", "classifier", classifier(n_train + n_syn))
        if "augment" in protocols:
            add("dcgan", "synthetic_only", classifier(n_train) + short * dcgan_item_s)
        if "clarity" in protocols:
            add("dcgan", "clarity", n_test * (dcgan_item_s + infer_s))
        # diffusion
        ser_batch = int(s["ser_batch_size"])
        held = round(float(s["ser_holdout"]) * fold["train_speakers"])
        held_rows = n_train * held / fold["train_speakers"] if fold["train_speakers"] >= 2 and held >= 1 else 0.0
        ser = int(s["ser_epochs"]) * (n_batches(n_train - held_rows, ser_batch)
                                      + n_batches(held_rows, ser_batch) / 3) * ser_step_s
        ser += n_batches(n_train, ser_batch) / 3 * ser_step_s  # embeddings of every training row
        add("diffusion", "emotion_classifier", ser)
        add("diffusion", "generator_fit", int(s["diffusion_train_steps"]) * diff_step_s)
        add("diffusion", "generate", n_syn * int(s["diffusion_sampling_evaluations"]) * row_step_s)
        add("diffusion", "quality", quality)
        add("diffusion", "classifier", classifier(n_train + n_syn))
        if "augment" in protocols:
            add("diffusion", "synthetic_only", classifier(n_train)
                + short * int(s["diffusion_sampling_evaluations"]) * row_step_s)
        if "clarity" in protocols:
            add("diffusion", "clarity", 2 * n_test * int(s["diffusion_enhance_evaluations"]) * row_step_s
                + 3 * n_test * infer_s)
    seeds = int(s["n_seeds"])
    components = {gen: {what: seeds * sec / 3600.0 for what, sec in d.items()} for gen, d in parts.items()}
    hours = {gen: sum(d.values()) for gen, d in components.items()}
    return {**hours, "total": sum(hours.values()), "components": components,
            "rows_per_fold": fold_rows(corpus, int(s["n_folds"])), "worst_case": True}


def _round_down(value: float) -> int:
    """Down to two significant digits (12345 -> 12000, 87 -> 87): sizes a person can read in a profile."""
    n = int(math.floor(value))
    if n < 100:
        return n
    unit = 10 ** (len(str(n)) - 2)
    return n // unit * unit


def recommend_sizing(rates: dict[str, float], corpora: dict[str, dict[str, Any]], settings: dict[str, Any],
                     budget_hours: float = BUDGET_HOURS, floors: dict[str, int] | None = None) -> dict[str, Any]:
    """The largest `paper` sizing whose worst-case none + dcgan + diffusion run fits ``budget_hours`` on every
    corpus of ``corpora``; model sizes, folds, seeds and everything else stay as in ``settings``.

    Policy: the three training lengths (classifier epochs, DCGAN steps, diffusion steps) shrink by one common
    factor ``scale`` <= 1 (the published ratio between them is kept; never above the published values), each
    rounded down to two significant digits and never below its floor (defaults: classifier epochs
    patience + 1, so early stopping can still act; DCGAN 1,000 steps; diffusion 2 x its warm-up steps); with a
    length at its floor the others take what is left. ``fits`` is False when even the floors exceed the budget.
    """
    full = {"classifier_epochs": int(settings["classifier_epochs"]), "dcgan_steps": int(settings["dcgan_steps"]),
            "diffusion_train_steps": int(settings["diffusion_train_steps"])}
    floors = dict(floors or {"classifier_epochs": int(settings["classifier_patience"]) + 1,
                             "dcgan_steps": 1000,
                             "diffusion_train_steps": 2 * int(settings["diffusion_warmup_steps"])})
    floors = {key: min(floors[key], full[key]) for key in full}

    def sized(scale: float) -> dict[str, int]:
        return {key: min(full[key], max(floors[key], _round_down(scale * full[key]))) for key in full}

    def hours(sizes: dict[str, int]) -> dict[str, float]:
        return {name: project_hours(rates, corpus, {**settings, **sizes})["total"] for name, corpus in corpora.items()}

    def fits(sizes: dict[str, int]) -> bool:
        return max(hours(sizes).values()) <= budget_hours

    if fits(full):
        scale = 1.0
    else:
        low, high = 0.0, 1.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if fits(sized(mid)) else (low, mid)
        scale = low
    sizes = full if scale == 1.0 else sized(scale)
    return {**sizes, "scale": scale, "hours": hours(sizes), "fits": fits(sizes), "budget_hours": budget_hours,
            "floors": floors, "paper_full": {**full, "hours": hours(full)}}


def paper_settings(profile_name: str = "paper") -> dict[str, Any]:
    """The settings of ``profile_name`` (`paper` or `paper-full`) as the code resolves them (generator configs
    built by their classes): the counts ``project_hours`` and ``benchmarks/paper_cost.py`` use."""
    from emoaug.config import DEFAULT_PROTOCOLS, get_profile
    from emoaug.generators import get_generator_class
    from emoaug.presets import get_preset

    profile = get_profile(profile_name)
    clf = profile.classifiers[profile.classifier]
    preset = get_preset(profile.preset)
    dcgan = get_generator_class("dcgan")(**profile.generators["dcgan"]).get_config()
    diffusion = get_generator_class("diffusion")(**profile.generators["diffusion"])
    sampler = diffusion.sampler()
    return {
        "profile": profile.name, "preset": preset.name, "n_mels": preset.n_mels, "n_frames": preset.frames,
        "labels": "6class", "n_folds": profile.n_folds, "n_seeds": profile.n_seeds,
        "synthetic_ratio": profile.synthetic_ratio, "protocols": list(DEFAULT_PROTOCOLS),
        "classifier_arch": clf.arch, "classifier_arch_kwargs": dict(clf.arch_kwargs),
        "classifier_epochs": clf.epochs, "classifier_batch_size": clf.batch_size,
        "classifier_patience": clf.patience, "classifier_lr": clf.lr, "classifier_weight_decay": clf.weight_decay,
        "dcgan_config": dcgan, "dcgan_steps": dcgan["steps"], "dcgan_batch_size": dcgan["batch_size"],
        "dcgan_d_steps": dcgan["d_steps"], "dcgan_bn_batches": dcgan["bn_batches"],
        "diffusion_config": dict(diffusion.config), "diffusion_train_steps": diffusion.config["train_steps"],
        "diffusion_batch_size": diffusion.config["batch_size"],
        "diffusion_warmup_steps": diffusion.config["warmup_steps"],
        "diffusion_sampling_evaluations": sampler.n_evaluations(),
        "diffusion_enhance_evaluations": sampler.n_evaluations(diffusion.enhance_step()),
        "ser_epochs": diffusion.config["ser_epochs"], "ser_batch_size": diffusion.config["ser_batch_size"],
        "ser_holdout": diffusion.config["ser_holdout"],
        "cyclegan_config": get_generator_class("cyclegan")(**profile.generators["cyclegan"]).get_config(),
        "vae_config": get_generator_class("vae")(**profile.generators["vae"]).get_config(),
    }


# =============================================================================================== measuring
class Budget:
    """Seconds left of ``total`` since the script started."""

    def __init__(self, total: float):
        self.total = float(total)

    def used(self) -> float:
        return time.perf_counter() - _STARTED

    def left(self) -> float:
        return self.total - self.used()


def model_sizes(settings: dict[str, Any], toy: bool) -> dict[str, Any]:
    """Shapes and configs measured: the paper's, or tiny ones of the same classes (``--toy``)."""
    sizes = {"n_mels": settings["n_mels"], "n_frames": settings["n_frames"], "n_classes": 6,
             "classifier_batch_size": settings["classifier_batch_size"],
             "dcgan": dict(settings["dcgan_config"]), "diffusion": dict(settings["diffusion_config"]),
             "sampling_steps_timed": 2}
    if toy:
        sizes.update(n_mels=16, n_frames=48, classifier_batch_size=4, sampling_steps_timed=2)
        sizes["dcgan"].update(noise_dim=8, g_widths=[16, 8], d_widths=[8, 16], batch_size=4, bn_batches=2)
        sizes["diffusion"].update(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_at=(0,),
                                  groups=4, heads=2,
                                  cond_dim=16, style_channels=4, style_dim=8, ser_channels=8, ser_lstm_hidden=8,
                                  ser_batch_size=4, batch_size=4, sample_batch_size=4, warmup_steps=2)
    for name in ("dcgan", "diffusion"):
        sizes[name].pop("seed", None)  # each measured run sets its own
    return sizes


def _torch():
    import torch

    return torch


def autocast(device, bf16: bool):
    torch = _torch()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def synchronise(device) -> None:
    torch = _torch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device) -> None:
    gc.collect()
    torch = _torch()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def random_rows(n: int, sizes: dict[str, Any], seed: int):
    """A FeatureSet of ``n`` random N(0, 1) rows (like z-scored log-mels) of the measured shape, labels cycling
    over 6 classes, two speakers: speed and memory depend on shapes and dtypes, not on the values."""
    torch = _torch()
    from emoaug.featureset import FeatureSet

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, sizes["n_mels"], sizes["n_frames"], generator=gen)
    y = torch.arange(n) % sizes["n_classes"]
    return FeatureSet(x=x, y=y, labels=tuple(f"c{k}" for k in range(sizes["n_classes"])),
                      item_ids=[f"row{i}" for i in range(n)], speakers=[f"s{i % 2}" for i in range(n)])


class Bench:
    """One model: ``run(seed, bf16, channels_last)`` gives an object with ``step() -> loss`` (one training step
    of the real code's loop body) and ``second() -> work units`` (inference items or sampled row-steps)."""

    name = ""
    channels_last_ok = True
    skip_note = ""
    second_metric = ""
    weight = 1.0  # share of the time budget

    def __init__(self, sizes: dict[str, Any], device):
        self.sizes, self.device = sizes, device
        self.fitted_batch: dict[str, int | None] = {}  # precision -> the training batch that fitted

    def context(self):
        return contextlib.nullcontext()

    def precisions(self) -> list[str]:
        return [name for name, (_, cl) in PRECISIONS.items() if self.channels_last_ok or not cl]


class ClassifierBench(Bench):
    """A classifier of ``emoaug.classifiers`` trained as ``SERClassifier._train_one_epoch`` does (Adam,
    cross-entropy, inside ``deterministic_algorithms`` as ``fit`` runs it); second metric: eval items/s."""

    second_metric = "infer_items_per_s"

    def __init__(self, sizes, device, *, name: str, arch: str, arch_kwargs: dict, batch_size: int, lr: float,
                 weight_decay: float = 0.0, channels_last_ok: bool = True, skip_note: str = "", weight: float = 1.0):
        super().__init__(sizes, device)
        self.name, self.arch, self.arch_kwargs = name, arch, dict(arch_kwargs)
        self.batch_size, self.lr, self.weight_decay = batch_size, lr, weight_decay
        self.channels_last_ok, self.skip_note, self.weight = channels_last_ok, skip_note, weight
        self.pool = random_rows(4 * batch_size, sizes, seed=1234)

    def context(self):
        from emoaug.classifiers.training import deterministic_algorithms

        return deterministic_algorithms(self.device)

    def model(self, seed: int):
        torch = _torch()
        from emoaug.classifiers.training import build_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_model(self.arch, n_mels=self.sizes["n_mels"], n_classes=self.sizes["n_classes"],
                               **self.arch_kwargs)

    def run(self, seed: int, bf16: bool, channels_last: bool):
        return ClassifierRun(self, seed, bf16, channels_last)

    def reference(self):
        torch = _torch()
        x = torch.randn(2, self.sizes["n_mels"], self.sizes["n_frames"], generator=torch.Generator().manual_seed(5))
        return {"model": self.model(0).eval()}, {"x": x}

    @staticmethod
    def forward(modules, inputs):
        return {"logits": modules["model"](inputs["x"])}


class ClassifierRun:
    def __init__(self, bench: ClassifierBench, seed: int, bf16: bool, channels_last: bool):
        torch = _torch()
        self.bench, self.device, self.bf16 = bench, bench.device, bf16
        self.model = bench.model(seed).to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=bench.lr, weight_decay=bench.weight_decay)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.order = torch.Generator().manual_seed(seed)
        self.batch = self.second_batch = bench.batch_size

    def set_batch(self, batch: int) -> None:
        self.batch = batch

    def _batch(self, size: int):
        torch = _torch()
        index = torch.randperm(len(self.bench.pool), generator=self.order)[:size]
        return (self.bench.pool.x[index].to(self.device, dtype=torch.float32, non_blocking=True),
                self.bench.pool.y[index].to(self.device, non_blocking=True))

    def step(self) -> float:
        x, y = self._batch(self.batch)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.bf16):
            loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def second(self) -> int:
        torch = _torch()
        x, _ = self._batch(self.second_batch)
        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.bf16):
            self.model(x).float().cpu()
        return len(x)


class DCGANBench(Bench):
    """``ConditionalDCGAN`` (paper config) trained with the loop body of its ``_train`` (d_steps D updates on
    fresh real batches, then one G update); second metric: ``generate`` items/s (chunks of 64 per class)."""

    name = "dcgan"
    second_metric = "items_per_s"

    def __init__(self, sizes, device):
        super().__init__(sizes, device)
        self.config = dict(sizes["dcgan"])
        self.pool = random_rows(max(4 * self.config["batch_size"], 64), sizes, seed=1234)

    def generator(self, seed: int):
        from emoaug.generators.dcgan import ConditionalDCGAN
        from emoaug.generators.neural import seeded

        gen = ConditionalDCGAN(**{**self.config, "seed": seed})
        gen._remember(self.pool)
        with seeded(seed):
            gen._setup(self.pool)
        return gen

    def run(self, seed: int, bf16: bool, channels_last: bool):
        return DCGANRun(self, seed, bf16, channels_last)

    def reference(self):
        torch = _torch()
        gen = self.generator(0)
        gen.generator.eval()
        gen.discriminator.eval()
        rng = torch.Generator().manual_seed(5)
        inputs = {"z": torch.randn(2, self.config["noise_dim"], generator=rng), "y": torch.tensor([0, 3]),
                  "real": gen.to_unit(self.pool.x[:2])}
        return {"generator": gen.generator, "discriminator": gen.discriminator}, inputs

    @staticmethod
    def forward(modules, inputs):
        return {"generator": modules["generator"](inputs["z"], inputs["y"]),
                "discriminator": modules["discriminator"](inputs["real"], inputs["y"])}


class DCGANRun:
    def __init__(self, bench: DCGANBench, seed: int, bf16: bool, channels_last: bool):
        torch = _torch()
        self.bench, self.device, self.bf16 = bench, bench.device, bf16
        cfg = bench.config
        self.gen = gen = bench.generator(seed).to(self.device)
        if channels_last:
            gen.generator.to(memory_format=torch.channels_last)
            gen.discriminator.to(memory_format=torch.channels_last)
        self.g_opt = torch.optim.Adam(gen.generator.parameters(), lr=cfg["lr_g"], betas=(cfg["beta1"], cfg["beta2"]))
        self.d_opt = torch.optim.Adam(gen.discriminator.parameters(), lr=cfg["lr_d"],
                                      betas=(cfg["beta1"], cfg["beta2"]))
        self.rng = gen.torch_rng()
        self.set_batch(cfg["batch_size"])
        self.second_batch = 64  # emoaug.generators.dcgan.GENERATE_CHUNK: generate() runs chunks of 64 per class
        torch.manual_seed(seed)  # sample() draws its noise from the global (device) generator
        self.k = 0

    def set_batch(self, batch: int) -> None:
        from emoaug.generators.layers import endless_minibatches

        self.batch = batch
        self.batches = endless_minibatches(lambda: self.gen.minibatches(len(self.bench.pool), batch, self.rng), 10**9)

    def step(self) -> float:
        gen, pool = self.gen, self.bench.pool
        gen.generator.train()
        gen.discriminator.train()
        for _ in range(self.bench.config["d_steps"]):
            index = next(self.batches)
            real = gen.to_unit(pool.x[index].to(self.device))
            y = pool.y[index].to(self.device)
            with autocast(self.device, self.bf16):
                d_terms = gen.discriminator_loss(real, y, gen.sample(y).detach())
            d = gen._optimise(self.d_opt, d_terms)
        with autocast(self.device, self.bf16):
            g_terms = gen.generator_loss(y)
        gen._optimise(self.g_opt, g_terms)
        return d["d_loss"]

    def second(self) -> int:
        label = self.gen.labels[self.k % len(self.gen.labels)]
        self.k += 1
        with autocast(self.device, self.bf16):
            out = self.gen.generate({label: self.second_batch}, seed=self.k)
        return len(out)


class DiffusionBench(Bench):
    """``DiffusionGenerator`` (paper config: the U-Net, conditioner and EMA copy) trained with the loop body of
    ``_fit_denoiser`` (its ``_training_loss`` with noise drawn on CPU, AdamW, warm-up schedule, gradient
    clipping, EMA update); second metric: denoiser row-steps/s of ``_sample_batch`` (DDIM with classifier-free
    guidance: each step runs the U-Net on 2 x ``sample_batch_size`` rows), timed over a few steps."""

    name = "diffusion"
    second_metric = "row_steps_per_s"
    weight = 2.5

    def __init__(self, sizes, device):
        super().__init__(sizes, device)
        self.config = dict(sizes["diffusion"])
        n = max(4 * self.config["batch_size"], self.config["sample_batch_size"])
        self.pool = random_rows(n, sizes, seed=1234)
        emotion_dim = 2 * int(self.config["ser_lstm_hidden"])
        torch = _torch()
        self.embeddings = torch.randn(n, emotion_dim, generator=torch.Generator().manual_seed(99))

    def generator(self, seed: int):
        torch = _torch()
        from emoaug.generators.diffusion.generator import DiffusionGenerator
        from emoaug.generators.neural import seeded

        gen = DiffusionGenerator(**{**self.config, "seed": seed})
        gen._remember(self.pool)
        with seeded(seed):
            gen._setup(self.pool)
        gen.centroids = torch.randn(gen.centroids.shape, generator=torch.Generator().manual_seed(98))
        return gen

    def run(self, seed: int, bf16: bool, channels_last: bool):
        return DiffusionRun(self, seed, bf16, channels_last)

    def reference(self):
        torch = _torch()
        gen = self.generator(0)
        gen.model.eval()
        rng = torch.Generator().manual_seed(5)
        shape = (1, self.sizes["n_mels"], self.sizes["n_frames"])
        inputs = {"x_t": torch.randn(shape, generator=rng), "t": torch.tensor([700]),
                  "emotion": self.embeddings[:1].clone(), "reference": self.pool.x[:1].clone()}
        self._schedule = gen.schedule
        return {"model": gen.model}, inputs

    def forward(self, modules, inputs):
        model = modules["model"]
        cond = model.conditioner(inputs["emotion"], inputs["reference"])
        return {"eps": model.eps(self._schedule, inputs["x_t"], inputs["t"], cond)}


class DiffusionRun:
    def __init__(self, bench: DiffusionBench, seed: int, bf16: bool, channels_last: bool):
        torch = _torch()
        self.bench, self.device, self.bf16 = bench, bench.device, bf16
        cfg = bench.config
        self.gen = gen = bench.generator(seed).to(self.device)
        if channels_last:
            for module in gen.networks().values():
                module.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(gen.model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        warmup = max(1, int(cfg["warmup_steps"]))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: min(1.0, (step + 1) / warmup))
        self.rng = gen.torch_rng(1)
        self.set_batch(int(cfg["batch_size"]))
        self.second_batch = int(cfg["sample_batch_size"])
        self.k = 0

    def set_batch(self, batch: int) -> None:
        self.batch = batch
        self.batches = self.gen._batch_stream(len(self.bench.pool), batch, self.rng)

    def step(self) -> float:
        torch = _torch()
        gen, cfg = self.gen, self.bench.config
        gen.model.train()
        index = next(self.batches)
        with autocast(self.device, self.bf16):
            loss = gen._training_loss(self.bench.pool.x[index], self.bench.embeddings[index], self.rng)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(gen.model.parameters(), float(cfg["grad_clip"]))
        self.optimizer.step()
        self.scheduler.step()
        gen._update_ema(self.k)
        self.k += 1
        return float(loss.detach())

    def second(self, steps: int | None = None) -> int:
        torch = _torch()
        gen = self.gen
        steps = steps or self.bench.sizes["sampling_steps_timed"]
        view = gen.with_sampling(sampling_steps=steps)
        sampler = view.sampler()
        model = gen.ema if gen.ema is not None else gen.model
        batch = self.second_batch
        self.k += 1
        with autocast(self.device, self.bf16):
            view._sample_batch(model, sampler, self.bench.pool.x[:batch], self.bench.pool.y[:batch],
                               torch.Generator().manual_seed(self.k), None)
        return batch * sampler.n_evaluations()


def check_projection(benches: list[Bench], rates: dict[str, float | None]) -> dict[str, Any]:
    """``benchmarks/paper_cost.py``'s counts (FLOPs per work unit, counted here on the device with the same step
    code) and the rates they project at its assumed sustained FLOP/s, beside the rates measured here."""
    from benchmarks import flop_count  # the counting paper_cost.py projects from

    models = {bench.name: flop_count.bench_cost(bench) for bench in benches}
    flops, projected = flop_count.flops_per_unit(models), flop_count.projected_rates(models)
    rows = {}
    for key in RATE_KEYS:
        measured = rates.get(key)
        rows[key] = {"flops_per_unit": flops[key], "projected_per_s": projected[key], "measured_per_s": measured,
                     "measured_over_projected": measured / projected[key] if measured else None,
                     "achieved_tflops": measured * flops[key] / 1e12 if measured else None}
    return {"gpu_assumed": flop_count.GPU, "sustained_tflops": flop_count.SUSTAINED_FLOPS / 1e12, "rates": rows,
            "activation_bytes_per_row": {name: row["activation_bytes_per_row"] for name, row in models.items()}}


def make_benches(sizes: dict[str, Any], settings: dict[str, Any], device) -> list[Bench]:
    diffusion = sizes["diffusion"]
    return [
        ClassifierBench(sizes, device, name="resnet50", arch=settings["classifier_arch"],
                        arch_kwargs=settings["classifier_arch_kwargs"], batch_size=sizes["classifier_batch_size"],
                        lr=settings["classifier_lr"], weight_decay=settings["classifier_weight_decay"]),
        ClassifierBench(sizes, device, name="ser_cnn_blstm", arch="cnn_blstm",
                        arch_kwargs={"channels": diffusion["ser_channels"],
                                     "lstm_hidden": diffusion["ser_lstm_hidden"], "lstm_layers": 1},
                        batch_size=diffusion["ser_batch_size"], lr=diffusion["ser_lr"], channels_last_ok=False,
                        skip_note="channels_last skipped: 1-D convolutions and an LSTM (no 4-D tensors)",
                        weight=0.5),
        DCGANBench(sizes, device),
        DiffusionBench(sizes, device),
    ]


def peak_memory(device) -> dict[str, Any]:
    torch = _torch()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    if device.type == "cuda":
        return {"peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20, "process_max_rss_mib": rss}
    return {"peak_memory_mib": None, "process_max_rss_mib": rss}


def timed(fn, seconds: float, device, min_calls: int = 2) -> dict[str, float]:
    """Call ``fn`` (returns work units) for ``seconds`` (at least ``min_calls`` times); units per second."""
    synchronise(device)
    start, calls, units = time.perf_counter(), 0, 0.0
    while True:
        units += fn()
        calls += 1
        if calls >= min_calls:
            synchronise(device)
            if time.perf_counter() - start >= seconds:
                break
    elapsed = time.perf_counter() - start
    return {"calls": calls, "seconds": elapsed, "per_s": units / elapsed}


def oom_error():
    torch = _torch()
    return getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def with_halving(call, get_batch, set_batch, device, what: str, notes: list[str]):
    """``call()``; on out-of-memory halve the batch (``set_batch``) and retry, down to 1 row."""
    torch = _torch()
    while True:
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            return call()
        except oom_error() as err:
            message = str(err).splitlines()[0][:160]
        free_memory(device)  # the failed attempt's tensors died with the exception
        batch = get_batch()
        if batch <= 1:
            raise RuntimeError(f"{what}: out of memory even at 1 row ({message})")
        notes.append(f"{what}: out of memory at {batch} rows, retried with {batch // 2}")
        set_batch(batch // 2)


def measure_speed(bench: Bench, precision: str, slice_s: float, warmup: int, min_window: float = 0.5
                  ) -> dict[str, Any]:
    """Training steps/s and the second metric of one setting, time-boxed to about ``slice_s`` seconds.

    A batch that does not fit is halved until it does; ``full_batch_steps_per_s`` then scales the rate to the
    configured batch (``steps_per_s * batch / config_batch``: what gradient accumulation gives -- for diffusion
    the generator's ``micro_batch_size`` option; the classifier and DCGAN have none -- ``needs_accumulation``
    says so)."""
    bf16, channels_last = PRECISIONS[precision]
    device = bench.device
    started = time.perf_counter()
    notes: list[str] = []
    run = None
    try:
        with bench.context():
            run = bench.run(0, bf16, channels_last)
            config_batch = run.batch

            def set_second(b: int) -> None:
                run.second_batch = b

            with_halving(lambda: [run.step() for _ in range(warmup)], lambda: run.batch, run.set_batch, device,
                         "training step", notes)
            synchronise(device)
            window = max(min_window, slice_s - (time.perf_counter() - started))
            train = timed(run.step, 0.65 * window, device)
            train_peak = peak_memory(device)
            with_halving(lambda: [run.second() for _ in range(1 if bench.name == "diffusion" else 2)],
                         lambda: run.second_batch, set_second, device, bench.second_metric, notes)
            window = max(0.6 * min_window, slice_s - (time.perf_counter() - started))
            second = timed(run.second, window, device)
            second_peak = peak_memory(device)
        out = {"status": "ok", "batch": run.batch, "config_batch": config_batch,
               "needs_accumulation": run.batch < config_batch, "steps_per_s": train["per_s"],
               "full_batch_steps_per_s": train["per_s"] * run.batch / config_batch, "steps": train["calls"],
               "seconds": train["seconds"], **train_peak,
               "second_metric": bench.second_metric, bench.second_metric: second["per_s"],
               "second_batch": run.second_batch,
               "second_calls": second["calls"], "second_peak_memory_mib": second_peak["peak_memory_mib"]}
    except RuntimeError as err:
        if "out of memory" not in str(err):
            raise
        out = {"status": "out of memory", "error": str(err)}
    finally:
        run = None  # drop the models before the next setting
        free_memory(device)
    out["notes"] = notes
    out["wall_seconds"] = time.perf_counter() - started
    bench.fitted_batch[precision] = out.get("batch")
    return out


def relative_error(out, ref) -> dict[str, float]:
    diff = (out.float().cpu() - ref.float()).abs().max().item()
    scale = ref.float().abs().max().item()
    return {"max_abs": diff, "max_ref": scale, "rel": diff / scale if scale > 0 else diff}


def check_agreement(bench: Bench) -> dict[str, Any]:
    """The same weights and input: forward on CPU fp32 vs the device under each setting (eval mode)."""
    torch = _torch()
    started = time.perf_counter()
    modules, inputs = bench.reference()
    with torch.no_grad():
        reference = bench.forward(modules, inputs)
    out: dict[str, Any] = {}
    for precision in bench.precisions():
        bf16, channels_last = PRECISIONS[precision]
        try:
            moved = {name: copy.deepcopy(m).to(bench.device) for name, m in modules.items()}
            if channels_last:
                moved = {name: m.to(memory_format=torch.channels_last) for name, m in moved.items()}
            dev_inputs = {k: v.to(bench.device) for k, v in inputs.items()}
            with torch.no_grad(), autocast(bench.device, bf16):
                result = bench.forward(moved, dev_inputs)
            errors = {name: relative_error(result[name], reference[name]) for name in reference}
            worst = max(e["rel"] for e in errors.values())
            out[precision] = {"outputs": errors, "rel_error": worst, "max_abs_error": max(e["max_abs"] for e in
                                                                                           errors.values()),
                              "tolerance": TOLERANCE[bf16], "pass": bool(worst <= TOLERANCE[bf16])}
            del moved, dev_inputs, result
        except oom_error() as err:
            out[precision] = {"status": "out of memory", "error": str(err).splitlines()[0], "pass": False}
        free_memory(bench.device)
    out["seconds"] = time.perf_counter() - started
    return out


def mixed_precision_proxy(bench: Bench, slice_s: float, min_steps: int = 4, max_steps: int = 100) -> dict[str, Any]:
    """K steps from the same init and data under fp32 and bf16, and fp32 under another seed (seed noise), at
    the largest batch that fitted both fp32 and bf16 in the speed phase.

    A proxy only: whether bf16 keeps the numbers is decided end to end, by UA over seeds."""
    started = time.perf_counter()
    fitted = [b for b in (bench.fitted_batch.get("fp32"), bench.fitted_batch.get("bf16")) if b]
    batch = min(fitted) if fitted else None

    def losses(seed: int, bf16: bool, steps: int | None, seconds: float | None) -> list[float]:
        with bench.context():
            run = bench.run(seed, bf16, False)
            if batch is not None and batch != run.batch:
                run.set_batch(batch)
            out, begin = [], time.perf_counter()
            while True:
                out.append(run.step())
                if steps is not None and len(out) >= steps:
                    break
                if steps is None and (len(out) >= max_steps or (len(out) >= min_steps and
                                                                time.perf_counter() - begin >= seconds)):
                    break
            used = run.batch
        del run
        free_memory(bench.device)
        return out, used

    try:
        fp32, used = losses(0, False, None, slice_s / 3)
        k = len(fp32)
        bf16, _ = losses(0, True, k, None)
        other, _ = losses(1, False, k, None)
    except oom_error() as err:
        message = str(err).splitlines()[0][:160]
        free_memory(bench.device)
        return {"status": "out of memory", "error": message}
    tail = slice(k // 2, None)

    def mean(values):
        return sum(values) / len(values)

    bf16_delta = abs(mean(fp32[tail]) - mean(bf16[tail]))
    seed_delta = abs(mean(fp32[tail]) - mean(other[tail]))
    rms = {name: math.sqrt(mean([(a - b) ** 2 for a, b in zip(fp32, series)]))
           for name, series in (("bf16", bf16), ("seed", other))}
    return {"status": "ok", "steps": k, "batch": used,
            "loss": "d_loss (hinge)" if bench.name == "dcgan" else "training loss",
            "fp32_tail_mean": mean(fp32[tail]), "bf16_tail_mean": mean(bf16[tail]),
            "fp32_seed1_tail_mean": mean(other[tail]), "bf16_delta": bf16_delta, "seed_delta": seed_delta,
            "bf16_step_rms": rms["bf16"], "seed_step_rms": rms["seed"],
            "within_seed_noise": bool(bf16_delta <= seed_delta), "seconds": time.perf_counter() - started}


# =============================================================================================== selection
def eligible(bench_name: str, precision: str, results: dict[str, Any]) -> tuple[bool, str]:
    """A setting the projection may use: measured, agreeing with CPU, within 80 GiB, and for bf16 within
    the proxy's seed noise."""
    speed = results["speed"].get(bench_name, {}).get(precision, {})
    if speed.get("status") != "ok":
        return False, speed.get("status", "not measured")
    if not results["agreement"].get(bench_name, {}).get(precision, {}).get("pass"):
        return False, "agreement check failed or missing"
    peak = speed.get("peak_memory_mib")
    if peak is not None and peak > H100_MEMORY_GIB * 1024:
        return False, f"peak {peak / 1024:.0f} GiB > {H100_MEMORY_GIB:g} GiB (an 80 GB H100)"
    if PRECISIONS[precision][0]:
        proxy = results["proxy"].get(bench_name, {})
        if not proxy.get("within_seed_noise"):
            return False, "bf16 not shown within seed noise" if proxy.get("status") == "ok" else "proxy not run"
    return True, ""


def best_rates(results: dict[str, Any]) -> tuple[dict[str, float | None], dict[str, str | None]]:
    """Per rate, the best eligible setting's figure (None when no setting qualifies)."""
    wanted = {"classifier_train_steps_per_s": ("resnet50", "full_batch_steps_per_s"),
              "classifier_infer_items_per_s": ("resnet50", "infer_items_per_s"),
              "ser_train_steps_per_s": ("ser_cnn_blstm", "full_batch_steps_per_s"),
              "dcgan_train_steps_per_s": ("dcgan", "full_batch_steps_per_s"),
              "dcgan_items_per_s": ("dcgan", "items_per_s"),
              "diffusion_train_steps_per_s": ("diffusion", "full_batch_steps_per_s"),
              "diffusion_row_steps_per_s": ("diffusion", "row_steps_per_s")}
    rates, chosen = {}, {}
    for key, (bench, metric) in wanted.items():
        rows = results["speed"].get(bench, {})
        options = [(row.get(metric), precision) for precision, row in rows.items()
                   if eligible(bench, precision, results)[0] and row.get(metric)]
        rate, precision = max(options, default=(None, None))
        if precision and metric == "full_batch_steps_per_s" and rows[precision].get("needs_accumulation"):
            precision += f" at {rows[precision]['batch']} rows, scaled"
        rates[key], chosen[key] = rate, precision
    return rates, chosen


# =============================================================================================== main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--toy", action="store_true", help="tiny shapes and widths (CPU seconds; for the test)")
    parser.add_argument("--device", default="auto", help="cuda, cuda:N or cpu (default: cuda when available)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds for the whole script, from start (default 420; 20 with --toy)")
    parser.add_argument("--json", default=None, help="write every figure to this JSON file")
    parser.add_argument("--memory-gib", type=float, default=H100_MEMORY_GIB,
                        help="cap the CUDA allocator at this many GiB (default 78: an 80 GB H100; 0 = no cap)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run the paper sizes on a CPU anyway (minutes per step: a 64-row DCGAN step is ~11 TFLOP)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's choice; 1 with --toy, so a busy CPU cannot stall it)")
    parser.add_argument("--budget-hours", type=float, default=BUDGET_HOURS,
                        help="GPU-hours one corpus of none + dcgan + diffusion may take (default 12)")
    return parser.parse_args(argv)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _fmt(value, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget_s if args.budget_s is not None else (20.0 if args.toy else 420.0))
    torch = _torch()
    from emoaug.devices import resolve_device

    threads = args.threads or (1 if args.toy else 0)
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(args.device)
    if device.type == "cpu" and not (args.toy or args.allow_cpu):
        raise SystemExit("gpu_check: the paper sizes are meant for a GPU (a training step of the paper DCGAN is "
                         "~11 TFLOP); use --toy on a CPU, or --allow-cpu to try anyway")
    memory_cap = None
    if device.type == "cuda" and args.memory_gib > 0:
        total = torch.cuda.get_device_properties(device).total_memory
        memory_cap = min(args.memory_gib * 2**30, total)
        torch.cuda.set_per_process_memory_fraction(memory_cap / total, device)
    settings = paper_settings()
    sizes = model_sizes(settings, args.toy)
    results: dict[str, Any] = {
        "meta": {"mode": "toy" if args.toy else "paper", "device": str(device),
                 "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                 or platform.machine(), "torch": torch.__version__, "cuda": torch.version.cuda,
                 "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
                 "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                 "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32, "cpu_threads": torch.get_num_threads(),
                 "memory_cap_gib": None if memory_cap is None else memory_cap / 2**30,
                 "device_memory_gib": torch.cuda.get_device_properties(device).total_memory / 2**30
                 if device.type == "cuda" else None,
                 "budget_s": budget.total, "shapes": {"n_mels": sizes["n_mels"], "n_frames": sizes["n_frames"]},
                 "tolerance": {"fp32": TOLERANCE[False], "bf16": TOLERANCE[True]},
                 "sampling_note": f"diffusion sampling is timed over {sizes['sampling_steps_timed']} DDIM steps per "
                                  f"call and extrapolated to the paper's {settings['diffusion_sampling_evaluations']}"},
        "settings": settings, "sizes": sizes, "speed": {}, "agreement": {}, "proxy": {}, "skipped": {}}
    mode = "TOY shapes (figures mean nothing for a GPU)" if args.toy else "paper shapes"
    print(f"gpu_check: {mode} {sizes['n_mels']} x {sizes['n_frames']} on {device} "
          f"({results['meta']['device_name']}), torch {torch.__version__}, budget {budget.total:.0f} s")

    def progress(line: str) -> None:
        print(f"[{budget.used():5.0f} s] {line}", flush=True)

    def save() -> None:  # after every phase, so a run stopped early still leaves its figures
        if args.json:
            results["meta"]["elapsed_s"] = budget.used()
            Path(args.json).write_text(json.dumps(_finite(results), indent=2, default=str))

    def guarded(what: str, fn, *fn_args, **fn_kwargs) -> dict[str, Any]:
        """One measurement; an unexpected error is recorded (with its traceback on stderr), not fatal."""
        try:
            return fn(*fn_args, **fn_kwargs)
        except Exception as err:  # a one-shot GPU run should still report everything else
            print(f"{what} failed:", file=sys.stderr)
            traceback.print_exc()
            free_memory(device)
            return {"status": f"error: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"}

    benches = make_benches(sizes, settings, device)
    for bench in benches:  # CPU vs device first: which settings may be used at all
        results["agreement"][bench.name] = row = guarded(f"agreement {bench.name}", check_agreement, bench)
        progress(f"agreement {bench.name}: " + ", ".join(
            f"{p} {_fmt(r.get('rel_error'), '.1e')}{'' if r.get('pass') else ' FAIL'}"
            for p, r in row.items() if isinstance(r, dict)))
    save()

    # speed: 55 % of what is left, shared by weight over every (model, setting); the costliest model (the
    # diffusion U-Net, which dominates the projection) first, so an overrun never squeezes it out
    benches.sort(key=lambda bench: -bench.weight)
    items = [(bench, precision) for bench in benches for precision in bench.precisions()]
    share = 0.55 * max(budget.left(), 0.0) / sum(bench.weight for bench, _ in items)
    for bench, precision in items:
        if budget.left() <= 0 and not args.toy:  # --toy always measures everything (at minimum counts)
            results["skipped"][f"{bench.name}/{precision}"] = "budget spent"
            continue
        warmup = 1 if bench.name == "diffusion" and not args.toy else 2
        row = guarded(f"{bench.name} {precision}", measure_speed, bench, precision, share * bench.weight, warmup,
                      min_window=0.1 if args.toy else 0.5)
        if row["status"] == "ok" and bench.name == "diffusion":  # extrapolated to the paper's sampler steps
            row["paper_steps"] = settings["diffusion_sampling_evaluations"]
            row["items_per_s_at_paper_steps"] = row["row_steps_per_s"] / row["paper_steps"]
        results["speed"].setdefault(bench.name, {})[precision] = row
        progress(f"{bench.name} {precision}: " + (f"{row['steps_per_s']:.3g} steps/s at {row['batch']} rows, "
                                                   f"{row[row['second_metric']]:.3g} {row['second_metric']}, peak "
                                                   f"{_fmt(row['peak_memory_mib'], '.0f')} MiB"
                                                   if row["status"] == "ok" else row["status"]))
    save()
    for bench in benches:
        if not bench.channels_last_ok:
            results["skipped"][f"{bench.name}/channels_last"] = bench.skip_note

    # mixed-precision proxy: 80 % of what is left
    share = 0.8 * max(budget.left(), 0.0) / sum(bench.weight for bench in benches)
    for bench in benches:
        if budget.left() <= 0 and not args.toy:
            results["skipped"][f"{bench.name}/proxy"] = "budget spent"
            continue
        results["proxy"][bench.name] = row = guarded(f"proxy {bench.name}", mixed_precision_proxy, bench,
                                                     share * bench.weight, min_steps=2 if args.toy else 4)
        progress(f"proxy {bench.name}: " + (f"K={row['steps']}, |fp32-bf16| {row['bf16_delta']:.3g}, seed noise "
                                             f"{row['seed_delta']:.3g}" if row["status"] == "ok" else row["status"]))
    save()

    rates, chosen = best_rates(results)
    results["rates"], results["rates_from"] = rates, chosen
    corpora = corpus_counts()
    results["corpora"] = corpora
    if all(rates[key] for key in RATE_KEYS):
        results["projection"] = {name: project_hours(rates, corpus, settings) for name, corpus in corpora.items()}
        # sized down from the published lengths (`paper-full`), as benchmarks/paper_cost.py sizes `paper`
        results["sizing"] = recommend_sizing(rates, corpora, paper_settings("paper-full"),
                                             budget_hours=args.budget_hours)
    else:
        results["projection"] = results["sizing"] = None
    results["projection_check"] = guarded("projection check", check_projection, benches, rates)
    results["meta"]["elapsed_s"] = budget.used()
    report(results, args)
    save()
    if args.json:
        print(f"wrote {args.json}")
    return 0


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print("\nTraining step speed (random inputs of the real shapes; peak = torch.cuda.max_memory_allocated during "
          "training steps; agree = max|device - CPU| / max|CPU|)")
    print(f"{'model':<15}{'setting':<20}{'rows':>5}{'steps/s':>9}{'second figure':>30}{'peak MiB':>10}{'agree':>10}")
    for name, rows in results["speed"].items():
        for precision, row in rows.items():
            agree = results["agreement"].get(name, {}).get(precision, {})
            if row.get("status") != "ok":
                print(f"{name:<15}{precision:<20}{row.get('status')}")
                continue
            metric = row["second_metric"]
            second = f"{row[metric]:.3g} {metric.replace('_per_s', '/s')}"
            if "items_per_s_at_paper_steps" in row:
                second = f"{row['items_per_s_at_paper_steps']:.3g} items/s at {row['paper_steps']} steps"
            mark = "" if agree.get("pass") else " FAIL"
            print(f"{name:<15}{precision:<20}{row['batch']:>5}{row['steps_per_s']:>9.3g}{second:>30}"
                  f"{_fmt(row['peak_memory_mib'], '.0f'):>10}{_fmt(agree.get('rel_error'), '.1e'):>10}{mark}")
    for name, rows in results["speed"].items():
        for precision, row in rows.items():
            for note in row.get("notes", []):
                print(f"  {name} {precision}: {note}")
            if row.get("needs_accumulation"):
                print(f"  {name} {precision}: ran at {row['batch']} rows, not the configured {row['config_batch']}; "
                      f"steps/s scaled to {row['config_batch']} rows = {row['full_batch_steps_per_s']:.3g} "
                      + ("(set the diffusion option micro_batch_size to at most that many rows)" if name == "diffusion"
                         else "(needs gradient accumulation, which this model's training loop does not have)"))
    for what, why in results["skipped"].items():
        print(f"  skipped {what}: {why}")
    settings = results["settings"]
    print(f"  diffusion sampling: {results['meta']['sampling_note']} (items/s at "
          f"{settings['diffusion_sampling_evaluations']} steps = row_steps/s / "
          f"{settings['diffusion_sampling_evaluations']})")
    tol = results["meta"]["tolerance"]
    print(f"  agreement: max|device - CPU fp32| / max|CPU fp32| of the same weights and input, eval mode; pass at "
          f"<= {tol['fp32']:g} (fp32 settings) or <= {tol['bf16']:g} (bf16)")

    print("\nMixed precision, a PROXY only (the real check is end-to-end UA over seeds): mean training loss over "
          "the last half of K steps, fp32 vs bf16 from the same init and data, against fp32 under another seed")
    for name, row in results["proxy"].items():
        if row.get("status") != "ok":
            print(f"  {name}: {row.get('status')}")
            continue
        verdict = "within seed noise" if row["within_seed_noise"] else "NOT within seed noise"
        print(f"  {name:<15} K={row['steps']:<4} |fp32 - bf16| {row['bf16_delta']:.3g}  |seed 0 - seed 1| "
              f"{row['seed_delta']:.3g}: bf16 {verdict}")

    print("\nRates used for the projection (best setting that agreed with CPU, fits 80 GiB, and for bf16 passed "
          "the proxy):")
    for key, value in results["rates"].items():
        print(f"  {key:<32}{_fmt(value):>10}  ({results['rates_from'][key] or 'no eligible setting'})")
    if results["projection"] is None:
        print("\nNo projection: a rate is missing (see above).")
        return
    toy = " (TOY rates: these hours mean nothing)" if args.toy else ""
    print(f"\nProjected GPU-hours of the `paper` profile{toy}: none + dcgan + diffusion, "
          f"{settings['n_folds']} folds x {settings['n_seeds']} seeds, protocols {', '.join(settings['protocols'])}, "
          f"labels {settings['labels']}; WORST CASE: every classifier runs all {settings['classifier_epochs']} epochs "
          f"(early stopping, patience {settings['classifier_patience']}, can only shorten it)")
    for name, proj in results["projection"].items():
        corpus = results["corpora"][name]
        rows = proj["rows_per_fold"]
        mean_train = sum(r["train"] for r in rows) / len(rows)
        print(f"  {name}: {corpus['items']} items of {corpus['files']} files, {corpus['speakers']} speakers; "
              f"~{mean_train:.0f} train rows per fold")
        print(f"    none {proj['none']:.1f} h, dcgan {proj['dcgan']:.1f} h, diffusion {proj['diffusion']:.1f} h, "
              f"total {proj['total']:.1f} h")
        biggest = sorted(((h, f"{g}.{w}") for g, d in proj["components"].items() for w, h in d.items()),
                         reverse=True)[:3]
        print("    largest parts: " + ", ".join(f"{what} {h:.1f} h" for h, what in biggest))
    sizing = results["sizing"]
    full = sizing["paper_full"]
    print(f"\n`paper-full` (published): classifier {full['classifier_epochs']} epochs, DCGAN {full['dcgan_steps']} "
          f"steps, diffusion {full['diffusion_train_steps']} steps: "
          + ", ".join(f"{k} {v:.1f} h" for k, v in full["hours"].items()))
    print(f"recommended `paper` (<= {sizing['budget_hours']:g} GPU-hours per corpus, worst case; model sizes, "
          f"folds, seeds kept): classifier {sizing['classifier_epochs']} epochs, DCGAN {sizing['dcgan_steps']} steps, "
          f"diffusion {sizing['diffusion_train_steps']} steps (scale {sizing['scale']:.4f}): "
          + ", ".join(f"{k} {v:.1f} h" for k, v in sizing["hours"].items())
          + ("" if sizing["fits"] else "  -- DOES NOT FIT even at the floors " + str(sizing["floors"])))
    report_projection_check(results.get("projection_check") or {})
    print(f"elapsed {results['meta']['elapsed_s']:.0f} s of a {results['meta']['budget_s']:.0f} s budget")


def report_projection_check(check: dict[str, Any]) -> None:
    if "rates" not in check:
        print(f"\nNo projection check: {check.get('status', 'not run')}")
        return
    gpu = check["gpu_assumed"]
    print(f"\nbenchmarks/paper_cost.py's projection against these measurements: it assumes {gpu['name']} sustaining "
          f"{check['sustained_tflops']:.1f} TFLOP/s ({gpu['utilisation']:.0%} of {gpu['bf16_dense_tflops']} bf16 "
          "dense); FLOPs counted here, on this device, with its counter")
    print(f"{'rate':<32}{'GFLOP/unit':>12}{'projected/s':>13}{'measured/s':>12}{'measured/projected':>20}"
          f"{'TFLOP/s reached':>17}")
    for key, row in check["rates"].items():
        print(f"{key:<32}{row['flops_per_unit'] / 1e9:>12.4g}{row['projected_per_s']:>13.4g}"
              f"{_fmt(row['measured_per_s'], '.4g'):>12}{_fmt(row['measured_over_projected'], '.3g'):>20}"
              f"{_fmt(row['achieved_tflops'], '.3g'):>17}")


if __name__ == "__main__":
    sys.exit(main())
