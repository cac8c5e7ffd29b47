"""Experiment files (emoaug.experiments, run_bench.py --config) and the Python API (emoaug.run, emoaug.load_run)."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pandas as pd
import pytest

import emoaug
from emoaug.api import resolve
from emoaug.bench.resolve import resolve_run_config
from emoaug.cli import main
from emoaug.errors import EmoaugError
from emoaug.experiments import experiment_toml

from tests.helpers import make_emodb, only_run_dir

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("options", [
    {"profile": "smoke"},
    {"profile": "quick", "gen": "none,diffusion", "protocol": "augment,clarity", "synthetic_ratio": "2,1",
     "seeds": 3, "gen_opt": ["diffusion.micro_batch_size=null", "diffusion.sampling_steps=7"]},
    {"profile": "smoke", "speaker_norm": True, "val_speakers": 0, "precision": "auto", "reference": "off",
     "protocol": "none", "baseline_gen": "off", "labels": "4class", "split": "loso"},
])
def test_the_written_file_resolves_to_the_same_experiment(options, tmp_path):
    config = resolve_run_config(**options)
    path = tmp_path / "experiment.toml"
    path.write_text(experiment_toml(config))
    again = resolve(path, {})
    assert again.experiment == config.experiment and again.fingerprint() == config.fingerprint()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, expected", [
    ('corpus = "emodb"\nfold = 3\n', r"exp.toml:2: unknown key 'fold' \(did you mean 'folds'\?\)"),
    ('seeds = "three"\n', r"exp.toml:1: 'seeds' must be an integer, got str 'three'"),
    ('speaker-norm = 1\n', r"exp.toml:1: 'speaker-norm' must be true or false"),
    ('split = "random"\n', r"exp.toml:1: 'split' must be one of kfold, loso, paper, standard"),
    ('corpus = "emodb\n', r"exp.toml: not valid TOML: .*line 1"),
    ('gen = "none"\n[generators.none]\n', r"exp.toml:1: give the generators either as `gen` or as"),
    ('[generators.none]\n[generators.diffusion]\nsampling_steps = 7\nsampling_stepz = 3\n',
     r"exp.toml:4: \[generators.diffusion\]: generator 'diffusion': unknown option 'sampling_stepz'"),
    ('[generators.dcgan]\nsteps = -2\n', r"exp.toml:2: \[generators.dcgan\]: .*steps"),
    ('[generators.dcgan]\nseed = 2\n', r"exp.toml:2: \[generators.dcgan\]: `seed` is set per cell"),
])
def test_a_bad_file_is_one_line_naming_the_file_line_and_key(text, expected, tmp_path):
    with pytest.raises(EmoaugError, match=expected) as caught:
        resolve(write(tmp_path, text), {})
    assert "\n" not in str(caught.value)


def test_the_command_line_overrides_the_file_and_names_a_missing_file(tmp_path, capsys):
    path = write(tmp_path, 'profile = "smoke"\nfolds = 4\n[generators.none]\n[generators.dcgan]\nsteps = 6\n')
    config = resolve(path, {"folds": 3, "gen_opt": ["dcgan.batch_size=4"]})
    assert (config.experiment.n_folds, config.experiment.generators) == (3, ["none", "dcgan"])
    assert config.experiment.generator_configs["dcgan"]["steps"] == 6
    assert config.experiment.generator_configs["dcgan"]["batch_size"] == 4
    assert main(["--config", str(tmp_path / "absent.toml"), "--no-mlflow"]) == 2
    assert "--config: " in capsys.readouterr().err


def test_every_example_file_reads_and_the_default_job_resolves():
    """examples/: each file's keys, types and generator options are valid (corpora may be absent here); the
    default job's file resolves to what `python run_bench.py` runs."""
    from emoaug.api import read_config_file

    files = sorted(EXAMPLES.glob("*.toml"))
    assert len(files) >= 3
    for path in files:
        assert read_config_file(path), path
    default = resolve(EXAMPLES / "default.toml", {})
    assert default.experiment == resolve_run_config().experiment


def test_the_api_runs_and_its_experiment_file_reruns_from_the_store(tmp_path):
    """emoaug.run returns the frames; experiment.toml run through the command line reuses every cell and writes
    byte-identical tables; emoaug.load_run reads the folder back."""
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08", "09", "10"), texts=("a01", "a02"))
    store = tmp_path / "store"
    result = emoaug.run(corpus="emodb", data_root=str(root), profile="smoke", gen=["none", "specaugment"],
                        protocol="none", reference="off", out=str(tmp_path / "api"), store=str(store),
                        executor="local", mlflow=False)
    assert set(result.summary["generator"]) == {"none", "specaugment"} and result.mlflow_run_id is None
    assert not result.comparisons.empty and not result.predictions.empty and "ua" in result.generators
    first = result.run_dir
    assert main(["--config", str(first / "experiment.toml"), "--out", str(tmp_path / "cli"), "--store",
                 str(store), "--executor", "local", "--no-mlflow"]) == 0
    second = only_run_dir(tmp_path / "cli")
    assert second.name == first.name  # the same experiment: the same fingerprint
    assert json.loads((second / "cells.json").read_text())["computed"] == 0
    tables = sorted(p.relative_to(first) for p in (first / "tables").rglob("*") if p.is_file())
    assert tables and all(filecmp.cmp(first / t, second / t, shallow=False) for t in tables)
    loaded = emoaug.load_run(second)
    pd.testing.assert_frame_equal(loaded.summary, pd.read_csv(first / "summary.csv"))
    assert loaded.experiment == result.experiment
    with pytest.raises(EmoaugError, match="emoaug.run: .*unexpected keyword argument 'foldz'"):
        emoaug.run(foldz=3)


#: what examples/paper_dry_run.toml may cut: training lengths and sample counts, never a size
DRY_RUN_LENGTHS = {"dcgan": {"steps", "bn_batches"},
                   "diffusion": {"train_steps", "warmup_steps", "ser_epochs", "sampling_steps"}}


def test_the_paper_dry_run_keeps_every_size_of_the_paper_profile(tmp_path):
    """The dry run exercises the paper profile's code paths: its models, rows and batches are `paper`'s; only the
    lengths listed above, the classifier's epochs, seeds, folds and the synthetic ratio differ."""
    dry = resolve(EXAMPLES / "paper_dry_run.toml", {"data_root": str(tmp_path)}).experiment
    paper = resolve_run_config(corpus="emodb", data_root=str(tmp_path), profile="paper",
                               gen="none,dcgan,diffusion").experiment
    assert (dry.profile, dry.preset, dry.generators) == ("paper", paper.preset, paper.generators)
    assert dry.classifier.arch == paper.classifier.arch == "resnet50"
    assert dry.classifier.batch_size == paper.classifier.batch_size == 32 and dry.classifier.epochs == 1
    for name, cut in DRY_RUN_LENGTHS.items():
        dry_options, paper_options = dry.generator_configs[name], paper.generator_configs[name]
        changed = {key for key in paper_options if dry_options.get(key) != paper_options[key]}
        assert changed == cut, name
        assert all(dry_options[key] < paper_options[key] for key in cut)
