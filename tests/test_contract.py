"""The generator contract kit (emoaug.testing.check_generator): every built-in and the README's plugin keep it,
and each kind of broken generator is caught with the property it breaks named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from emoaug.featureset import FeatureSet
from emoaug.generators import BUILTIN_CLASSES, get_generator_class
from emoaug.generators.base import Generator
from emoaug.generators.options import option
from emoaug.testing import ContractError, check_generator

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("name", sorted(BUILTIN_CLASSES))
def test_every_builtin_keeps_the_contract(name):
    check_generator(get_generator_class(name))


def test_the_readme_plugin_keeps_the_contract(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (tmp_path / "readme_contract_plugin.py").write_text(next(b for b in blocks if "class NoisyCopies" in b))
    monkeypatch.syspath_prepend(str(tmp_path))
    from readme_contract_plugin import NoisyCopies

    check_generator(NoisyCopies, options={"sigma": 0.3})


# ------------------------------------------------------------------------------------------------ broken ones
class Copies(Generator):
    """A correct sampling generator: noisy copies of training rows of the asked class."""

    name = "copies"

    def _fit(self, train: FeatureSet) -> None:
        self.train = train

    def _rows(self, n_per_class: dict[str, int], generator: torch.Generator) -> FeatureSet:
        names = self.train.label_names()
        picks = [k for label, n in n_per_class.items() for k in [i for i, h in enumerate(names) if h == label][:1] * n]
        x = self.train.x[picks] + 0.01 * torch.randn((len(picks), *self.train.x.shape[1:]), generator=generator)
        y = self.train.y[picks]
        return FeatureSet(x=x, y=y, labels=self.labels, item_ids=[f"gen:{self.name}:{k}" for k in range(len(picks))])

    def _generate(self, n_per_class: dict[str, int], seed: int) -> FeatureSet:
        return self._rows(n_per_class, torch.Generator().manual_seed(seed))


class Impure(Copies):
    """Draws from a generator kept between calls: the same seed gives other rows the second time."""

    name = "impure"

    def _fit(self, train):
        super()._fit(train)
        self.rng = torch.Generator().manual_seed(0)

    def _generate(self, n_per_class, seed):
        return self._rows(n_per_class, self.rng)


class Peeking(Copies):
    """Claims to have been fit on one more item than it was given."""

    name = "peeking"

    def fit(self, train):
        super().fit(train)
        self.fitted_item_ids = [*self.fitted_item_ids, "held-out/item"]
        return self


class WrongShape(Copies):
    name = "wrongshape"

    def _generate(self, n_per_class, seed):
        rows = super()._generate(n_per_class, seed)
        return FeatureSet(x=rows.x[:, :, :-1].contiguous(), y=rows.y, labels=rows.labels, item_ids=rows.item_ids)


class ShortChanging(Copies):
    """Returns one row fewer than asked for."""

    name = "short"

    def _generate(self, n_per_class, seed):
        return super()._generate(n_per_class, seed).subset(list(range(sum(n_per_class.values()) - 1)))


@pytest.mark.parametrize("cls, prop", [(Impure, "purity"), (Peeking, "fit scope"), (WrongShape, "output"),
                                       (ShortChanging, "output")])
def test_a_broken_generator_is_caught_naming_the_property(cls, prop):
    with pytest.raises(ContractError, match=f"generator '{cls.name}' breaks the contract: {prop}:"):
        check_generator(cls, options={}, cell=False)


def test_a_correct_toy_generator_passes_including_the_cell():
    check_generator(Copies, options={})


def test_an_option_that_accepts_anything_is_caught():
    class Lax(Copies):
        name = "lax"

        def __init__(self, **config):  # swallows every option instead of declaring them
            super().__init__()
            self.config = dict(config)

    with pytest.raises(ContractError, match="config: an unknown option"):
        check_generator(Lax, options={}, cell=False)


def test_a_declared_option_is_checked_for_its_type():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class TypedConfig:
        sigma: float = option(0.1, "noise level", ge=0.0)

    class Typed(Copies):
        name = "typed"
        Config = TypedConfig

    check_generator(Typed, options={"sigma": 0.2}, cell=False)
    with pytest.raises(ContractError, match="config: .*sigma"):  # the options given must themselves be valid
        check_generator(Typed, options={"sigma": -1.0}, cell=False)
