"""Profiles and the fully resolved run configuration (plain dataclasses, recorded with every run)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import EmoaugError
from .limits import DEFAULT_MAX_DURATION, DEFAULT_MIN_DURATION


@dataclass(frozen=True)
class ClassifierSettings:
    """One fixed classifier protocol: architecture, its size and how it is trained."""

    arch: str
    arch_kwargs: dict[str, Any]
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int | None  # epochs without a better validation UA before stopping (None: the whole schedule)
    lr_schedule: str = "constant"  # or "cosine" (annealed to 0 over ``epochs``)
    class_weight: str | None = None  # or "balanced"
    input_norm: str = "none"  # or "bins" / "utterance" / "utterance_mean" (emoaug.classifiers.training.TrainConfig)
    # validation speakers per fold: None = the split's default (about a quarter of the training speakers),
    # 0 = none: every training speaker trains, for the whole fixed schedule (no early stopping)
    val_speakers: int | None = None
    # "fp32", or "bf16": forward passes and losses under bfloat16 autocast (emoaug.classifiers.training); a
    # profile's "auto" is resolved per machine before anything is keyed (emoaug.config.resolve_precision)
    precision: str = "fp32"

    def identity(self) -> dict[str, Any]:
        """What enters content keys: every field, and ``precision`` only when it is not fp32 (so the keys of
        fp32 runs stay those they had before the option existed)."""
        fields = dict(self.__dict__)
        if fields.get("precision") == "fp32":
            fields.pop("precision")
        return fields


@dataclass(frozen=True)
class Profile:
    """How much compute a run spends; every field can be overridden from the command line."""

    name: str
    description: str
    preset: str
    classifier: str
    classifiers: dict[str, ClassifierSettings]
    n_folds: int
    n_seeds: int
    synthetic_ratio: float
    export_per_emotion: int  # generated wavs written per emotion (first fold and seed only)
    griffin_lim_iters: int
    # generator name -> options overriding the defaults of its Config (emoaug.generators.options), which are the
    # quick budget; a generator not named here (a plugin, say) runs with its Config's defaults
    generators: dict[str, dict[str, Any]] = field(default_factory=dict)


_SMALL_BLSTM = {"channels": 32, "lstm_hidden": 32, "lstm_layers": 1}
_QUICK_BLSTM = {"channels": 64, "lstm_hidden": 64, "lstm_layers": 1, "conv_dropout": 0.0, "lstm_dropout": 0.0,
                "time_pool": 4}

# Generator sizes per profile. These options enter every cell's key: changing one recomputes those cells.
_SMOKE_GENERATORS: dict[str, dict[str, Any]] = {  # seconds on a CPU: proves the plumbing, not the models
    "vae": {"widths": (8, 16), "steps": 20, "batch_size": 8, "log_every": 5},
    "dcgan": {"noise_dim": 16, "g_widths": (16, 8), "d_widths": (8, 16), "steps": 20, "batch_size": 8,
              "log_every": 5, "bn_batches": 2},
    "cyclegan": {"channels": 4, "residual_channels": 32, "n_blocks": 1, "disc_channels": 8, "steps": 4,
                 "batch_size": 4, "identity_steps": None},
    # patch 8: the middle block's self-attention over (mel, frame) positions is quadratic in them; at patch 4 it
    # took most of a smoke cell's time (wiring checks need it run, not large)
    "diffusion": {"base_channels": 8, "channel_mults": (1, 2), "patch_size": 8, "cond_dim": 16,
                  "style_channels": 4, "style_dim": 8, "ser_channels": 8, "ser_lstm_hidden": 8, "ser_epochs": 1,
                  "train_steps": 4, "batch_size": 8, "warmup_steps": 1, "sampling_steps": 4, "ema_decay": 0.0},
}
_PAPER_GENERATORS: dict[str, dict[str, Any]] = {  # the published sizes, for a GPU
    # EmoGen's published settings (latent 32, beta 0.1, lr 3e-4, batch 16, clip 0.5)
    "vae": {"widths": (32, 64, 128, 256), "steps": 30000, "batch_size": 16, "lr": 3e-4, "log_every": 200},
    # Radford et al.'s DCGAN widths (1024-512-256-128 / 128-256-512-1024, z 100, batch 64)
    "dcgan": {"noise_dim": 100, "g_widths": (1024, 512, 256, 128), "d_widths": (128, 256, 512, 1024),
              "steps": 30000, "batch_size": 64, "log_every": 200, "bn_batches": 32},
    # CycleGAN-VC2 scale and schedule (2-D 128/256 channels, 6 residual 1-D blocks of 512, 2e5 iterations of
    # batch 1 on 128-frame segments, lr 2e-4/1e-4, identity loss for the first 1e4 iterations)
    "cyclegan": {"channels": 128, "residual_channels": 512, "n_blocks": 6, "disc_channels": 128, "steps": 200_000,
                 "batch_size": 1, "crop_frames": 128, "lr_g": 2e-4, "lr_d": 1e-4, "identity_steps": 10_000},
    # Kim & Lee 2024 (Tables 3-4): T = 1000 linear 1e-4..0.02, batch 32; Table 4's network: a 1-D U-Net over
    # frames with the 80 mel bins as channels, widths 256/512/1024 with two stride-2 steps, one residual block per
    # level, linear attention in each level and the middle (emoaug/generators/diffusion/unet1d.py has the reading)
    "diffusion": {"unet": "1d", "schedule": "linear", "prediction": "eps", "timesteps": 1000, "base_channels": 256,
                  "channel_mults": (1, 2, 4), "num_res_blocks": 1, "attention_at": (0, 1), "patch_size": 1,
                  "groups": 32, "heads": 8, "cond_dim": 512, "style_channels": 32, "style_dim": 128,
                  "ser_channels": 128,
                  "ser_lstm_hidden": 128, "ser_epochs": 50, "ser_patience": 10, "train_steps": 200_000,
                  "batch_size": 32, "lr": 1e-4, "warmup_steps": 1000, "ema_decay": 0.9999, "sampling_steps": 50,
                  "sample_batch_size": 32},
}

#: the published training lengths (Kim & Lee Table 3: 800 classifier epochs; 200,000 diffusion steps; DCGAN 30,000)
_PUBLISHED_LENGTHS = {"classifier_epochs": 800, "dcgan_steps": 30_000, "diffusion_train_steps": 200_000}
#: `paper`: the same sizes, lengths cut by one common factor so that none + dcgan + diffusion, 5 folds x 3 seeds,
#: fits 12 GPU-hours on EmoDB and RAVDESS (benchmarks/paper_cost.py: counted FLOPs at a stated H100/H200 rate)
#: (paper_cost on 2026-12-05: the published lengths project to 32.3 GPU-hours on EmoDB and 35.5 on RAVDESS; one
#: factor of 0.34 gives 10.8 and 11.9)
_PAPER_LENGTHS = {"classifier_epochs": 270, "dcgan_steps": 10_000, "diffusion_train_steps": 67_000}


def _paper_profile(name: str, description: str, lengths: dict[str, int]) -> Profile:
    generators = {**_PAPER_GENERATORS,
                  "dcgan": {**_PAPER_GENERATORS["dcgan"], "steps": lengths["dcgan_steps"]},
                  "diffusion": {**_PAPER_GENERATORS["diffusion"], "train_steps": lengths["diffusion_train_steps"]}}
    return Profile(
        name=name,
        description=description,
        preset="kim2024",
        classifier="resnet50",
        classifiers={
            # Kim & Lee 2024 Table 3: Adam 1e-4, cross-entropy, 800 epochs (we add early stopping).
            "resnet50": ClassifierSettings("resnet50", {}, epochs=lengths["classifier_epochs"], batch_size=32,
                                           lr=1e-4, weight_decay=0.0, patience=50),
            # Malik et al. 2023: CNN-BLSTM, 100 epochs, lr 1e-5, batch 64.
            "cnn_blstm": ClassifierSettings("cnn_blstm", {}, epochs=100, batch_size=64, lr=1e-5,
                                            weight_decay=0.0, patience=20),
        },
        n_folds=5,
        n_seeds=3,
        synthetic_ratio=1.0,
        export_per_emotion=3,
        griffin_lim_iters=64,
        generators=generators,
    )


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="seconds; for tests and wiring checks, numbers mean nothing",
        preset="emogen",
        classifier="cnn_blstm",
        classifiers={
            "cnn_blstm": ClassifierSettings("cnn_blstm", _SMALL_BLSTM, epochs=2, batch_size=32, lr=1e-3,
                                            weight_decay=0.0, patience=2),
            "resnet50": ClassifierSettings("resnet50", {}, epochs=1, batch_size=16, lr=1e-4,
                                           weight_decay=0.0, patience=1),
        },
        n_folds=2,
        n_seeds=1,
        synthetic_ratio=0.5,
        export_per_emotion=1,
        griffin_lim_iters=4,
        generators=_SMOKE_GENERATORS,
    ),
    "quick": Profile(
        name="quick",
        description="minutes on a 2-core CPU; realistic relative figures",
        preset="emogen",
        classifier="cnn_blstm",
        classifiers={
            # One BLSTM layer of 64 and 64 conv channels: 3.6x cheaper per epoch than Malik's full size on
            # 128 x 173 rows (measured), which is what let every generator run 5 folds x 1 seed in under 30 min.
            # Every training speaker trains (no validation speakers, no early stopping) for a fixed cosine
            # schedule, without dropout, pooling time by 4 between conv blocks (a 4x shorter LSTM sequence):
            # +12.4 pp UA [+9.9, +15.1] over early stopping on a quarter of the training speakers, on real
            # EmoDB. Removing each row's own mean per mel bin at the input adds +4.2 pp [+1.0, +7.2]
            # (docs/CLASSIFIER_ABLATION.md).
            # bf16 autocast where the CPU computes bf16 in hardware: 1.48x less compute per cell, UA -0.3 pp
            # [-2.0, +1.5] (p 0.80) against fp32 on real EmoDB, 5 folds x 3 seeds (benchmarks/classifier_flops.py)
            # 25 epochs of the cosine schedule instead of 40: 1.6x fewer epochs, UA -0.4 pp [-2.3, +1.5] (p 0.86)
            # on real EmoDB, 5 folds x 6 seeds paired; 20 epochs lost 3.0 pp (docs/CLASSIFIER_ABLATION.md, round 8)
            "cnn_blstm": ClassifierSettings("cnn_blstm", _QUICK_BLSTM, epochs=25, batch_size=32, lr=1e-3,
                                            weight_decay=1e-4, patience=None, lr_schedule="cosine",
                                            input_norm="utterance_mean", val_speakers=0, precision="auto"),
            "resnet50": ClassifierSettings("resnet50", {}, epochs=15, batch_size=16, lr=1e-4,
                                           weight_decay=0.0, patience=5),
        },
        n_folds=5,
        n_seeds=3,  # paired tests need more than 5 pairs: with 5 the smallest Wilcoxon p is 0.0625
        synthetic_ratio=1.0,
        export_per_emotion=1,
        griffin_lim_iters=32,
        generators={},  # each generator's Config defaults are this budget (measured in each generator's module)
    ),
    "paper": _paper_profile("paper", "published sizes (Kim & Lee 2024 Tables 3-4; Malik et al. 2023), training "
                            "lengths cut to fit 12 GPU-hours per corpus (benchmarks/paper_cost.py); for a GPU",
                            _PAPER_LENGTHS),
    "paper-full": _paper_profile("paper-full", "published sizes and training lengths (800 epochs, 200,000 diffusion "
                                 "steps); for a GPU, see benchmarks/paper_cost.py for the hours", _PUBLISHED_LENGTHS),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise EmoaugError(f"--profile: unknown profile {name!r} (choose from {', '.join(PROFILES)})")
    return PROFILES[name]


#: augment: also train on synthetic rows only (Malik et al.); clarity: the real-only judge scores enhanced
#: (or class-conditional generated) versions of the test utterances (Kim & Lee); cross: test on --test-corpus
PROTOCOLS = ("augment", "clarity", "cross")
DEFAULT_PROTOCOLS = ("augment", "clarity")


# How long a run waits for another process before it gives up with one line (each stated in --help):
RAY_CONNECT_TIMEOUT_S = 30.0  # a --ray-address to accept a connection (Ray itself would retry for ever)
TRACKING_REQUEST_TIMEOUT_S = 10  # each request to an MLflow tracking server (no retries; results stay local)
STORE_LOCK_WAIT_S = 600.0  # another run logging into the same local sqlite MLflow store (its lock)


@dataclass(frozen=True)
class Experiment:
    """What determines a run's numbers and tables, fully resolved (no 'default' left inside). It is hashed
    whole: its :meth:`fingerprint` names the run folder, so two runs share a folder exactly when they ask the
    same question. Where and how it runs is the :class:`Execution`."""

    corpus: str = "synthetic"
    data_root: str | None = None
    labels: str = "6class"
    generators: list[str] = field(default_factory=lambda: ["none", "specaugment"])
    generator_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocols: list[str] = field(default_factory=lambda: list(DEFAULT_PROTOCOLS))
    test_corpus: str | None = None  # the cross protocol's test corpus (all its items are test items)
    test_data_root: str | None = None
    baseline_generator: str | None = "dcgan"  # Kim & Lee Tables 10-11 compare against it (None: skip)
    # the classic real-only reference row (openSMILE functionals + SVM): "compare", "egemaps" or "off"
    reference: str = "compare"
    profile: str = "quick"
    preset: str = "emogen"
    split: str = "kfold"
    n_folds: int = 5
    n_seeds: int = 1
    seed: int = 0
    synthetic_ratio: float = 1.0  # the ratio of every table's cells
    # --synthetic-ratio with several values: every ratio of the curve, ascending (synthetic_ratio among them);
    # empty when one ratio was given
    curve_ratios: list[float] = field(default_factory=list)
    classifier: ClassifierSettings | None = None
    # --speaker-norm: each speaker's rows (and functionals) standardised with that speaker's own statistics;
    # transductive (test speakers' unlabelled audio), flagged in every table (emoaug/speaker_norm.py)
    speaker_norm: bool = False
    on_bad_file: str = "skip"
    # --follow-links: read files reached through a symbolic link leaving the corpus root (else skipped)
    follow_links: bool = False
    # --allow-near-duplicates: run although test items have near-copies in training (flagged in every table)
    allow_near_duplicates: bool = False
    min_duration: float = DEFAULT_MIN_DURATION  # seconds; shorter and longer clips are skipped
    max_duration: float = DEFAULT_MAX_DURATION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        """Hash of every field: what the run folder's name carries."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha1(blob).hexdigest()

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Experiment:
        """From a run folder's ``config.json`` record (the names it knows; a missing one keeps its default)."""
        values = {f.name: stored[f.name] for f in fields(cls) if f.name in stored}
        if values.get("classifier") is not None:
            values["classifier"] = ClassifierSettings(**values["classifier"])
        return cls(**values)


