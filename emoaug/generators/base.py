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
        self.labels: tuple[str, ...] = ()

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    def fit(self, train: FeatureSet) -> Generator:
        self.fitted_item_ids = sorted(set(train.item_ids))
        self.labels = train.labels
        self._fit(train)
        return self

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
