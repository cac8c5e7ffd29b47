"""``synthetic``: an acted-emotion corpus rendered locally with eSpeak NG, the default corpus.

It exists so that the whole benchmark runs out of the box (no licence, no download) on data
with the structure of the real corpora: several speakers, fixed neutral-content sentences,
every sentence spoken in every emotion. It is NOT a substitute for real emotional speech:
the emotions are prosody rules applied to a formant synthesiser, so results on it say
whether the pipeline works, not how well a method recognises human emotion.

File naming scheme (all files in the corpus root, 22050 Hz mono 16-bit PCM)::

    v03_s07_angry.wav  =  voice 03 (speaker "synthetic/v03"), sentence 07 (text_id "s07"), emotion

Voices are numbered from 00 in the order of ``VOICE_SPECS`` (even numbers male, odd female);
sentences in the order of ``SENTENCES``; the emotion word is the canonical name.
``metadata.json`` in the root records the seed, generator version, voices, prosody rules and
every utterance's parameters.

How emotion is rendered: ``PROSODY_RULES`` lists, per emotion, changes relative to the voice's
own neutral baseline (F0 level and range, tempo, pauses, loudness; eSpeak parameters) plus simple
DSP where eSpeak has no knob (spectral tilt, breath noise, tremor/jitter, shimmer). Directions
follow published tables of acoustic correlates; magnitudes are ours (see the dict).
Each utterance draws its own emotion intensity and parameter noise from a generator seeded by
(seed, voice, sentence, emotion), so classes overlap and generation does not depend on order.
Voices differ in pitch, tempo, range, expressiveness and recording channel, so models must
generalise across speakers. ``variation`` scales the per-utterance randomness: it is the
difficulty knob (0 = one set of prosody settings per voice and emotion; see DEFAULT_VARIATION).

Determinism: the same seed, sizes and variation give byte-identical files with the same eSpeak
NG build (its version is in ``metadata.json``), whatever the number of worker processes: each
utterance is synthesised in a freshly forked process (POSIX only: generation needs ``os.fork``),
see the eSpeak binding section.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal
import soundfile as sf

from .. import storage
from ..errors import EmoaugError

NAME = "synthetic"
ALL_EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "disgust")
WHERE_TO_GET = (
    "nothing to download: generated locally with eSpeak NG (espeakng-loader wheel) on first use "
    "into $EMOAUG_CACHE/synthetic or ~/.cache/emoaug/synthetic"
)
LAYOUT = "v03_s07_angry.wav files beside metadata.json"

# Bump whenever anything that changes the audio changes (rules, voices, DSP, sentences).
GENERATOR_VERSION = 1
SAMPLE_RATE = 22050
# The difficulty knob: scale of per-utterance randomness (emotion intensity and parameter noise).
# Calibration (8 voices x 12 sentences, seeds 0-2): log-mel band mean/std (+ deltas) statistics,
# peak-normalised 4 s clips, 5-fold StratifiedGroupKFold by speaker: logistic regression 69-74 %,
# MLP 70-72 %, RBF SVM 70-73 % UA on the 6 classes (77-81 % on the 4-class subset).
DEFAULT_VARIATION = 1.0

# Neutral-content sentences (no emotional words), like the EmoDB and RAVDESS scripts.
SENTENCES = (
    "The book is lying on the table.",
    "They will meet at the station tomorrow morning.",
    "The red folder is in the second drawer.",
    "We moved the chairs into the other room.",
    "The bus leaves at a quarter past seven.",
    "She put the keys next to the telephone.",
    "There are four windows on the north side.",
    "He wrote the numbers on a sheet of paper.",
    "The shop on the corner opens at nine.",
    "I have to carry the boxes upstairs.",
    "The letter arrived on a Tuesday afternoon.",
    "It takes about two hours by train.",
    "The blue car is parked behind the house.",
    "Most of the plates are in the kitchen.",
)


@dataclass(frozen=True)
class VoiceSpec:
    """One speaker: an eSpeak language plus a voice variant file from ``voices/!v``."""

    language: str
    variant: str
    gender: str

    @property
    def espeak_name(self) -> str:
        return f"{self.language}+{self.variant}"


# Alternating male/female so that any n_voices >= 2 has both genders.
VOICE_SPECS = (
    VoiceSpec("en", "m1", "male"),
    VoiceSpec("en", "f1", "female"),
    VoiceSpec("en-us", "m3", "male"),
    VoiceSpec("en-us", "f2", "female"),
    VoiceSpec("en", "m4", "male"),
    VoiceSpec("en", "f3", "female"),
    VoiceSpec("en-us", "m6", "male"),
    VoiceSpec("en-us", "f4", "female"),
    VoiceSpec("en", "m2", "male"),
    VoiceSpec("en", "f5", "female"),
    VoiceSpec("en-us", "m7", "male"),
    VoiceSpec("en-us", "steph", "female"),
)

# Emotion rules relative to each voice's neutral baseline. Keys:
#   f0_st      F0 level shift, semitones          range_x   F0 range factor
#   tempo_x    speaking-rate factor (>1 faster)   pause_ms  extra pause between words
#   loud_db    loudness change                    tilt_db   spectral tilt, dB/octave around 1 kHz
#   breath_db  aspiration noise re speech RMS (None = none)
#   tremor_cents / jitter_cents  slow (~7 Hz) and irregular F0 perturbation depth
#   shimmer    depth of irregular amplitude modulation (rough, creaky phonation)
#   exclaim    probability of exclamatory intonation (sentence read with "!")
# Sources: MA93 = Murray & Arnott (1993), J. Acoust. Soc. Am. 93(2), Table I;
# BS00 = Burkhardt & Sendlmeier (2000), ISCA ITRW Speech and Emotion; BS96 = Banse & Scherer
# (1996), J. Pers. Soc. Psychol. 70(3) (high-frequency energy). The papers give directions
# ("much higher", "slightly slower"); the numbers are our choice, tuned for a hard but learnable
# corpus, not measurements.
PROSODY_RULES: dict[str, dict] = {
    "neutral": {
        "f0_st": 0.0, "range_x": 1.0, "tempo_x": 1.0, "pause_ms": 0.0, "loud_db": 0.0, "tilt_db": 0.0,
        "breath_db": None, "tremor_cents": 0.0, "jitter_cents": 0.0, "shimmer": 0.0, "exclaim": 0.0,
        "source": "baseline: the voice's own settings",
    },
    "happy": {
        "f0_st": 3.5, "range_x": 1.5, "tempo_x": 1.08, "pause_ms": 0.0, "loud_db": 3.0, "tilt_db": 1.0,
        "breath_db": -32.0, "tremor_cents": 0.0, "jitter_cents": 0.0, "shimmer": 0.0, "exclaim": 0.5,
        "source": "MA93: pitch much higher, range much wider, faster or slower, louder, breathy/blaring, "
        "upward inflections; BS00 joy: raised F0, wider range, faster; BS96: more HF energy",
    },
    "sad": {
        "f0_st": -1.5, "range_x": 0.5, "tempo_x": 0.85, "pause_ms": 20.0, "loud_db": -5.0, "tilt_db": -2.5,
        "breath_db": -36.0, "tremor_cents": 0.0, "jitter_cents": 0.0, "shimmer": 0.0, "exclaim": 0.0,
        "source": "MA93: slightly lower pitch, narrower range, slightly slower, lower intensity, downward "
        "inflections; BS00 sadness: lower F0, narrow range, slower, breathy; BS96: less HF energy",
    },
    "angry": {
        "f0_st": 2.5, "range_x": 1.4, "tempo_x": 1.1, "pause_ms": 0.0, "loud_db": 6.0, "tilt_db": 2.5,
        "breath_db": None, "tremor_cents": 0.0, "jitter_cents": 0.0, "shimmer": 0.0, "exclaim": 0.6,
        "source": "MA93: pitch very much higher, much wider range, slightly faster, higher intensity, "
        "tense; BS00 hot anger: raised F0, faster, tense voice; BS96: most HF energy",
    },
    "fear": {
        "f0_st": 5.0, "range_x": 1.2, "tempo_x": 1.2, "pause_ms": 0.0, "loud_db": 0.0, "tilt_db": 0.5,
        "breath_db": -26.0, "tremor_cents": 40.0, "jitter_cents": 15.0, "shimmer": 0.0, "exclaim": 0.0,
        "source": "MA93: pitch very much higher, much wider range, much faster, normal intensity, "
        "irregular voicing; BS00 fear: strongly raised F0, faster, falsetto/breathy",
    },
    "disgust": {
        "f0_st": -3.0, "range_x": 1.25, "tempo_x": 0.82, "pause_ms": 10.0, "loud_db": -2.0, "tilt_db": -0.5,
        "breath_db": None, "tremor_cents": 0.0, "jitter_cents": 0.0, "shimmer": 0.3, "exclaim": 0.0,
        "source": "MA93: pitch very much lower, slightly wider range, very much slower, lower intensity, "
        "grumbled chest tone, wide downward terminal inflections",
    },
}  # fmt: skip

# Per-utterance spread at variation = 1 (standard deviations; factors are log-normal).
UTTERANCE_SPREAD = {
    "intensity": 0.175,  # multiplies the whole emotion effect (weak vs strong portrayals)
    "f0_st": 0.5,
    "log_range": 0.075,
    "log_tempo": 0.035,
    "pause_ms": 5.0,
    "loud_db": 1.0,
    "tilt_db": 0.35,
}

_ESPEAK_RATE_NORMAL = 175  # words per minute at eSpeak's default
_NAME_PATTERN = re.compile(r"^v(?P<voice>\d{2})_s(?P<sentence>\d{2})_(?P<emotion>[a-z]+)$")
_METADATA = "metadata.json"


# --------------------------------------------------------------------------------------------
# eSpeak NG binding (speak_lib.h), kept to the calls we need.
#
# eSpeak keeps synthesis state (glottal phase, flutter index) in C statics that survive
# espeak_Initialize, so a second utterance in the same process differs from the same utterance
# synthesised first. Determinism therefore needs a pristine process per utterance. Forking a
# big Python process (numpy, maybe torch) costs tens of ms, so a tiny stdlib-only server owns
# eSpeak: it loads the library once and forks a short-lived child per request, which
# initialises eSpeak, synthesises once, pipes the int16 samples back and exits.

_ESPEAK_SERVER = r"""
import ctypes, json, os, struct, sys

