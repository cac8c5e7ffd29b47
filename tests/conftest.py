"""Test-wide settings: keep every cache inside pytest's temporary folders."""

import os

import pytest
import torch

# One intra-op thread: on a 2-core machine shared with anything else (the suite runs in two processes), torch's
# spinning OpenMP workers can slow training tenfold; one thread is a little slower alone but never pathological.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts with one torch thread, whatever a run before it in this process set (``--threads``)."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """No test reads or writes the user's ~/.cache/emoaug; the session shares one cache folder (one per pytest-xdist
    worker: each worker is its own session)."""
    cache = tmp_path_factory.mktemp("emoaug-cache")
    old = {key: os.environ.get(key) for key in ("EMOAUG_CACHE", "EMOAUG_DATA", "EMOAUG_EXECUTOR", "EMOAUG_THREADS")}
    os.environ["EMOAUG_CACHE"] = str(cache)
    # Runs in tests compute in-process with one thread unless a test asks for another executor (the
    # executor tests do): no worker start-up per run, and no thread contention with the test runner.
    os.environ["EMOAUG_EXECUTOR"] = "local"
    os.environ["EMOAUG_THREADS"] = "1"
    os.environ.pop("EMOAUG_DATA", None)
    yield cache
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


#: modules whose tests run whole benchmark runs (in-process or as subprocesses), executors or Ray
END_TO_END_MODULES = {"test_e2e", "test_e2e_generators", "test_e2e_protocols", "test_executors", "test_ratio_curve",
                      "test_faults", "test_faults_tracking", "test_faults_inputs", "test_leaderboard", "test_gpu_check",
                      "test_plugins"}
#: end-to-end tests in modules that are otherwise unit tests
END_TO_END_TESTS = {"test_every_run_has_the_reference_row_in_its_tables",
                    "test_the_reference_is_stored_per_fold_and_reused", "test_reference_off_leaves_it_out",
                    "test_iemocap_to_msp_improv_prints_malik_table3_with_the_paper_rows",
                    "test_the_run_uses_standardised_rows_and_functionals_and_keeps_the_statistics",
                    "test_training_folds_without_an_emotion_get_no_synthetic_rows_of_it_and_the_run_finishes",
                    "test_a_run_stops_on_copies_across_partitions_and_runs_flagged_when_allowed"}


def pytest_collection_modifyitems(config, items):
    """``slow`` marks end-to-end runs, so ``pytest -m "not slow"`` is a quick loop over the units (CI runs all)."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in END_TO_END_MODULES or item.originalname in END_TO_END_TESTS:
            item.add_marker(pytest.mark.slow)
