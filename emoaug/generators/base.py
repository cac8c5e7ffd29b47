"""The generator interface (scikit-learn's estimator contract).

* ``__init__`` takes configuration only and does no work: the options declared by the class's frozen
  dataclass ``Config`` (:mod:`emoaug.generators.options`), checked once, here, for every generator;
* ``fit(train)`` learns from the training fold and nothing else;
* ``generate(n_per_class, seed)`` is pure: the same fitted generator and seed give the same rows;
* ``transform(rows, conditions, seed)`` (optional, ``transforms_rows``) is pure too: a generated version
  of each given row under a chosen emotion (Kim & Lee's "enhanced" utterances).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from ..errors import EmoaugError
from ..featureset import FeatureSet
from .options import NoOptions, plain_dict, resolve_options


class Generator:
    """Base class of every augmenter. Subclasses set ``name`` and implement ``_fit``/``_generate``."""

    name: ClassVar[str] = "base"
    #: ``True`` when the generator adds nothing (the real-only baseline).
    produces_nothing: ClassVar[bool] = False
    #: part of every stored cell's and checkpoint's key: bump it when a code change changes the results
    version: ClassVar[str] = "1"

    #: the options: a frozen dataclass whose fields have types, defaults, bounds and docs (emoaug.generators.options;
    #: a built-in's defaults are the quick budget, the other profiles override them in emoaug.config)
    Config: ClassVar[type] = NoOptions

    def __init__(self, **config: Any):
        self.use_options(self.resolve_config(config))
        self.fitted_item_ids: list[str] = []  # what fit() saw; the runner audits it for leakage
        self.fitted_speakers: set[str] = set()
        self.labels: tuple[str, ...] = ()
    #: whether the runner should checkpoint it (see emoaug.generators.neural.NeuralGenerator)
    trainable: ClassVar[bool] = False
    #: whether the runner passes the cell's ``seed`` in the config
    accepts_seed: ClassVar[bool] = False
    #: whether ``transform`` works (else the clarity protocol scores class-conditional samples instead)
    transforms_rows: ClassVar[bool] = False
    #: "features": it learns from and returns log-mel rows; "waveform": it changes training recordings, which
    #: the cell gives it through a front end (emoaug.generators.waveform)
    domain: ClassVar[str] = "features"
    #: config keys that change how a generator computes (memory, batching), never what it computes: recorded
    #: with the run but left out of every cell's and checkpoint's key
    execution_config: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def resolve_config(cls, values: Mapping[str, Any]) -> Any:
        """``values`` (some of the options, Python values or ``--gen-opt`` strings) as a checked ``Config``;
        anything wrong is a one-line EmoaugError naming the generator and the option."""
        if hasattr(cls, "PROFILE_DEFAULTS"):  # the old way: ignoring it would silently drop the values
            raise EmoaugError(f"generator {cls.name!r}: PROFILE_DEFAULTS is no longer read; declare the options "
                              "in a frozen dataclass `Config` (its defaults apply under every profile)")
        if cls.accepts_seed and "seed" not in {f.name for f in dataclasses.fields(cls.Config)}:
            raise EmoaugError(f"generator {cls.name!r} accepts a seed but its Config has no `seed` field "
                              "(subclass emoaug.generators.neural.NeuralConfig)")
        return resolve_options(cls.name, cls.Config, values)

    def use_options(self, options: Any) -> None:
        """Set the resolved options: ``options`` (typed) and ``config`` (the same as a plain dict)."""
        self.options = options
        self.config = plain_dict(options)

    def to(self, device) -> Generator:
        """Move to a torch device; generators without networks ignore it."""
        return self

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    def fit(self, train: FeatureSet) -> Generator:
        self._remember(train)
        self._fit(train)
        return self

    def _remember(self, train: FeatureSet) -> None:
        """Record what this generator may know: the training fold's ids and label set."""
        if len(train) == 0:
            raise EmoaugError(f"generator {self.name!r}: fit() needs at least one training row")
        self.fitted_item_ids = sorted(set(train.item_ids))
        self.fitted_speakers = set(train.speakers)
        self.labels = train.labels

    def fitted_parts(self) -> dict[str, tuple[list[str], set[str]]]:
        """Models trained inside ``fit`` on their own subset of rows: part name -> (item ids, speakers).

        The runner audits each like the generator itself (e.g. the diffusion model's emotion-embedding
        classifier), so a part that quietly reads other rows fails the run too.
        """
        return {}

    def generate(self, n_per_class: Mapping[str, int], seed: int = 0) -> FeatureSet:
        """Return ``n_per_class[label]`` new rows per label, with ids starting with ``gen:<name>:``."""
        if not self.labels:
            raise EmoaugError(f"generator {self.name!r}: generate() called before fit()")
        unknown = set(n_per_class) - set(self.labels)
        if unknown:
            raise EmoaugError(f"generator {self.name!r}: unknown labels {sorted(unknown)}")
        return self._generate(dict(n_per_class), seed)

    def transform(self, rows: FeatureSet, conditions: Sequence[str], seed: int = 0) -> FeatureSet:
        """A generated version of each of ``rows`` under emotion ``conditions[i]``, in the same order.

        ``rows`` may be any rows, also held-out ones: reading them is inference, not fitting. The
        result's ``y`` is the condition, its ids are ``gen:<name>:<source id>`` and speakers are kept.
        """
        if not self.transforms_rows:
            raise EmoaugError(f"generator {self.name!r} cannot transform given rows (it only samples)")
        if not self.labels:
            raise EmoaugError(f"generator {self.name!r}: transform() called before fit()")
        if len(conditions) != len(rows):
            raise EmoaugError(f"generator {self.name!r}: transform() needs one condition per row "
                              f"({len(conditions)} for {len(rows)} rows)")
        unknown = sorted(set(conditions) - set(self.labels))
        if unknown:
            raise EmoaugError(f"generator {self.name!r}: unknown labels {unknown}")
        if rows.labels != self.labels:
            raise EmoaugError(f"generator {self.name!r}: rows have labels {rows.labels}, fitted on {self.labels}")
        index = torch.as_tensor([self.labels.index(c) for c in conditions], dtype=torch.int64)
        out = self._transform(rows, index, seed) if len(rows) else torch.zeros_like(rows.x)
        return FeatureSet(x=out.to(torch.float32), y=index, labels=self.labels,
                          item_ids=[f"gen:{self.name}:{i}" for i in rows.item_ids], speakers=list(rows.speakers))

    def _fit(self, train: FeatureSet) -> None:
        raise NotImplementedError

    def _transform(self, rows: FeatureSet, conditions: torch.Tensor, seed: int) -> torch.Tensor:
        """New ``x`` for (non-empty) ``rows`` under label indices ``conditions``; same shape as ``rows.x``."""
        raise NotImplementedError

    def _generate(self, n_per_class: dict[str, int], seed: int) -> FeatureSet:
        raise NotImplementedError