@dataclass(frozen=True)
class Execution:
    """Where and how an experiment runs and where it is written; none of these changes a number (cells are keyed
    by content), so none is in the run folder's name."""

    device: str = "cpu"
    out_dir: str = "runs"
    run_name: str | None = None
    cache_dir: str | None = None
    store_dir: str | None = None
    tracking_uri: str | None = None
    executor: str = "local"
    jobs: int = 1
    threads: int = 1  # torch intra-op threads per worker
    ray_address: str | None = None
    fresh: bool = False  # recompute cells although the store holds them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Execution:
        return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})


@dataclass(frozen=True)
class RunConfig:
    """A resolved run: the experiment (what it computes) and its execution (where and how)."""

    experiment: Experiment = field(default_factory=Experiment)
    execution: Execution = field(default_factory=Execution)

    def fingerprint(self) -> str:
        return self.experiment.fingerprint()

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment.to_dict(), "execution": self.execution.to_dict()}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> RunConfig:
        """From ``config.json``; folders written before the split kept every field at the top level."""
        return cls(Experiment.from_dict(stored.get("experiment", stored)),
                   Execution.from_dict(stored.get("execution", stored)))


def flat_record(stored: dict[str, Any]) -> dict[str, Any]:
    """A run folder's ``config.json`` with the experiment's and the execution's fields at the top level, for
    readers that look fields up by name; folders written before the split already had them there."""
    rest = {key: value for key, value in stored.items() if key not in ("experiment", "execution")}
    return {**rest, **stored.get("execution", {}), **stored.get("experiment", {})}


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX); elsewhere bf16 is emulated, slower."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: bf16 on a CPU that computes it in hardware, fp32 elsewhere (CUDA included: kept as measured)."""
    if precision not in PRECISIONS:
        raise EmoaugError(f"--precision: unknown value {precision!r} (choose from {', '.join(PRECISIONS)})")
    if precision != "auto":
        return precision
    return "bf16" if not device.startswith("cuda") and cpu_has_bf16() else "fp32"


def resolve_classifier(profile: Profile, arch: str | None, epochs: int | None, precision: str | None = None,
                       device: str = "cpu") -> ClassifierSettings:
    arch = arch or profile.classifier
    if arch not in profile.classifiers:
        choices = ", ".join(profile.classifiers)
        raise EmoaugError(f"--classifier: unknown classifier {arch!r} (choose from {choices})")
    settings = profile.classifiers[arch]
    if epochs is not None:
        if epochs < 1:
            raise EmoaugError(f"--epochs must be >= 1, got {epochs}")
        settings = replace(settings, epochs=epochs)
    return replace(settings, precision=resolve_precision(precision or settings.precision, device))