library_path, data_path = sys.argv[1], sys.argv[2]
lib = ctypes.CDLL(library_path)
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
lib.espeak_SetSynthCallback.argtypes = [CALLBACK]
lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                             ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
AUDIO_OUTPUT_SYNCHRONOUS, INITIALIZE_DONT_EXIT = 2, 0x8000  # DONT_EXIT: error instead of exit()
POS_CHARACTER, CHARS_UTF8, ENDPAUSE = 1, 0x1, 0x1000
PARAMETER = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}


def synthesize(request):
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), INITIALIZE_DONT_EXIT)
    if rate != 22050:
        raise RuntimeError(f"failed to initialise with data {data_path} (returned {rate})")
    samples = bytearray()

    def collect(wav, n_samples, events):
        if n_samples > 0:
            samples.extend(ctypes.string_at(wav, 2 * n_samples))
        return 0

    callback = CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(request["voice"].encode()) != 0:
        raise RuntimeError(f"no voice {request['voice']!r}")
    for name, value in request["settings"].items():
        lib.espeak_SetParameter(PARAMETER[name], int(value), 0)
    lib.espeak_ng_SetRandSeed(request["rand_seed"])
    text = request["text"].encode() + b"\0"
    status = lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, CHARS_UTF8 | ENDPAUSE, None, None)
    if status != 0 or not samples:
        raise RuntimeError(f"synthesis of {request['text']!r} failed (status {status})")
    return bytes(samples)


