"""The generator contract kit: :func:`check_generator` runs every property a generator must have to take part in
a benchmark, on toy rows, in seconds (as scikit-learn's ``check_estimator`` does for estimators).

Plugin authors call it from their own tests::

    from emoaug.testing import check_generator
    from mypkg import NoisyCopies

    def test_noisy_copies_keeps_the_contract():
        check_generator(NoisyCopies, options={"sigma": 0.3})

A property that fails raises :class:`ContractError` naming the generator and the property. The properties:

* ``config``: the options resolve, are recorded as a plain dict, and an unknown option is a one-line
  EmoaugError that names it;
* ``fit scope``: ``fit`` records exactly the training rows' ids and speakers (what the leakage audit reads),
  and every part it trains (``fitted_parts``) saw training rows only;
* ``output``: ``generate`` returns the requested count per class, with the training rows' shape, float32,
  finite values, ``gen:<name>:`` ids, the training label set;
* ``purity``: the same fitted generator and seed give the same rows, whatever was generated in between;
  another seed gives other rows (unless the generator adds nothing); the training rows are left untouched;
* ``determinism``: two generators built with the same options and fit on the same rows generate the same rows;
  (a generator that takes the cell's seed) another fit seed gives other rows;
* ``checkpoint``: a trainable generator's ``state_dict``, saved and read back as the cell store does
  (``torch.load(weights_only=True)``), restored into a new instance generates the same rows;
* ``transform``: (``transforms_rows``) one row out per row in, same shape, the given conditions as labels,
  ids ``gen:<name>:<source id>``, speakers kept; pure like ``generate``;
* ``cell``: a tiny benchmark cell (fit, generate, classifier on real + synthetic, every arm) runs.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .errors import EmoaugError
from .featureset import FeatureSet

LABELS = ("neutral", "happy", "sad", "angry")
N_MELS, N_FRAMES = 32, 48
#: options that keep the built-ins' toy fits to seconds (the smoke profile's sizes)
SMOKE_PROFILE = "smoke"


class ContractError(AssertionError):
    """A generator broke a property of the contract (the message names which)."""


def toy_rows(n_per_class: int = 6, seed: int = 0, n_mels: int = N_MELS, n_frames: int = N_FRAMES,
             labels: tuple[str, ...] = LABELS, prefix: str = "toy") -> FeatureSet:
    """Normalised-looking rows in [-1, 1] with a class-dependent spectral shape, two speakers per class."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(labels)), n_per_class)
    tilt = np.linspace(-0.5, 0.5, n_mels)[None, :, None] * (y[:, None, None] - len(labels) / 2) / len(labels)
    x = np.clip(tilt + 0.3 * rng.standard_normal((len(y), n_mels, n_frames)), -1, 1).astype(np.float32)
    return FeatureSet(x=torch.from_numpy(x), y=torch.from_numpy(y.astype(np.int64)), labels=labels,
                      item_ids=[f"{prefix}/item{i}" for i in range(len(y))],
                      speakers=[f"{prefix}/spk{i % 2 + 2 * (y[i] % 2)}" for i in range(len(y))])


def check_generator(cls: type, options: Mapping[str, Any] | None = None, *, cell: bool = True) -> None:
    """Run the whole contract on generator class ``cls`` built with ``options`` (for a built-in, default: its
    smoke-profile sizes). ``cell=False`` skips the end-to-end cell (the slowest property)."""
    from .generators.base import Generator

    if not (isinstance(cls, type) and issubclass(cls, Generator)):
        raise ContractError(f"{cls!r} is not an emoaug.generators.Generator subclass")
    options = dict(_default_options(cls) if options is None else options)
    checks = [("config", _check_config), ("fit scope", _check_fit_scope), ("output", _check_output),
              ("purity", _check_purity), ("determinism", _check_determinism), ("checkpoint", _check_checkpoint),
              ("transform", _check_transform)]
    if cell:
        checks.append(("cell", _check_cell))
    for name, check in checks:
        try:
            check(cls, options)
        except ContractError as err:
            raise ContractError(f"generator {cls.name!r} breaks the contract: {name}: {err}") from None
        except Exception as err:  # noqa: BLE001 -- any crash is a broken property, named as such
            raise ContractError(f"generator {cls.name!r} breaks the contract: {name}: "
                                f"{type(err).__name__}: {err}") from err


def _default_options(cls: type) -> dict[str, Any]:
    from .config import get_profile

    return dict(get_profile(SMOKE_PROFILE).generators.get(cls.name, {}))


def _build(cls: type, options: Mapping[str, Any], seed: int = 0):
    values = dict(options)
    if cls.accepts_seed:
        values["seed"] = seed
    return cls(**values)


