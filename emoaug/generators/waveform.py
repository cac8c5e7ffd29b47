"""Waveform-domain baselines: speed perturbation, pitch shift, added noise and a configurable audiomentations chain.

The question reviewers ask first of a generative augmentation is whether it beats these. They work on audio,
not on log-mel rows: each new row is a training-fold recording, decoded exactly as the features phase decodes
it, changed in the waveform, and turned into the preset's log-mel rows by the same function as real items
(:func:`emoaug.features.waveform_features`), normalised with the fold's statistics. The audio reaches the
generator through a :class:`WaveformFrontEnd` that the cell builds for the fold: it reads one recording at a
time (a worker never holds the fold's audio) and refuses any item outside the training fold, and every item it
read is audited like the generator's fit.

``fit`` learns nothing but which training items carry which emotion; ``generate(n_per_class, seed)`` draws
source items per class in a seeded order and one random change per new row, so the same seed gives the same
rows. Speed perturbation resamples (Kaldi's recipe: tempo and pitch change together, factors 0.9 and 1.1);
pitch, noise and the chain use audiomentations (https://github.com/iver56/audiomentations), whose random draws
come from the global ``random`` and ``numpy.random`` states: they are seeded per row and restored afterwards.
"""

from __future__ import annotations

import inspect
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import BadAudioError, EmoaugError, LeakageError
from ..featureset import FeatureSet
from .base import Generator
from .options import option

#: audiomentations transforms a ``wavaug`` chain may name (those without optional dependencies or files)
CHAIN_TRANSFORMS = ("AddGaussianNoise", "AddGaussianSNR", "AddColorNoise", "AirAbsorption", "Aliasing",
                    "BandPassFilter", "BandStopFilter", "BitCrush", "ClippingDistortion", "Gain", "GainTransition",
                    "HighPassFilter", "HighShelfFilter", "LowPassFilter", "LowShelfFilter", "PeakingFilter",
                    "PitchShift", "PolarityInversion", "Reverse", "SevenBandParametricEQ", "Shift",
                    "TanhDistortion", "TimeMask", "TimeStretch")
#: spectral decay per octave of each noise colour (dB; audiomentations' AddColorNoise)
NOISE_DECAY_DB = {"white": 0.0, "pink": -3.01, "brown": -6.02, "blue": 3.01, "violet": 6.02}


@dataclass
class WaveformFrontEnd:
    """The fold's audio for a waveform generator, and the way back to rows.

    ``read(item_id)`` decodes one training recording at ``sample_rate`` (as the features phase does);
    ``to_rows(waveforms, source_ids)`` gives their normalised log-mel rows, [S, n_mels, n_frames] per waveform,
    standardised as the source item's rows are. Reading an item outside ``allowed`` is a LeakageError."""

    sample_rate: int
    read_audio: Callable[[str], np.ndarray]
    to_rows: Callable[[Sequence[np.ndarray], Sequence[str]], list[np.ndarray]]
    allowed: frozenset[str]
    read_ids: set[str] = field(default_factory=set)  # what was read: the cell audits it

    def read(self, item_id: str) -> np.ndarray:
        if item_id not in self.allowed:
            raise LeakageError(f"a waveform generator asked for the audio of {item_id!r}, which is not a training "
                               "item of this fold")
        self.read_ids.add(item_id)
        try:
            return self.read_audio(item_id)
        except BadAudioError as err:  # it was read when the corpus was scanned: here is not where that ran
            raise EmoaugError(f"{err} (waveform generators read training recordings where the cells run: every "
                              "Ray node needs the corpus at the same path)") from None


