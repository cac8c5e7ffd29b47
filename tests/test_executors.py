"""Cells as content-addressed jobs: the same numbers from every executor, reuse across runs only when the
content is the same, and safe restarts after kill -9 (smoke profile on small fixture corpora).

The Ray tests start a real local Ray instance (loopback, 2 CPUs, no dashboard) and are skipped where Ray is
not installed (it is an optional extra: pip install -e '.[ray]'; the test extra installs it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import pytest

from emoaug.cli import main
from emoaug.bench.parallelism import resolve_parallelism
from emoaug.errors import EmoaugError
from tests.helpers import (cells_index, emotion_signal, kill_group, make_emodb, only_run_dir, published_cells,
                           wait_until_group_is_empty, write_wav)

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ("03", "08", "09", "10", "11", "13")
# dcgan: a trained generator with a checkpoint, at under half of vae's smoke cost with the clarity protocol
GRID = ("--gen", "none,specaugment,dcgan", "--protocol", "augment,clarity")

try:
    import ray  # noqa: F401

    HAVE_RAY = True
except ImportError:
    HAVE_RAY = False
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is an optional extra: pip install -e '.[ray]'")


@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return make_emodb(tmp_path_factory.mktemp("data") / "emodb", speakers=SPEAKERS, texts=("a01", "a02"))


def run_args(root: Path, out: Path, store: Path, *extra: str) -> list[str]:
    return ["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--out", str(out),
            "--store", str(store), "--no-mlflow", *extra]




def result_bytes(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in ("predictions.csv", "summary.csv")}


# ------------------------------------------------------------------------------------------------ executors
@pytest.fixture(scope="module")
def local_grid(emodb_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local")
    assert main(run_args(emodb_root, tmp / "runs", tmp / "store", *GRID, "--executor", "local",
                         "--threads", "1")) == 0
    return only_run_dir(tmp / "runs")


def test_without_ray_the_ray_executor_is_a_one_line_error(emodb_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as on a machine without the extra: import ray fails
    code = main(run_args(emodb_root, tmp_path / "runs", tmp_path / "store", "--gen", "none", "--executor", "ray"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "pip install -e '.[ray]'" in err


@pytest.mark.parametrize("executor", ["process", pytest.param("ray", marks=needs_ray)])
def test_kill_9_mid_grid_then_rerun_gives_identical_numbers_and_no_partial_files(emodb_root, local_grid, tmp_path,
                                                                                 executor):
    """Also the executors' determinism: a grid computed partly before a kill -9 and partly after, by the process
    pool or Ray, gives byte-identical results to the local executor."""
    store, out = tmp_path / "store", tmp_path / "runs"
    args = run_args(emodb_root, out, store, *GRID, "--executor", executor, "--jobs", "2", "--threads", "1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_bench.py"), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=os.environ.copy(), start_new_session=True)
    deadline = time.monotonic() + 300
    while len(published_cells(store)) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only, as `kill -9 PID` would
    proc.wait()
    if executor == "process":  # pool workers notice that the driver is gone and exit
        assert wait_until_group_is_empty(proc.pid, timeout_s=20), "worker processes outlived the killed driver"
    else:  # a local Ray instance's own processes are Ray's to reap; don't leave them to the next test
        kill_group(proc.pid)
    run_dir = only_run_dir(out)
    assert not (run_dir / "predictions.csv").exists()

    assert main(args) == 0
    assert not list(store.rglob("*.tmp")) and not list(run_dir.rglob("*.tmp"))
    cells = cells_index(run_dir)
    assert 3 <= (~cells["computed_by_this_run"]).sum() < len(cells)  # finished cells were kept and reused
    # cells computed by this executor before and after the kill give byte-identical results to the local run
    assert result_bytes(run_dir) == result_bytes(local_grid)
    execution = json.loads((run_dir / "config.json").read_text())["execution"]
    assert (execution["executor"], execution["jobs"], execution["threads"]) == (executor, 2, 1)
    audit = json.loads((run_dir / "leakage_audit.json").read_text())
    assert audit["passed"] and {"generator 'dcgan'", "normaliser"} <= {c["what"] for c in audit["checks"]}


def test_the_process_pool_queues_the_reference_folds_behind_the_last_judge(emodb_root, tmp_path, monkeypatch):
    """The reference folds are short: queued last, they keep a worker busy while the other finishes the last cell,
    instead of holding a worker before the cells (so they are submitted only once every judge is back)."""
    from contextlib import contextmanager

    from emoaug.bench import executors

    judges_back, judges_back_at_reference = [], []
    original_pool, original_execute = executors.worker_pool, executors.ProcessExecutor.execute

    @contextmanager
    def recording_pool(*args, **kwargs):
        with original_pool(*args, **kwargs) as pool:
            submit = pool.submit

            def recorded(fn, *fn_args, **fn_kwargs):
                if fn is executors.run_reference:
                    judges_back_at_reference.append(len(judges_back))
                return submit(fn, *fn_args, **fn_kwargs)

            pool.submit = recorded
            yield pool

    def execute(self, jobs):
        on_judge = jobs.on_judge
        jobs.on_judge = lambda result: (judges_back.append(result.key), on_judge(result))[-1]
        return original_execute(self, jobs)

    monkeypatch.setattr(executors, "worker_pool", recording_pool)
    monkeypatch.setattr(executors.ProcessExecutor, "execute", execute)
    assert main(run_args(emodb_root, tmp_path / "runs", tmp_path / "store", "--gen", "none,specaugment",
                         "--protocol", "none", "--executor", "process", "--jobs", "2", "--threads", "1")) == 0
    assert len(judges_back) == 2  # smoke: 2 folds x 1 seed
    assert judges_back_at_reference == [2, 2]  # one reference fold per fold, both after both judges


# ------------------------------------------------------------------------------------------------ reuse
def test_adding_a_generator_computes_only_its_cells(emodb_root, tmp_path):
    store = tmp_path / "store"
    assert main(run_args(emodb_root, tmp_path / "first", store, "--gen", "none,specaugment")) == 0
    first = cells_index(only_run_dir(tmp_path / "first"))
    assert main(run_args(emodb_root, tmp_path / "second", store, "--gen", "none,specaugment,dcgan")) == 0
    second = cells_index(only_run_dir(tmp_path / "second"))
    computed = second[second["computed_by_this_run"]]
    assert set(computed["generator"]) == {"dcgan"} and len(computed) == 2  # 2 folds x 1 seed
    reused = second[~second["computed_by_this_run"]].set_index("key")
    assert set(reused.index) == set(first["key"])


def rewrite_one_item(root: Path, name: str, seed: int) -> None:
    """Same file name, new audio (e.g. a corrected recording): the item's content hash changes."""
    write_wav(root / "wav" / name, emotion_signal("angry", seconds=1.0, seed=seed), 16000)