def _fitted(cls: type, options: Mapping[str, Any], train: FeatureSet, seed: int = 0):
    gen = _build(cls, options, seed)
    if _works_on_waveforms(cls):
        gen.use_front_end(_toy_front_end())
    return gen.fit(train)


# ------------------------------------------------------------------------------------------------ toy audio
#: waveform generators (emoaug.generators.waveform) get toy recordings through the log-mel of this preset
WAVEFORM_PRESET = "emogen"


def _works_on_waveforms(cls: type) -> bool:
    return getattr(cls, "domain", "features") == "waveform"


def _train_rows(cls: type) -> FeatureSet:
    """Toy training rows: for a waveform generator, the rows of toy recordings as its front end makes them."""
    return _toy_waveform_rows() if _works_on_waveforms(cls) else toy_rows()


def toy_audio(item_id: str, label_index: int, sample_rate: int, seconds: float = 1.5) -> np.ndarray:
    """A toy recording: a harmonic tone whose pitch and brightness depend on the class, with a syllable-rate
    envelope and a little noise, seeded by the item id."""
    rng = np.random.default_rng(zlib.crc32(item_id.encode()))
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 110.0 + 35.0 * label_index + 10.0 * rng.standard_normal()
    tone = sum((0.6 ** k) * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t) ** 2
    return (0.3 * tone * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _toy_db(waveforms: list[np.ndarray]) -> list[np.ndarray]:
    from .features import get_preset, waveform_features

    return waveform_features(waveforms, get_preset(WAVEFORM_PRESET))


def _toy_front_end():
    from .features import get_preset
    from .generators.waveform import WaveformFrontEnd

    rows = _toy_waveform_rows()
    labels = dict(zip(rows.item_ids, rows.y.tolist()))
    rate = get_preset(WAVEFORM_PRESET).sample_rate
    return WaveformFrontEnd(sample_rate=rate, read_audio=lambda item: toy_audio(item, labels[item], rate),
                            to_rows=lambda waveforms, sources: [_toy_scale(db) for db in _toy_db(list(waveforms))],
                            allowed=frozenset(rows.item_ids))


def _toy_scale(db: np.ndarray) -> np.ndarray:
    return np.clip((db + 40.0) / 40.0, -1.0, 1.0).astype(np.float32)  # dB to about [-1, 1]


@functools.lru_cache(maxsize=1)
def _toy_waveform_rows() -> FeatureSet:
    from .features import get_preset

    base = toy_rows()
    rate = get_preset(WAVEFORM_PRESET).sample_rate
    labels = base.y.tolist()
    db = _toy_db([toy_audio(item, label, rate) for item, label in zip(base.item_ids, labels)])
    x = torch.from_numpy(np.concatenate([_toy_scale(d)[:1] for d in db]))
    return FeatureSet(x=x, y=base.y.clone(), labels=base.labels, item_ids=list(base.item_ids),
                      speakers=list(base.speakers))


def _request(train: FeatureSet, per_class: int = 3) -> dict[str, int]:
    return {label: per_class for label in train.labels}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


def _same(a: FeatureSet, b: FeatureSet) -> bool:
    return (a.x.shape == b.x.shape and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
            and list(a.item_ids) == list(b.item_ids))


# ------------------------------------------------------------------------------------------------ properties
def _check_config(cls: type, options: Mapping[str, Any]) -> None:
    gen = _build(cls, options)
    config = gen.get_config()
    _require(isinstance(config, dict), "get_config() must return a dict")
    _require(cls(**config).get_config() == config, "a generator built from its own get_config() must have the "
                                                    "same config (the run records it and cell keys hash it)")
    typo = "no_such_option_x"
    try:
        cls(**{**options, typo: 1})
    except EmoaugError as err:
        text = str(err)
        _require(typo in text and "\n" not in text, f"the unknown-option error must be one line naming {typo!r}, "
                                                    f"got {text!r}")
    else:
        raise ContractError(f"an unknown option ({typo}) was accepted: a typo would be hashed into cell keys")
    for field in dataclasses.fields(cls.Config):
        if field.type in ("int", "float", int, float) and field.name != "seed":
            try:
                cls(**{**options, field.name: "not-a-number"})
            except EmoaugError:
                break
            raise ContractError(f"option {field.name!r} accepted 'not-a-number'")


def _check_fit_scope(cls: type, options: Mapping[str, Any]) -> None:
    train = _train_rows(cls)
    gen = _fitted(cls, options, train)
    _require(sorted(gen.fitted_item_ids) == sorted(set(train.item_ids)),
             "fitted_item_ids must be exactly the training rows' ids (the leakage audit reads them)")
    _require(set(gen.fitted_speakers) == set(train.speakers), "fitted_speakers must be the training speakers")
    for part, (ids, speakers) in gen.fitted_parts().items():
        _require(set(ids) <= set(train.item_ids), f"fitted part {part!r} saw rows outside the training set")
        _require(set(speakers) <= set(train.speakers), f"fitted part {part!r} saw other speakers")


def _check_output(cls: type, options: Mapping[str, Any]) -> None:
    train = _train_rows(cls)
    gen = _fitted(cls, options, train)
    want = {"neutral": 2, "happy": 0, "sad": 3, "angry": 1}
    out = gen.generate(want, seed=0)
    _require(isinstance(out, FeatureSet), "generate() must return a FeatureSet")
    _require(out.labels == train.labels, f"generated label set {out.labels} != training {train.labels}")
    if cls.produces_nothing:
        _require(len(out) == 0, "a generator that produces nothing returned rows")
        return
    counts = dict(zip(*np.unique(out.label_names(), return_counts=True))) if len(out) else {}
    _require({k: int(v) for k, v in counts.items()} == {k: v for k, v in want.items() if v},
             f"asked for {want} rows per class, got {counts}")
    _require(tuple(out.x.shape[1:]) == tuple(train.x.shape[1:]),
             f"generated rows are {tuple(out.x.shape[1:])}, training rows {tuple(train.x.shape[1:])}")
    _require(out.x.dtype == torch.float32, f"generated rows are {out.x.dtype}, not float32")
    _require(bool(torch.isfinite(out.x).all()), "generated rows hold NaN or infinite values")
    prefix = f"gen:{cls.name}:"
    _require(all(str(i).startswith(prefix) for i in out.item_ids), f"generated ids must start with {prefix!r}")
    empty = gen.generate({label: 0 for label in train.labels}, seed=0)
    _require(len(empty) == 0 and tuple(empty.x.shape[1:]) == tuple(train.x.shape[1:]),
             "a request for no rows must give an empty set of the training rows' shape")


def _check_purity(cls: type, options: Mapping[str, Any]) -> None:
    train = _train_rows(cls)
    kept = train.x.clone()
    gen = _fitted(cls, options, train)
    first = gen.generate(_request(train), seed=0)
    _require(torch.equal(train.x, kept), "fit() or generate() changed the training rows it was given")
    gen.generate(_request(train), seed=1)
    again = gen.generate(_request(train), seed=0)
    _require(_same(first, again), "generate() with the same seed gave other rows after another call: it must "
                                  "be pure (no state consumed)")
    if not cls.produces_nothing:
        other = gen.generate(_request(train), seed=1)
        _require(not torch.equal(first.x, other.x), "another seed gave the same rows")


def _check_determinism(cls: type, options: Mapping[str, Any]) -> None:
    train = _train_rows(cls)
    a = _fitted(cls, options, train).generate(_request(train), seed=0)
    b = _fitted(cls, options, train).generate(_request(train), seed=0)
    _require(_same(a, b), "two generators with the same options and seed, fit on the same rows, generated "
                          "different rows")
    if cls.accepts_seed and not cls.produces_nothing:
        c = _fitted(cls, options, train, seed=1).generate(_request(train), seed=0)
        _require(not torch.equal(a.x, c.x), "another fit seed gave the same rows (the cell's seed is ignored)")


def _check_checkpoint(cls: type, options: Mapping[str, Any]) -> None:
    if not cls.trainable:
        return
    train = _train_rows(cls)
    fitted = _fitted(cls, options, train)
    buffer = io.BytesIO()  # as the cell store keeps it: torch.save, read back with weights_only
    torch.save(fitted.state_dict(), buffer)
    buffer.seek(0)
    restored = _build(cls, options).restore(train, torch.load(buffer, map_location="cpu", weights_only=True))
    _require(_same(fitted.generate(_request(train), seed=0), restored.generate(_request(train), seed=0)),
             "a generator restored from state_dict() generates other rows than the one that was trained")
    _require(getattr(restored, "history", None) == getattr(fitted, "history", None),
             "a restored generator must carry its training history (cells record its tail)")
    _require(list(restored.fitted_item_ids) == list(fitted.fitted_item_ids),
             "a restored generator must know the training ids it was fit on (the leakage audit reads them)")


def _check_transform(cls: type, options: Mapping[str, Any]) -> None:
    train = _train_rows(cls)
    gen = _fitted(cls, options, train)
    rows = toy_rows(n_per_class=2, seed=5, prefix="held")
    conditions = [train.labels[(k + 1) % len(train.labels)] for k in range(len(rows))]
    if not cls.transforms_rows:
        try:
            gen.transform(rows, conditions, seed=0)
        except EmoaugError:
            return
        raise ContractError("transforms_rows is False but transform() returned rows")
    out = gen.transform(rows, conditions, seed=0)
    _require(tuple(out.x.shape) == tuple(rows.x.shape), "transform() must return one row of the same shape per row")
    _require(out.label_names() == conditions, "transformed rows must carry the given conditions as labels")
    _require(list(out.item_ids) == [f"gen:{cls.name}:{i}" for i in rows.item_ids],
             "transformed ids must be gen:<name>:<source id>")
    _require(list(out.speakers) == list(rows.speakers), "transform() must keep the rows' speakers")
    _require(bool(torch.isfinite(out.x).all()), "transformed rows hold NaN or infinite values")
    _require(torch.equal(out.x, gen.transform(rows, conditions, seed=0).x), "transform() is not pure")


def _check_cell(cls: type, options: Mapping[str, Any]) -> None:
    """One benchmark cell, every arm, through the same code a run uses (emoaug.bench.cells)."""
    with tempfile.TemporaryDirectory(prefix="emoaug-contract-") as folder:
        workload, fold = toy_workload(cls, Path(folder))
        _run_toy_cell(cls, options, workload, fold)


def _run_toy_cell(cls: type, options: Mapping[str, Any], workload, fold: int) -> None:
    from .bench.cells import run_cell, run_judge
    from .bench.plan import CellSpec, JudgeSpec
    from .config import get_profile, resolve_classifier
    from .generators.spec import GeneratorSpec

    classifier = resolve_classifier(get_profile(SMOKE_PROFILE), None, 1, "fp32")
    judge = run_judge(JudgeSpec("judge", fold, 0, classifier), workload)
    generator = GeneratorSpec(name=cls.name, class_path=f"{cls.__module__}:{cls.__qualname__}",
                              version=str(cls.version), config={**options, **({"seed": 0} if cls.accepts_seed
                                                                               else {})},
                              trainable=cls.trainable, produces_nothing=cls.produces_nothing)
    spec = CellSpec("cell", generator, classifier, fold, 0, "judge", None, synthetic_ratio=0.5,
                    protocols=("augment", "clarity"))
    result = run_cell(spec, workload, judge)
    arms = set(result.predictions["arm"])
    if _works_on_waveforms(cls):
        audited = {check["what"] for check in result.meta["leakage_audit"]}
        _require(f"generator {cls.name!r}: audio read" in audited, "the recordings it read were not audited")
    _require("main" in arms, f"the cell scored no main arm (arms: {sorted(arms)})")
    if not cls.produces_nothing:
        _require(result.meta["n_synthetic_rows"] > 0, "the cell trained on no synthetic rows")
        _require({"synthetic_only", "main"} <= arms, f"the cell lacks protocol arms (arms: {sorted(arms)})")


def toy_workload(cls: type, folder: Path):
    """A workload of toy items, 4 speakers, 2 folds of 2 test speakers. For a waveform generator the items are
    toy recordings written to ``folder`` and their features that audio's log-mel, so the cell reads real files
    through the same front end as a run; otherwise toy rows in memory."""
    from .bench.plan import Workload
    from .features import get_preset
    from .splits import make_splits

    rows = toy_rows(n_per_class=8, seed=3)
    paths = [str(folder / f"{item.replace('/', '_')}.wav") for item in rows.item_ids]
    items = pd.DataFrame({"item_id": rows.item_ids, "path": paths, "emotion": rows.label_names(),
                          "speaker": rows.speakers, "text_id": [f"t{k % 4}" for k in range(len(rows))],
                          "sha1": [f"{k:040x}" for k in range(len(rows))]})
    preset = get_preset(WAVEFORM_PRESET if _works_on_waveforms(cls) else "emogen")
    if _works_on_waveforms(cls):
        import soundfile

        audio = [toy_audio(item, label, preset.sample_rate) for item, label in zip(rows.item_ids, rows.y.tolist())]
        for path, y in zip(paths, audio):
            soundfile.write(path, y, preset.sample_rate, subtype="FLOAT")
        features = dict(zip(rows.item_ids, _toy_db(audio)))
    else:  # unnormalised dB rows, as the feature cache holds them
        features = {item: (rows.x[k].numpy() * 40.0 - 40.0)[None] for k, item in enumerate(rows.item_ids)}
    folds = make_splits(items, "kfold", n_folds=2, seed=0, val_speakers=0)
    workload = Workload(preset=preset, labels=rows.labels, items=items, folds=folds, features=features)
    return workload, folds[0].index
