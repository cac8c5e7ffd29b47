"""Log-mel front-end presets: every setting of the front end, named (no torch: the CLI lists them instantly)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from .errors import EmoaugError
from .registry import Registry

# Bump when anything that changes cached values outside MelPreset changes (decoder, resampler,
# STFT details): old cache directories then stop matching instead of silently being reused.
FRONTEND_VERSION = 1

LENGTH_MODES = ("pad", "center", "segment")
NORMALISATIONS = ("zscore", "minmax", "none")


# ----------------------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class MelPreset:
    """Every setting of the front end; two presets with equal fingerprints give identical dB arrays."""

    name: str
    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float
    clip_seconds: float
    length_mode: str  # "pad" | "center" | "segment"
    n_frames: int | None = None  # None: 1 + n_samples // hop_length (center=True framing)
    normalisation: str = "zscore"  # "zscore" | "minmax" | "none"
    top_db: float = 80.0
    peak_normalise: bool = True

    def __post_init__(self):
        if self.length_mode not in LENGTH_MODES:
            raise EmoaugError(f"preset {self.name!r}: length_mode must be one of {LENGTH_MODES}, "
                              f"got {self.length_mode!r}")
        if self.normalisation not in NORMALISATIONS:
            raise EmoaugError(f"preset {self.name!r}: normalisation must be one of {NORMALISATIONS}, "
                              f"got {self.normalisation!r}")
        positive = {"sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop_length": self.hop_length,
                    "win_length": self.win_length, "n_mels": self.n_mels, "clip_seconds": self.clip_seconds,
                    "top_db": self.top_db}
        for field_name, value in positive.items():
            if not value > 0:
                raise EmoaugError(f"preset {self.name!r}: {field_name} must be positive, got {value!r}")
        if self.win_length > self.n_fft:
            raise EmoaugError(f"preset {self.name!r}: win_length {self.win_length} exceeds n_fft {self.n_fft}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise EmoaugError(f"preset {self.name!r}: need 0 <= fmin < fmax <= sample_rate/2, "
                              f"got fmin={self.fmin} fmax={self.fmax}")
        if self.n_frames is not None and self.n_frames < 1:
            raise EmoaugError(f"preset {self.name!r}: n_frames must be >= 1 or None, got {self.n_frames}")

    @property
    def n_samples(self) -> int:
        """Samples in one clip / segment."""
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def frames(self) -> int:
        """Frames per clip after cropping/padding (the T of every [S, M, T] array)."""
        if self.n_frames is not None:
            return int(self.n_frames)
        return 1 + self.n_samples // self.hop_length

    def fingerprint(self) -> str:
        """sha1 of the settings that change the cached (unnormalised) dB values.

        ``name`` and ``normalisation`` are left out: renaming a preset or normalising differently
        does not change what is stored.
        """
        relevant = {key: value for key, value in self.to_dict().items() if key not in ("name", "normalisation")}
        relevant["frontend_version"] = FRONTEND_VERSION
        blob = json.dumps(relevant, sort_keys=True, default=str).encode()
        return hashlib.sha1(blob).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, MelPreset] = {
    # Kim & Lee 2024, sec. 4.1 / Tables 2 and 4: 22050 Hz (printed as 22025), STFT window 1024, hop 256,
    # 80 mel bins, clips zero-padded to 10 s, z-score normalisation. Their Table 4 lists 861 frames; at
    # 22050 Hz centred framing gives 1 + 220500 // 256 = 862 (861 would follow from the printed 22025 Hz),
    # so we keep the derived count. fmin/fmax are not reported; 0-8 kHz follows the usual HiFi-GAN setup.
    "kim2024": MelPreset(name="kim2024", sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024,
                         n_mels=80, fmin=0.0, fmax=8000.0, clip_seconds=10.0, length_mode="pad",
                         n_frames=None, normalisation="zscore"),
    # Malik et al. 2023: n_fft 1024, hop 256, window 1024, 80 bands 0-8 kHz scaled to [-1, 1]; utterances
    # cut into 3 s segments (shorter ones zero-padded) giving 80 x 256 inputs, so frames are cropped to 256.
    "malik2023": MelPreset(name="malik2023", sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024,
                           n_mels=80, fmin=0.0, fmax=8000.0, clip_seconds=3.0, length_mode="segment",
                           n_frames=256, normalisation="minmax"),
    # EmoGen README (see reference/emogen_readme_claims.csv): 22050 Hz, n_fft 2048, hop 512, 128 mel bands
    # 20-8000 Hz, 4 s centre-crop or zero-pad, peak normalisation.
    "emogen": MelPreset(name="emogen", sample_rate=22050, n_fft=2048, hop_length=512, win_length=2048,
                        n_mels=128, fmin=20.0, fmax=8000.0, clip_seconds=4.0, length_mode="center",
                        n_frames=None, normalisation="minmax"),
}


#: the presets by name; plugins register more under the "emoaug.presets" entry-point group (a MelPreset)
PRESET_REGISTRY = Registry("preset", "--preset", PRESETS, entry_point_group="emoaug.presets")


def get_preset(name: str) -> MelPreset:
    preset = PRESET_REGISTRY.get(name)
    if not isinstance(preset, MelPreset):
        raise EmoaugError(f"--preset: {name!r} is not an emoaug.presets.MelPreset")
    return preset