def assert_predictions_cover_the_manifest(run_dir: Path) -> None:
    manifest = set(pd.read_csv(run_dir / "manifest.csv", dtype={"item_id": str})["item_id"])
    predictions = pd.read_csv(run_dir / "predictions.csv", dtype={"item_id": str})
    for _, part in predictions[predictions["arm"] == "main"].groupby(["generator", "seed"]):
        assert sorted(part["item_id"]) == sorted(manifest)


def test_changed_corpus_under_the_same_data_root_is_recomputed(tmp_path):
    root = make_emodb(tmp_path / "emodb", speakers=SPEAKERS[:4], texts=("a01", "a02"))
    args = run_args(root, tmp_path / "runs", tmp_path / "store", "--gen", "none")
    assert main(args) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    before = cells_index(run_dir)

    rewrite_one_item(root, "03a01Wa.wav", seed=99)  # new content under an old name
    make_emodb(root, speakers=("15",), texts=("a01", "a02"))  # and a new speaker
    assert main(args) == 0
    after = cells_index(run_dir)
    assert after["computed_by_this_run"].all()  # every fold holds the changed items, so every cell is new
    assert not set(after["judge_key"]) & set(before["judge_key"])  # no judge of the old data is reused
    assert_predictions_cover_the_manifest(run_dir)
    audit = json.loads((run_dir / "split_audit.json").read_text())
    assert all(not speakers for fold in audit["folds"] for speakers in fold["speaker_overlap"].values())


def test_two_copies_through_emoaug_data_never_share_cells(tmp_path, monkeypatch):
    copies = []
    for name, speakers in (("a", SPEAKERS[:4]), ("b", SPEAKERS[2:])):  # overlapping but different speakers
        make_emodb(tmp_path / name / "emodb", speakers=speakers, texts=("a01", "a02"))
        copies.append(tmp_path / name)
    args = ["--corpus", "emodb", "--profile", "smoke", "--gen", "none", "--out", str(tmp_path / "runs"),
            "--store", str(tmp_path / "store"), "--no-mlflow"]
    keys = []
    for parent in copies:
        monkeypatch.setenv("EMOAUG_DATA", str(parent))
        assert main(args) == 0
        run_dir = only_run_dir(tmp_path / "runs")  # the same command line: the same run folder
        cells = cells_index(run_dir)
        assert cells["computed_by_this_run"].all()
        assert_predictions_cover_the_manifest(run_dir)
        keys.append(set(cells["judge_key"]))
    assert not keys[0] & keys[1]


# ------------------------------------------------------------------------------------------------ threads
def test_workers_times_threads_never_exceed_the_cores():
    for cores in (1, 2, 8, 32):
        for jobs in (0, 1, 2, 4):
            chosen = resolve_parallelism("process", jobs, 0, "cpu", cores=cores)
            assert chosen.jobs * chosen.threads <= max(cores, chosen.jobs)
    assert resolve_parallelism("auto", 0, 0, "cpu", cores=2) == resolve_parallelism("process", 2, 1, "cpu", cores=2)
    assert resolve_parallelism("auto", 0, 0, "cpu", cores=1).executor == "local"
    assert resolve_parallelism("auto", 0, 0, "cuda:0", cores=16).executor == "local"
    with pytest.raises(EmoaugError, match="--jobs"):
        resolve_parallelism("local", 2, 0, "cpu", cores=2)


def test_a_cluster_receives_features_as_arrays_and_builds_the_same_fold_data(emodb_root, tmp_path):
    """Workers on other machines cannot read the driver's feature cache: Ray with an address ships arrays."""
    import pickle

    from emoaug.bench.resolve import resolve_run_config
    from emoaug.bench.runner import prepare_workload
    from emoaug.features import CachedFeatures

    config = resolve_run_config(corpus="emodb", data_root=str(emodb_root), profile="smoke", out=str(tmp_path),
                                reference="off")
    workload, _, _ = prepare_workload(config, tmp_path / "run")
    assert isinstance(workload.features, CachedFeatures)
    remote = workload.in_memory()
    assert isinstance(remote.features, dict) and set(remote.features) == set(workload.features)
    assert len(pickle.dumps(workload)) * 5 < len(pickle.dumps(remote))  # an index of files vs the arrays
    local_data, remote_data = workload.fold_data(0, 0), remote.fold_data(0, 0)
    assert torch.equal(local_data.train.x, remote_data.train.x) and torch.equal(local_data.test.x, remote_data.test.x)