def run_child(request, write_fd):
    try:
        try:
            reply = b"\0" + synthesize(request)
        except Exception as err:
            reply = b"\1" + str(err).encode("utf-8", "replace")
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(reply)
    finally:
        os._exit(0)


for line in sys.stdin.buffer:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        run_child(json.loads(line), write_fd)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        reply = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    if wait_status != 0 or not reply:
        reply = b"\1" + f"synthesis process died (wait status {wait_status})".encode()
    sys.stdout.buffer.write(struct.pack("<I", len(reply)) + reply)
    sys.stdout.buffer.flush()
"""


def _espeak_paths() -> tuple[str, str]:
    """(library path, data path) of the espeakng-loader wheel, or one clear error."""
    try:
        import espeakng_loader
    except ImportError as err:
        raise EmoaugError(f"corpus synthetic: cannot import espeakng_loader ({err}); pip install espeakng-loader") from err
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def espeak_version() -> str:
    """Version of the eSpeak NG library; loading it here (no initialisation) also checks it works."""
    library_path, _ = _espeak_paths()
    try:
        lib = ctypes.CDLL(library_path)
    except OSError as err:
        raise EmoaugError(f"corpus synthetic: cannot load eSpeak NG library {library_path}: {err}") from err
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    return lib.espeak_Info(None).decode("ascii", "replace")


class _ESpeakServer:
    """Client end of one ``_ESPEAK_SERVER`` process; requests are answered in order."""

    def __init__(self):
        library_path, data_path = _espeak_paths()
        self._stderr = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _ESPEAK_SERVER, library_path, data_path],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            )  # fmt: skip
        except OSError as err:
            raise EmoaugError(f"corpus synthetic: cannot start the eSpeak NG process with {sys.executable}: {err}") from err

    def send(self, text: str, voice: str, settings: dict[str, int], rand_seed: int) -> None:
        request = {"text": text, "voice": voice, "settings": settings, "rand_seed": rand_seed}
        self._process.stdin.write(json.dumps(request).encode() + b"\n")
        self._process.stdin.flush()

    def receive(self) -> np.ndarray:
        """int16 samples at 22050 Hz for the oldest request not yet received."""
        header = self._process.stdout.read(4)
        reply = self._process.stdout.read(struct.unpack("<I", header)[0]) if len(header) == 4 else b""
        if not reply:
            raise EmoaugError(f"corpus synthetic: eSpeak NG server stopped: {self._last_stderr_line()}")
        if reply[0] != 0:
            raise EmoaugError(f"corpus synthetic: eSpeak NG: {reply[1:].decode('utf-8', 'replace')}")
        return np.frombuffer(reply[1:], dtype=np.int16)

    def _last_stderr_line(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"exit code {self._process.poll()}"

    def close(self) -> None:
        # Closing stdout too: a server still answering an abandoned request then fails and exits
        # instead of blocking on a full pipe.
        self._process.stdin.close()
        self._process.stdout.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._stderr.close()


def _check_voices_exist(specs: tuple[VoiceSpec, ...]) -> None:
    # eSpeak silently falls back to the plain language when a variant is missing; we refuse.
    _, data_path = _espeak_paths()
    for spec in specs:
        if not (Path(data_path) / "voices" / "!v" / spec.variant).is_file():
            raise EmoaugError(f"corpus synthetic: eSpeak NG data {data_path} lacks voice variant {spec.variant!r}")


# --------------------------------------------------------------------------------------------
# Parameters: per-voice baselines and per-utterance draws, all from seeded generators.

_STREAM_VOICE, _STREAM_UTTERANCE = 1, 2  # distinct SeedSequence streams


def voice_baseline(seed: int, voice_index: int) -> dict:
    """A speaker's neutral settings and recording channel, fixed by (seed, voice)."""
    rng = np.random.default_rng([seed, _STREAM_VOICE, voice_index])
    spec = VOICE_SPECS[voice_index]
    return {
        "voice": f"v{voice_index:02d}",
        **asdict(spec),
        "espeak_name": spec.espeak_name,
        "f0_st": float(rng.normal(0.0, 0.6)),  # pitch offset against the variant's default
        "range_x": float(np.exp(rng.normal(0.0, 0.09))),
        "tempo_x": float(np.exp(rng.normal(0.0, 0.048))),
        "expressiveness": float(rng.uniform(0.85, 1.15)),  # how strongly this speaker acts
        "channel_tilt_db": float(rng.normal(0.0, 0.48)),  # microphone / room colouring
        "level_db": float(rng.uniform(-4.0, 2.0)),
        "noise_floor_db": float(rng.uniform(-66.0, -56.0)),
    }


