"""Third-party generators: an entry point in the ``emoaug.generators`` group, found without installing."""

from __future__ import annotations

import sys
import textwrap

import pandas as pd
import pytest

from emoaug.cli import main
from emoaug.generators import available_generators, get_generator_class
from tests.helpers import fake_distribution, make_emodb

PLUGIN_MODULE = '''
from dataclasses import dataclass

import torch

from emoaug.featureset import FeatureSet
from emoaug.generators.base import Generator
from emoaug.generators.options import option


@dataclass(frozen=True)
class NoisyConfig:
    sigma: float = option(0.1, "noise standard deviation", ge=0)


class NoisyCopies(Generator):
    """Training rows of each class plus Gaussian noise (config: sigma)."""

    name = "noisy_copies"
    Config = NoisyConfig

    def _fit(self, train):
        self.train = train

    def _generate(self, n_per_class, seed):
        g = torch.Generator().manual_seed(seed)
        rows, ys = [], []
        for label, n in n_per_class.items():
            pool = (self.train.y == self.labels.index(label)).nonzero().flatten()
            pick = pool[torch.randint(len(pool), (n,), generator=g)]
            rows.append(self.train.x[pick] + self.options.sigma * torch.randn(
                (n, *self.train.x.shape[1:]), generator=g))
            ys.append(self.train.y[pick])
        y = torch.cat(ys)
        return FeatureSet(torch.cat(rows), y, self.labels, [f"gen:noisy:{k}" for k in range(len(y))])
'''


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    """A fake installed distribution: a module plus a dist-info folder declaring the entry point."""
    fake_distribution(tmp_path, "emoaug_noisy_plugin", textwrap.dedent(PLUGIN_MODULE), "emoaug.generators",
                      "noisy = emoaug_noisy_plugin:NoisyCopies")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("emoaug_noisy_plugin", None)


def test_entry_point_plugin_is_listed_and_resolved(plugin_on_path):
    assert "noisy" in available_generators()
    assert get_generator_class("noisy").__name__ == "NoisyCopies"


def test_entry_point_plugin_runs_through_the_benchmark(plugin_on_path, tmp_path, capsys):
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08", "09", "10"), texts=("a01",))
    out = tmp_path / "runs"
    code = main(["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--gen", "none,noisy",
                 "--gen-opt", "noisy.sigma=0.2", "--out", str(out), "--no-mlflow"])
    assert code == 0, capsys.readouterr().err
    run_dir = next(out.iterdir())
    summary = pd.read_csv(run_dir / "summary.csv")
    assert set(summary["generator"]) == {"none", "noisy"}
    config = pd.read_json(run_dir / "config.json", typ="series")
    assert config["experiment"]["generator_configs"]["noisy"] == {"sigma": 0.2}
    timings = pd.read_csv(run_dir / "timings.csv")
    assert timings.query("generator == 'noisy'")["n_synthetic_rows"].gt(0).all()


def test_unknown_gen_opt_target_is_refused(tmp_path, capsys):
    code = main(["--gen", "none", "--gen-opt", "diffusion.steps=3", "--out", str(tmp_path), "--no-mlflow"])
    assert code == 2
    assert "--gen-opt" in capsys.readouterr().err
