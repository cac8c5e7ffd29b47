"""benchmarks/gpu_check.py: the toy run on CPU reports every figure; the projection and sizing are sound."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check as gc

ROOT = Path(__file__).resolve().parents[1]
ALL = tuple(gc.PRECISIONS)
EXPECTED = {"resnet50": ALL, "ser_cnn_blstm": ("fp32", "bf16"), "dcgan": ALL, "diffusion": ALL}
SECOND = {"resnet50": "infer_items_per_s", "ser_cnn_blstm": "infer_items_per_s", "dcgan": "items_per_s",
          "diffusion": "row_steps_per_s"}
# plausible one-GPU figures (not measured): what the projection is fed in these tests
RATES = {"classifier_train_steps_per_s": 20.0, "classifier_infer_items_per_s": 2000.0, "ser_train_steps_per_s": 80.0,
         "dcgan_train_steps_per_s": 15.0, "dcgan_items_per_s": 3000.0, "diffusion_train_steps_per_s": 2.0,
         "diffusion_row_steps_per_s": 60.0}


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def settings():
    return gc.paper_settings("paper-full")  # the published counts


@pytest.fixture(scope="module")
def corpora():
    return gc.corpus_counts()


def test_toy_run_on_cpu_reports_every_figure(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--toy", "--device", "cpu",
                           "--budget-s", "4", "--json", str(out)], capture_output=True, text=True, timeout=150,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["meta"]["mode"] == "toy" and data["meta"]["device"] == "cpu"
    for model, precisions in EXPECTED.items():
        assert set(data["speed"][model]) == set(precisions)
        for precision in precisions:
            row = data["speed"][model][precision]
            assert row["status"] == "ok", (model, precision, row)
            for key in ("steps_per_s", "full_batch_steps_per_s", SECOND[model], "seconds"):
                assert finite(row[key]) and row[key] > 0, (model, precision, key, row.get(key))
            assert row["peak_memory_mib"] is None and finite(row["process_max_rss_mib"])  # CPU: no CUDA peak
            agree = data["agreement"][model][precision]
            assert finite(agree["rel_error"]) and finite(agree["max_abs_error"]) and isinstance(agree["pass"], bool)
        proxy = data["proxy"][model]
        assert proxy["status"] == "ok" and proxy["steps"] >= 2
        for key in ("bf16_delta", "seed_delta", "bf16_step_rms", "seed_step_rms", "fp32_tail_mean"):
            assert finite(proxy[key])
        assert isinstance(proxy["within_seed_noise"], bool)
    assert "1-D" in data["skipped"]["ser_cnn_blstm/channels_last"]
    assert all(finite(row["items_per_s_at_paper_steps"]) for row in data["speed"]["diffusion"].values())
    # CPU vs CPU in fp32 is the same computation
    assert data["agreement"]["resnet50"]["fp32"]["rel_error"] == 0.0
    for key in gc.RATE_KEYS:
        assert finite(data["rates"][key]) and data["rates"][key] > 0, key
    for corpus in ("emodb", "ravdess"):
        projection = data["projection"][corpus]
        for key in ("none", "dcgan", "diffusion", "total"):
            assert finite(projection[key]) and projection[key] > 0
        assert projection["total"] == pytest.approx(projection["none"] + projection["dcgan"] + projection["diffusion"])
    sizing = data["sizing"]
    for key in ("classifier_epochs", "dcgan_steps", "diffusion_train_steps"):
        assert isinstance(sizing[key], int) and 0 < sizing[key] <= sizing["paper_full"][key]
    assert all(finite(h) for h in sizing["hours"].values())
    for text in ("PROXY", "WORST CASE", "paper-full", "recommended `paper`", "TOY", "paper_cost.py's projection"):
        assert text in done.stdout
    check = data["projection_check"]  # paper_cost's counts beside the measured rates
    for key in gc.RATE_KEYS:
        row = check["rates"][key]
        assert row["flops_per_unit"] > 0 and finite(row["projected_per_s"]) and finite(row["measured_over_projected"])
        assert row["achieved_tflops"] == pytest.approx(data["rates"][key] * row["flops_per_unit"] / 1e12)


def test_halving_the_rates_doubles_the_hours(settings, corpora):
    half = {key: value / 2 for key, value in RATES.items()}
    for corpus in corpora.values():
        fast, slow = gc.project_hours(RATES, corpus, settings), gc.project_hours(half, corpus, settings)
        for key in ("none", "dcgan", "diffusion", "total"):
            assert slow[key] == pytest.approx(2 * fast[key])


def test_projection_counts_the_paper_work(settings, corpora):
    assert (settings["classifier_epochs"], settings["dcgan_steps"], settings["diffusion_train_steps"]) == \
        (800, 30000, 200000)
    assert settings["diffusion_sampling_evaluations"] == 50 and settings["n_folds"] * settings["n_seeds"] == 15
    emodb = gc.project_hours(RATES, corpora["emodb"], settings)
    # the diffusion generator alone: 15 fits of 200,000 steps at 2 steps/s
    assert emodb["components"]["diffusion"]["generator_fit"] == pytest.approx(15 * 200000 / 2.0 / 3600)
    ravdess = gc.project_hours(RATES, corpora["ravdess"], settings)
    assert ravdess["none"] > emodb["none"]  # more rows per epoch
    assert emodb["worst_case"] is True
    with pytest.raises(ValueError, match="diffusion_row_steps_per_s"):
        gc.project_hours({**RATES, "diffusion_row_steps_per_s": None}, corpora["emodb"], settings)


def test_recommended_sizing_fits_the_budget_and_never_exceeds_paper_full(settings, corpora):
    sizing = gc.recommend_sizing(RATES, corpora, settings, budget_hours=12.0)
    assert sizing["fits"] and max(sizing["hours"].values()) <= 12.0
    full = sizing["paper_full"]
    assert max(full["hours"].values()) > 12.0  # these rates need a cut
    for key in ("classifier_epochs", "dcgan_steps", "diffusion_train_steps"):
        assert sizing["floors"][key] <= sizing[key] <= full[key]
    # a bigger budget never gives less
    bigger = gc.recommend_sizing(RATES, corpora, settings, budget_hours=48.0)
    assert all(bigger[key] >= sizing[key] for key in ("classifier_epochs", "dcgan_steps", "diffusion_train_steps"))
    # re-projecting the recommended sizes gives the hours it reports
    for name, corpus in corpora.items():
        sized = {**settings, **{k: sizing[k] for k in ("classifier_epochs", "dcgan_steps", "diffusion_train_steps")}}
        assert gc.project_hours(RATES, corpus, sized)["total"] == pytest.approx(sizing["hours"][name])


def test_sizing_keeps_paper_full_when_it_fits_and_reports_when_nothing_fits(settings, corpora):
    fast = {key: value * 1e4 for key, value in RATES.items()}
    sizing = gc.recommend_sizing(fast, corpora, settings)
    assert sizing["scale"] == 1.0 and sizing["fits"]
    assert sizing["diffusion_train_steps"] == 200000 and sizing["classifier_epochs"] == 800
    slow = {key: value / 1e3 for key, value in RATES.items()}
    sizing = gc.recommend_sizing(slow, corpora, settings)
    assert not sizing["fits"]
    assert {k: sizing[k] for k in sizing["floors"]} == sizing["floors"]


def test_split_arithmetic_matches_the_code():
    import torch

    from emoaug.bench.cells import allocate_synthetic
    from emoaug.classifiers.training import _batches
    from emoaug.splits import _default_val_count

    for speakers in range(2, 40):
        for folds in (2, 5, 10):
            assert gc.default_val_speakers(speakers, folds) == _default_val_count(speakers, folds)
    for n in (1, 2, 31, 32, 33, 65, 272):
        assert gc.n_batches(n, 32) == len(_batches(torch.arange(n), 32))
    counts = {"a": 47, "b": 76, "c": 37, "d": 41, "e": 43, "f": 28}
    for total in (0, 50, 272, 600):
        given = allocate_synthetic(counts, total)
        exact = sum(max(0, counts[k] - given[k]) for k in counts) if total else sum(counts.values())
        assert gc.synthetic_shortfall(counts, total) == pytest.approx(exact, abs=len(counts))
    corpora = gc.corpus_counts()
    assert corpora["emodb"]["items"] == 454 and corpora["ravdess"]["items"] == 1056
    for corpus in corpora.values():
        rows = gc.fold_rows(corpus, 5)
        assert sum(r["test_speakers"] for r in rows) == corpus["speakers"]
        for r in rows:
            assert r["train"] + r["val"] + r["test"] == pytest.approx(corpus["items"])
    assert [r["train_speakers"] for r in gc.fold_rows(corpora["emodb"], 5)] == [6] * 5


def test_rates_come_from_eligible_settings_only():
    def row(steps, peak=1000.0, batch=32):
        return {"status": "ok", "steps_per_s": steps, "full_batch_steps_per_s": steps * batch / 32, "batch": batch,
                "config_batch": 32, "needs_accumulation": batch < 32, "peak_memory_mib": peak,
                "row_steps_per_s": steps, "second_metric": "row_steps_per_s"}

    results = {
        "speed": {"diffusion": {"fp32": row(1.0, batch=8), "bf16": row(3.0), "channels_last": row(2.0, peak=9e4),
                                "bf16+channels_last": row(4.0)}},
        "agreement": {"diffusion": {"fp32": {"pass": True}, "bf16": {"pass": True}, "channels_last": {"pass": True},
                                    "bf16+channels_last": {"pass": False}}},
        "proxy": {"diffusion": {"status": "ok", "within_seed_noise": False}},
    }
    rates, chosen = gc.best_rates(results)
    # bf16 failed the proxy, bf16+channels_last the agreement, channels_last the 78 GiB cap: fp32 remains
    assert rates["diffusion_train_steps_per_s"] == 0.25 and chosen["diffusion_train_steps_per_s"].startswith("fp32 at 8")
    results["proxy"]["diffusion"]["within_seed_noise"] = True
    rates, chosen = gc.best_rates(results)
    assert rates["diffusion_train_steps_per_s"] == 3.0 and chosen["diffusion_train_steps_per_s"] == "bf16"
    assert rates["classifier_train_steps_per_s"] is None  # nothing measured


def test_paper_is_paper_full_with_shorter_training(settings):
    paper = gc.paper_settings("paper")
    lengths = ("classifier_epochs", "dcgan_steps", "diffusion_train_steps")
    assert all(0 < paper[key] < settings[key] for key in lengths)
    same = {key for key in settings if key not in (*lengths, "profile", "dcgan_config", "diffusion_config")}
    assert {key: paper[key] for key in same} == {key: settings[key] for key in same}
    for name, steps in (("dcgan_config", "steps"), ("diffusion_config", "train_steps")):
        assert {**paper[name], steps: 0} == {**settings[name], steps: 0}
    assert paper["diffusion_config"]["unet"] == "1d"  # Kim & Lee's Table 4 network