def _utterance_rng(seed: int, voice_index: int, sentence_index: int, emotion: str) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAM_UTTERANCE, voice_index, sentence_index, ALL_EMOTIONS.index(emotion)])


def utterance_parameters(seed: int, voice_index: int, sentence_index: int, emotion: str, variation: float) -> dict:
    """Everything that defines one utterance, JSON-able; deterministic and order-independent."""
    rng = _utterance_rng(seed, voice_index, sentence_index, emotion)
    voice = voice_baseline(seed, voice_index)
    rule = PROSODY_RULES[emotion]
    spread = {key: value * variation for key, value in UTTERANCE_SPREAD.items()}
    # Clipped so that no portrayal is flat or grotesque (tempo and F0 scale with it).
    strength = voice["expressiveness"] * float(np.clip(1.0 + rng.normal(0.0, spread["intensity"]), 0.4, 1.6))
    f0_st = voice["f0_st"] + strength * rule["f0_st"] + rng.normal(0.0, spread["f0_st"])
    range_x = voice["range_x"] * rule["range_x"] ** strength * np.exp(rng.normal(0.0, spread["log_range"]))
    tempo_x = voice["tempo_x"] * rule["tempo_x"] ** strength * np.exp(rng.normal(0.0, spread["log_tempo"]))
    pause_ms = max(0.0, strength * rule["pause_ms"] + rng.normal(0.0, spread["pause_ms"]))
    exclaim = bool(rng.uniform() < rule["exclaim"])
    return {
        "emotion": emotion,
        "text": SENTENCES[sentence_index][:-1] + ("!" if exclaim else "."),
        "strength": float(strength),
        "espeak": {
            "pitch": int(np.clip(round(50 + f0_st * 50 / 12), 0, 99)),  # 50 units per octave
            "range": int(np.clip(round(50 * range_x), 0, 99)),
            "rate": int(np.clip(round(_ESPEAK_RATE_NORMAL * tempo_x), 80, 450)),
            "volume": 100,  # loudness is applied afterwards, with a soft limiter, to avoid clipping
            "wordgap": int(round(pause_ms / 10)),  # units of 10 ms
        },
        "loud_db": float(voice["level_db"] + strength * rule["loud_db"] + rng.normal(0.0, spread["loud_db"])),
        "tilt_db": float(voice["channel_tilt_db"] + strength * rule["tilt_db"] + rng.normal(0.0, spread["tilt_db"])),
        "breath_db": None if rule["breath_db"] is None else float(rule["breath_db"] + 6 * np.log2(strength)),
        "tremor_cents": float(strength * rule["tremor_cents"]),
        "tremor_hz": float(rng.uniform(5.5, 8.5)),
        "jitter_cents": float(strength * rule["jitter_cents"]),
        "shimmer": float(min(0.8, strength * rule["shimmer"])),
        "noise_floor_db": voice["noise_floor_db"],
        "lead_s": float(rng.uniform(0.05, 0.3)),
        "tail_s": float(rng.uniform(0.05, 0.3)),
        "espeak_rand_seed": int(rng.integers(0, 2**31 - 1)),
        "dsp_seed": int(rng.integers(0, 2**31 - 1)),
    }