class WaveformGenerator(Generator):
    """Base of generators that change training recordings in the waveform (subclasses implement ``change``)."""

    domain: ClassVar[str] = "waveform"
    #: 2: changed waveforms are peak-normalised as decoded files are (emoaug.features.waveform_features)
    version: ClassVar[str] = "2"

    def __init__(self, **config: Any):
        super().__init__(**config)
        self.front_end: WaveformFrontEnd | None = None
        self.sources: dict[str, list[str]] = {}  # label -> training item ids, in training order
        self.speaker_of: dict[str, str] = {}

    def use_front_end(self, front_end: WaveformFrontEnd) -> WaveformGenerator:
        self.front_end = front_end
        return self

    def _fit(self, train: FeatureSet) -> None:
        names = train.label_names()
        speakers = train.speakers or [""] * len(train)
        for item_id, label, speaker in zip(train.item_ids, names, speakers):
            items = self.sources.setdefault(label, [])
            if item_id not in self.speaker_of:
                items.append(item_id)
                self.speaker_of[item_id] = speaker
        self.shape = tuple(train.x.shape[1:])

    def _generate(self, n_per_class: dict[str, int], seed: int) -> FeatureSet:
        if self.front_end is None:
            raise EmoaugError(f"generator {self.name!r} works on waveforms: give it the fold's audio with "
                              "use_front_end() before generate()")
        xs, ys, ids, speakers = [], [], [], []
        for label in self.labels:
            rows, sources = self._class_rows(label, n_per_class.get(label, 0), seed)
            xs += rows
            ys += [self.labels.index(label)] * len(rows)
            ids += [f"gen:{self.name}:{source}:{k}" for k, source in enumerate(sources)]
            speakers += [self.speaker_of[source] for source in sources]
        x = torch.from_numpy(np.stack(xs)) if xs else torch.zeros((0, *self.shape))
        return FeatureSet(x=x.to(torch.float32), y=torch.as_tensor(ys, dtype=torch.int64), labels=self.labels,
                          item_ids=ids, speakers=speakers)

    def _class_rows(self, label: str, n: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
        """``n`` rows of ``label``: changed copies of its training items, each item once before any repeats
        (in a seeded order), one seeded change per copy."""
        pool = self.sources.get(label, [])
        rows: list[np.ndarray] = []
        sources: list[str] = []
        if not n or not pool:
            return rows, sources
        class_seed = [seed, self.labels.index(label)]
        order = np.random.default_rng(class_seed).permutation(len(pool))
        copy = 0
        while len(rows) < n:
            source = pool[order[copy % len(pool)]]
            rng = np.random.default_rng([*class_seed, copy])
            changed = self.change(self.front_end.read(source), self.front_end.sample_rate, rng)
            for row in self.front_end.to_rows([changed], [source])[0][: n - len(rows)]:
                rows.append(row)
                sources.append(source)
            copy += 1
        return rows, sources

    def change(self, y: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """One random change of waveform ``y``; all randomness from ``rng``."""
        raise NotImplementedError


def _seeded(transform: Callable[..., np.ndarray], y: np.ndarray, sample_rate: int,
            rng: np.random.Generator) -> np.ndarray:
    """``transform(y)`` with the global random states audiomentations draws from seeded from ``rng`` and put
    back afterwards (so a cell's other randomness is untouched)."""
    saved_random, saved_numpy = random.getstate(), np.random.get_state()
    seed = int(rng.integers(2**32))
    random.seed(seed)
    np.random.seed(seed)
    try:
        return np.asarray(transform(samples=np.asarray(y, dtype=np.float32), sample_rate=sample_rate),
                          dtype=np.float32)
    finally:
        random.setstate(saved_random)
        np.random.set_state(saved_numpy)


# ------------------------------------------------------------------------------------------------ speed
@dataclass(frozen=True)
class SpeedConfig:
    factors: tuple[float, ...] = option((0.9, 1.1), "speed factors, one drawn per copy (Kaldi's 0.9 and 1.1; "
                                        "tempo and pitch change together)", gt=0.5, lt=2.0, min_items=1)


class SpeedPerturbation(WaveformGenerator):
    """Speed perturbation by resampling (Ko et al. 2015; Kaldi's recipes): factor f plays the recording f times
    faster, so its length is divided by f and its pitch multiplied by f."""

    name = "speed"
    Config = SpeedConfig

    def change(self, y, sample_rate, rng):
        from scipy.signal import resample_poly

        factor = Fraction(float(rng.choice(self.options.factors))).limit_denominator(100)
        return resample_poly(y, factor.denominator, factor.numerator).astype(np.float32)


# ------------------------------------------------------------------------------------------------ pitch
@dataclass(frozen=True)
class PitchConfig:
    min_semitones: float = option(-2.0, "lowest shift, semitones", ge=-12, le=12)
    max_semitones: float = option(2.0, "highest shift, semitones (drawn uniformly between the two)", ge=-12, le=12)

    def __post_init__(self):
        if self.min_semitones > self.max_semitones:
            raise EmoaugError(f"min_semitones ({self.min_semitones}) is above max_semitones ({self.max_semitones})")


class PitchShift(WaveformGenerator):
    """Pitch shift at constant tempo (audiomentations.PitchShift)."""

    name = "pitch"
    Config = PitchConfig

    def change(self, y, sample_rate, rng):
        from audiomentations import PitchShift as Shift

        transform = Shift(min_semitones=self.options.min_semitones, max_semitones=self.options.max_semitones, p=1.0)
        return _seeded(transform, y, sample_rate, rng)


# ------------------------------------------------------------------------------------------------ noise
@dataclass(frozen=True)
class NoiseConfig:
    min_snr_db: float = option(10.0, "lowest signal-to-noise ratio, dB", ge=-20, le=80)
    max_snr_db: float = option(30.0, "highest signal-to-noise ratio, dB (drawn uniformly between the two)",
                               ge=-20, le=80)
    color: str = option("white", "noise colour", choices=tuple(NOISE_DECAY_DB))

    def __post_init__(self):
        if self.min_snr_db > self.max_snr_db:
            raise EmoaugError(f"min_snr_db ({self.min_snr_db}) is above max_snr_db ({self.max_snr_db})")


class AddedNoise(WaveformGenerator):
    """Gaussian noise of a chosen colour at a sampled SNR (audiomentations.AddColorNoise)."""

    name = "noise"
    Config = NoiseConfig

    def change(self, y, sample_rate, rng):
        from audiomentations import AddColorNoise

        decay = NOISE_DECAY_DB[self.options.color]
        transform = AddColorNoise(min_snr_db=self.options.min_snr_db, max_snr_db=self.options.max_snr_db,
                                  min_f_decay=decay, max_f_decay=decay, p=1.0)
        return _seeded(transform, y, sample_rate, rng)


# ------------------------------------------------------------------------------------------------ a chain
@dataclass(frozen=True)
class ChainConfig:
    transforms: tuple[str, ...] = option(("AddGaussianSNR", "Shift", "BandPassFilter", "ClippingDistortion"),
                                         "audiomentations transforms applied in this order (default: nkululeko's "
                                         "chain less its Limiter, which needs an optional dependency)",
                                         choices=CHAIN_TRANSFORMS, min_items=1)
    p: float = option(0.5, "probability that each transform is applied to a copy (a copy that none changed is its "
                           "source's rows again: (1 - p) ** len(transforms) of them)", ge=0, le=1)
    params: str = option("{}", 'JSON: keyword arguments per transform, e.g. {"AddGaussianSNR": {"min_snr_db": 5}} '
                                "(audiomentations' own defaults otherwise)")

    def __post_init__(self):
        chain(self)  # a typo or a bad value in a transform's keyword arguments fails here, in one line


def chain(config: ChainConfig):
    """The audiomentations Compose the config describes (its transforms check their own arguments)."""
    from audiomentations import Compose

    params = chain_parameters(config)
    transforms = []
    for name in config.transforms:
        try:
            transforms.append(_transform_class(name)(**params.get(name, {}), p=config.p))
        except (TypeError, ValueError, AssertionError) as err:  # audiomentations' own argument checks
            raise EmoaugError(f"params: {name}: {' '.join(str(err).split()) or type(err).__name__}") from None
    return Compose(transforms)


def chain_parameters(config: ChainConfig) -> dict[str, dict[str, Any]]:
    try:
        params = json.loads(config.params)
    except json.JSONDecodeError as err:
        raise EmoaugError(f"params is not JSON ({err})") from None
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise EmoaugError('params must be a JSON object of objects, e.g. {"Gain": {"min_gain_db": -6}}')
    unknown = sorted(set(params) - set(config.transforms))
    if unknown:
        raise EmoaugError(f"params names transforms that are not in the chain: {', '.join(unknown)}")
    for name, kwargs in params.items():
        accepted = set(inspect.signature(_transform_class(name)).parameters) - {"p"}
        wrong = sorted(set(kwargs) - accepted)
        if wrong:
            raise EmoaugError(f"params: {name} takes no argument {', '.join(wrong)} (it takes "
                              f"{', '.join(sorted(accepted))})")
    return params


def _transform_class(name: str) -> type:
    import audiomentations

    return getattr(audiomentations, name)


class WaveformChain(WaveformGenerator):
    """A user's audiomentations recipe: ``transforms`` in order, each applied with probability ``p``."""

    name = "wavaug"
    Config = ChainConfig

    def change(self, y, sample_rate, rng):
        return _seeded(chain(self.options), y, sample_rate, rng)
