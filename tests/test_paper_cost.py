"""benchmarks/paper_cost.py: the counter counts what it should, and the projection follows from the counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check, paper_cost

ROOT = Path(__file__).resolve().parents[1]


def test_counted_gives_the_flops_and_the_saved_activations_of_a_linear_layer():
    torch.manual_seed(0)
    layer = torch.nn.Linear(10, 20)
    x = torch.randn(4, 10)
    with paper_cost.Counted() as counted:
        layer(x).square().sum().backward()
    # forward 2 x 4 x 10 x 20; backward: the weight's gradient only (x needs none), the same again
    assert counted.flops == 2 * (2 * 4 * 10 * 20)
    # saved for backward: x (by the matmul; the weight is a parameter, not an activation) and the output (by square)
    assert counted.saved_bytes == 4 * 10 * 4 + 4 * 20 * 4


def test_the_projected_rate_is_the_sustained_rate_over_the_counted_flops():
    models = {name: {"train_flops_per_step": 1e12 * (k + 1), "sample_flops_per_unit": 1e9 * (k + 1),
                     "cpu_train_flops_per_s": 5e10, "cpu_sample_flops_per_s": 2.5e10}
              for k, name in enumerate(("resnet50", "ser_cnn_blstm", "dcgan", "diffusion"))}
    flops = paper_cost.flops_per_unit(models)
    assert set(flops) == set(gpu_check.RATE_KEYS)
    assert flops["diffusion_train_steps_per_s"] == 4e12 and flops["dcgan_items_per_s"] == 3e9
    gpu, cpu = paper_cost.projected_rates(models), paper_cost.cpu_rates(models)
    for key in gpu_check.RATE_KEYS:
        assert gpu[key] * flops[key] == pytest.approx(paper_cost.SUSTAINED_FLOPS)
    assert cpu["diffusion_train_steps_per_s"] == pytest.approx(5e10 / 4e12)
    assert cpu["classifier_infer_items_per_s"] == pytest.approx(2.5e10 / 1e9)
    assert paper_cost.SUSTAINED_FLOPS == pytest.approx(989.4e12 * paper_cost.GPU["utilisation"])


def test_toy_run_counts_every_paper_model_and_projects_both_profiles(tmp_path):
    out = tmp_path / "cost.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paper_cost.py"), "--toy", "--repeats", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data["models"]) == {"resnet50", "ser_cnn_blstm", "dcgan", "diffusion", "cyclegan", "vae"}
    for name, row in data["models"].items():
        assert row["train_flops_per_step"] > 0 and row["sample_flops_per_unit"] > 0, name
        assert row["activation_bytes_per_row"] > 0 and row["cpu_train_flops_per_s"] > 0, name
    # the published lengths cost more than the cut ones, on both corpora and on both kinds of machine
    for corpus in ("emodb", "ravdess"):
        for kind in ("gpu_hours", "cpu_hours"):
            assert data["plan"]["paper"][kind][corpus]["total"] < data["plan"]["paper-full"][kind][corpus]["total"]
    assert data["plan"]["paper-full"]["settings"] == {"classifier_epochs": 800, "dcgan_steps": 30000,
                                                      "diffusion_train_steps": 200000}
    assert "H100" in done.stdout and "paper-full" in done.stdout