# --------------------------------------------------------------------------------------------
# DSP where eSpeak has no knob. Signals are float64 in [-1, 1] at SAMPLE_RATE.


def _filter_fft(y: np.ndarray, gain_of_freq) -> np.ndarray:
    """Zero-phase filtering by a gain over frequency (Hz), on a fast FFT length."""
    n_fft = scipy.fft.next_fast_len(len(y), real=True)
    spectrum = scipy.fft.rfft(y, n_fft) * gain_of_freq(scipy.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE))
    return scipy.fft.irfft(spectrum, n_fft)[: len(y)]


@functools.lru_cache(maxsize=None)
def _butterworth(low_hz: float, high_hz: float) -> np.ndarray:
    """4th-order Butterworth band-pass (low_hz = 0: low-pass) as second-order sections."""
    if low_hz <= 0:
        return scipy.signal.butter(4, high_hz, btype="lowpass", fs=SAMPLE_RATE, output="sos")
    return scipy.signal.butter(4, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")


def _band_noise(rng: np.random.Generator, n: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Gaussian noise filtered to [low_hz, high_hz], unit standard deviation."""
    noise = scipy.signal.sosfilt(_butterworth(low_hz, high_hz), rng.standard_normal(n))
    return noise / (noise.std() + 1e-12)


def _slow_noise(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Smooth random curve: Gaussian values every 1/rate_hz s, linearly interpolated, unit std."""
    n_knots = int(n * rate_hz / SAMPLE_RATE) + 2
    curve = np.interp(np.arange(n) * rate_hz / SAMPLE_RATE, np.arange(n_knots), rng.standard_normal(n_knots))
    return (curve - curve.mean()) / (curve.std() + 1e-12)


def apply_pitch_perturbation(y: np.ndarray, tremor_cents: float, tremor_hz: float, jitter_cents: float,
                             rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Tremor (sinusoidal) and jitter (irregular) F0 modulation by a time-varying resampling."""
    if tremor_cents == 0 and jitter_cents == 0:
        return y
    n = len(y)
    t = np.arange(n)
    ratio_minus_one = (2 ** (tremor_cents / 1200) - 1) * np.cos(2 * np.pi * tremor_hz * t / SAMPLE_RATE)
    ratio_minus_one += (2 ** (jitter_cents / 1200) - 1) * _slow_noise(rng, n, 80.0)
    read_position = np.clip(t + np.cumsum(ratio_minus_one), 0, n - 1)
    return np.interp(read_position, t, y)


def apply_spectral_tilt(y: np.ndarray, tilt_db_per_octave: float) -> np.ndarray:
    """Gain of tilt * log2(f / 1 kHz) dB, flat below 250 Hz and above 8 kHz."""
    if tilt_db_per_octave == 0:
        return y

    def gain(freqs: np.ndarray) -> np.ndarray:
        return 10 ** (tilt_db_per_octave * np.log2(np.clip(freqs, 250.0, 8000.0) / 1000.0) / 20)

    return _filter_fft(y, gain)


def _envelope(y: np.ndarray, smooth_s: float = 0.02) -> np.ndarray:
    """Moving average of |y| over smooth_s seconds (centred)."""
    width = max(1, int(smooth_s * SAMPLE_RATE))
    padded = np.concatenate([np.zeros(width // 2 + 1), np.abs(y), np.zeros(width)])
    sums = np.cumsum(padded)
    return (sums[width : width + len(y)] - sums[: len(y)]) / width


def add_breath_noise(y: np.ndarray, breath_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """Aspiration: 1.5-7 kHz noise that follows the speech envelope, breath_db re speech RMS."""
    if breath_db is None:
        return y
    noise = _band_noise(rng, len(y), 1500.0, 7000.0) * _envelope(y)
    scale = _active_rms(y) * 10 ** (breath_db / 20) / (_active_rms(noise) + 1e-12)
    return y + scale * noise


def apply_shimmer(y: np.ndarray, depth: float, rng: np.random.Generator) -> np.ndarray:
    """Irregular amplitude modulation (roughness, creaky 'grumbled' phonation)."""
    if depth == 0:
        return y
    return y * np.clip(1.0 + depth * _slow_noise(rng, len(y), 120.0), 0.1, None)


def _active_rms(y: np.ndarray, frame: int = 1024) -> float:
    """RMS over frames within 40 dB of the loudest, so pauses do not change the level."""
    n_frames = max(1, len(y) // frame)
    energies = (y[: n_frames * frame].reshape(n_frames, -1) ** 2).mean(axis=1)
    active = energies[energies >= energies.max() * 1e-4]
    return float(np.sqrt(active.mean())) if active.size else 0.0


def _soft_limit(y: np.ndarray, knee: float = 0.7) -> np.ndarray:
    """Identity below the knee, smooth saturation towards 0.99 above (no hard clipping)."""
    over = np.abs(y) > knee
    headroom = 0.99 - knee
    limited = y.copy()
    limited[over] = np.sign(y[over]) * (knee + headroom * np.tanh((np.abs(y[over]) - knee) / headroom))
    return limited


_REFERENCE_RMS_DB = -26.0  # neutral speech level, dBFS


def render_utterance(raw: np.ndarray, params: dict) -> np.ndarray:
    """eSpeak int16 output -> final int16 signal (voice quality, level, margins, noise floor)."""
    rng = np.random.default_rng(params["dsp_seed"])
    y = raw.astype(np.float64) / 32768.0
    y = apply_pitch_perturbation(y, params["tremor_cents"], params["tremor_hz"], params["jitter_cents"], rng)
    y = apply_shimmer(y, params["shimmer"], rng)
    y = add_breath_noise(y, params["breath_db"], rng)
    y = apply_spectral_tilt(y, params["tilt_db"])
    y *= 10 ** ((_REFERENCE_RMS_DB + params["loud_db"]) / 20) / (_active_rms(y) + 1e-12)
    lead, tail = (np.zeros(int(params[key] * SAMPLE_RATE)) for key in ("lead_s", "tail_s"))
    y = np.concatenate([lead, y, tail])
    y += 10 ** (params["noise_floor_db"] / 20) * _band_noise(rng, len(y), 0.0, 6000.0)
    y = _soft_limit(y)
    return np.round(y * 32767).astype(np.int16)


# --------------------------------------------------------------------------------------------
# Corpus generation and scanning.


def file_stem(voice_index: int, sentence_index: int, emotion: str) -> str:
    return f"v{voice_index:02d}_s{sentence_index:02d}_{emotion}"


def _tasks(seed: int, n_voices: int, n_sentences: int, variation: float) -> list[dict]:
    return [
        utterance_parameters(seed, v, s, e, variation) | {"stem": file_stem(v, s, e), "voice_index": v}
        for v in range(n_voices)
        for s in range(n_sentences)
        for e in ALL_EMOTIONS
    ]


def _generate_into(out_dir: Path, tasks: list[dict], n_jobs: int) -> dict[str, dict]:
    """Synthesise every task (n_jobs eSpeak servers), post-process and write; per-stem parameters."""
    servers = [_ESpeakServer() for _ in range(max(1, min(n_jobs, len(tasks))))]
    pending = iter(tasks)
    in_flight: dict[int, dict] = {}
    done: dict[str, dict] = {}

    def submit(server_index: int) -> None:
        task = next(pending, None)
        if task is not None:
            in_flight[server_index] = task
            voice = VOICE_SPECS[task["voice_index"]].espeak_name
            servers[server_index].send(task["text"], voice, task["espeak"], task["espeak_rand_seed"])

    try:
        for server_index in range(len(servers)):
            submit(server_index)
        while in_flight:  # round robin: each server synthesises the next task while we render
            for server_index in sorted(in_flight):
                task = in_flight.pop(server_index)
                raw = servers[server_index].receive()
                submit(server_index)
                done[task["stem"]] = _write_utterance(out_dir, raw, task)
    finally:
        for server in servers:
            server.close()
    return done


def _write_utterance(out_dir: Path, raw: np.ndarray, task: dict) -> dict:
    samples = render_utterance(raw, task)
    path = out_dir / f"{task['stem']}.wav"
    try:
        sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    except sf.SoundFileRuntimeError as err:  # a full disk: one line naming the file, not libsndfile's traceback
        raise storage.audio_write_failed(path, samples.nbytes, err) from None
    params = {key: value for key, value in task.items() if key not in ("stem", "voice_index")}
    return params | {"duration": round(len(samples) / SAMPLE_RATE, 4)}


def default_cache_dir() -> Path:
    base = os.environ.get("EMOAUG_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "emoaug") / NAME


def _corpus_folder_name(seed: int, n_voices: int, n_sentences: int, variation: float) -> str:
    return f"gen{GENERATOR_VERSION}_seed{seed}_voices{n_voices}_sentences{n_sentences}_variation{variation:g}"


def _validate(seed: int, n_voices: int, n_sentences: int, variation: float) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise EmoaugError(f"corpus synthetic: seed must be a non-negative integer, got {seed!r}")
    if not 1 <= n_voices <= len(VOICE_SPECS):
        raise EmoaugError(f"corpus synthetic: n_voices must be 1..{len(VOICE_SPECS)}, got {n_voices}")
    if not 1 <= n_sentences <= len(SENTENCES):
        raise EmoaugError(f"corpus synthetic: n_sentences must be 1..{len(SENTENCES)}, got {n_sentences}")
    if not variation >= 0:
        raise EmoaugError(f"corpus synthetic: variation must be >= 0, got {variation}")


def ensure_corpus(cache_dir: Path | None = None, seed: int = 0, *, n_voices: int = 8, n_sentences: int = 12,
                  variation: float = DEFAULT_VARIATION, n_jobs: int | None = None) -> Path:  # fmt: skip
    """Root of the synthetic corpus for these settings, generating it on first use.

    ``cache_dir`` defaults to ``default_cache_dir()``; each (generator version, seed, sizes,
    variation) gets its own subfolder. Generation writes into a temporary sibling folder and
    renames it into place when complete, so an interrupted run never leaves a corpus that looks
    finished. ``n_jobs`` worker processes (default: all CPUs) do not change the output.
    """
    _validate(seed, n_voices, n_sentences, variation)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = cache_dir / _corpus_folder_name(int(seed), n_voices, n_sentences, float(variation))
    if (root / _METADATA).is_file():
        return root
    if root.exists():
        raise EmoaugError(f"corpus synthetic: {root} exists but has no {_METADATA}; delete it to regenerate")
    if not hasattr(os, "fork"):
        raise EmoaugError("corpus synthetic: generation needs os.fork (Linux or macOS); copy a generated corpus instead")
    _check_voices_exist(VOICE_SPECS[:n_voices])
    version = espeak_version()
    cache_dir.mkdir(parents=True, exist_ok=True)
    storage.remove_stale_temporaries(cache_dir)  # the staging folders of killed generations
    staging = Path(tempfile.mkdtemp(prefix=storage.temporary_prefix(root.name), suffix=storage.TMP_SUFFIX,
                                    dir=cache_dir))
    try:
        tasks = _tasks(int(seed), n_voices, n_sentences, float(variation))
        utterances = _generate_into(staging, tasks, n_jobs or os.cpu_count() or 1)
        metadata = {
            "corpus": NAME,
            "generator_version": GENERATOR_VERSION,
            "espeak_ng_version": version,
            "seed": int(seed),
            "n_voices": n_voices,
            "n_sentences": n_sentences,
            "variation": float(variation),
            "sample_rate": SAMPLE_RATE,
            "emotions": list(ALL_EMOTIONS),
            "sentences": {f"s{i:02d}": SENTENCES[i] for i in range(n_sentences)},
            "voices": [voice_baseline(int(seed), v) for v in range(n_voices)],
            "prosody_rules": PROSODY_RULES,
            "utterance_spread": UTTERANCE_SPREAD,
            "utterances": dict(sorted(utterances.items())),
        }
        (staging / _METADATA).write_text(json.dumps(metadata, indent=1, sort_keys=True))
        _publish(staging, root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _publish(staging: Path, root: Path) -> None:
    """Atomic rename; if another process finished the same corpus first, keep theirs."""
    try:
        os.rename(staging, root)
    except OSError:
        if not (root / _METADATA).is_file():
            raise


def parse_name(stem: str) -> dict | str:
    """Fields of a synthetic file name, or the reason it does not follow the scheme."""
    match = _NAME_PATTERN.match(stem)
    if not match:
        return "name does not follow the synthetic scheme (e.g. v03_s07_angry.wav)"
    voice_index, sentence_index = int(match["voice"]), int(match["sentence"])
    if voice_index >= len(VOICE_SPECS):
        return f"unknown synthetic voice v{voice_index:02d}"
    if sentence_index >= len(SENTENCES):
        return f"unknown synthetic sentence s{sentence_index:02d}"
    if match["emotion"] not in ALL_EMOTIONS:
        return f"unknown synthetic emotion {match['emotion']!r}"
    return {"voice_index": voice_index, "sentence_index": sentence_index, "emotion": match["emotion"]}


def support_files(root: Path) -> list[Path]:
    """Files the layout reads besides the audio (not listed as unused)."""
    return [Path(root).resolve() / _METADATA]


def scan(root: Path) -> tuple[list[dict], list[dict]]:
    """Records for every file of the naming scheme in ``root``; everything else is skipped with a reason."""
    if not Path(root).is_dir():
        raise EmoaugError(f"corpus synthetic: {root} is not a folder")
    records, skipped = [], []
    for path in sorted(Path(root).resolve().iterdir()):
        if path.name == _METADATA or path.name.startswith(".") or not path.is_file():
            continue
        fields = parse_name(path.stem) if path.suffix == ".wav" else "not a .wav file"
        if isinstance(fields, str):
            skipped.append({"path": str(path), "reason": fields, "stage": "scan"})
            continue
        voice = f"v{fields['voice_index']:02d}"
        records.append(
            {
                "item_id": f"{NAME}/{path.stem}",
                "path": str(path),
                "corpus": NAME,
                "speaker": f"{NAME}/{voice}",
                "gender": VOICE_SPECS[fields["voice_index"]].gender,
                "emotion": fields["emotion"],
                "raw_label": fields["emotion"],
                "text_id": f"s{fields['sentence_index']:02d}",
            }
        )
    return records, skipped
