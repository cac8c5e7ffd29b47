"""The generator interface (scikit-learn's estimator contract).

* ``__init__`` takes configuration only and does no work;
* ``fit(train)`` learns from the training fold and nothing else;
* ``generate(n_per_class, seed)`` is pure: the same fitted generator and seed give the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import EmoaugError
from ..featureset import FeatureSet


class Generator:
    """Base class of every augmenter. Subclasses set ``name`` and implement ``_fit``/``_generate``."""

    name: ClassVar[str] = "base"
    #: ``True`` when the generator adds nothing (the real-only baseline).
    produces_nothing: ClassVar[bool] = False

    def __init__(self, **config: Any):
        self.config = dict(config)
        self.fitted_item_ids: list[str] = []  # what fit() saw; the runner audits it for leakage
        self.fitted_speakers: set[str] = set()
        self.labels: tuple[str, ...] = ()

    #: profile name -> default config (model size, steps); user options override it.
    PROFILE_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: whether the runner should checkpoint it (see emoaug.generators.neural.NeuralGenerator)
    trainable: ClassVar[bool] = False
    #: whether the runner passes the cell's ``seed`` in the config
    accepts_seed: ClassVar[bool] = False

    @classmethod
    def profile_config(cls, profile: str) -> dict[str, Any]:
        return dict(cls.PROFILE_DEFAULTS.get(profile, {}))

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

    def _fit(self, train: FeatureSet) -> None:
        raise NotImplementedError

    def _generate(self, n_per_class: dict[str, int], seed: int) -> FeatureSet:
        raise NotImplementedError
