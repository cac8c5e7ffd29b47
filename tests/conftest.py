"""Test-wide settings: keep every cache inside pytest's temporary folders."""

import os

import pytest
import torch

# One intra-op thread: on a 2-core machine shared with anything else, torch's spinning OpenMP workers
# can slow training tenfold; one thread is a little slower alone but never pathological.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """No test reads or writes the user's ~/.cache/emoaug; the session shares one cache folder."""
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
