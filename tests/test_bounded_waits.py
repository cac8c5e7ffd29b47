"""Waits on other processes are bounded (issue 22): a Ray address where nothing listens, an MLflow server that
does not answer, another run's lock on a sqlite store. Each ends in one line naming what to check."""

from __future__ import annotations

import socket
import time

import pytest

from emoaug.bench.executors import RayExecutor, check_ray_address
from emoaug.bench.parallelism import Parallelism
from emoaug.bench.tracking import TrackingStoreError, describe_failure, sqlite_store
from emoaug.cli import main
from emoaug.run_options import run_parser
from emoaug.errors import EmoaugError
from tests.helpers import make_emodb


def closed_port() -> int:
    """A loopback port nothing listens on: bound to find a free one, then closed (never listened)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_ray_address_where_nothing_listens_fails_fast_with_one_line(tmp_path, capsys):
    pytest.importorskip("ray")
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08"), letters="WN", texts=("a01",), seconds=0.5)
    port = closed_port()
    start = time.monotonic()
    code = main(["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--gen", "none",
                 "--protocol", "none", "--reference", "off", "--executor", "ray", "--ray-address",
                 f"127.0.0.1:{port}", "--out", str(tmp_path / "runs"), "--no-mlflow"])
    seconds = time.monotonic() - start
    err = capsys.readouterr().err.strip()
    assert code == 2 and seconds < 30, (code, seconds)
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert f"--ray-address 127.0.0.1:{port}" in err and f"ray start --head --port {port}" in err
    assert not (tmp_path / "runs").exists()  # stopped before the corpus was read


def test_ray_executor_connect_checks_the_address_before_ray_init(monkeypatch):
    ray = pytest.importorskip("ray")
    called = []
    monkeypatch.setattr(ray, "init", lambda *a, **k: called.append(k))  # would retry for ever
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    port = closed_port()
    executor = RayExecutor(Parallelism(executor="ray", jobs=1, threads=1), f"ray://127.0.0.1:{port}")
    with pytest.raises(EmoaugError, match=f"--ray-address ray://127.0.0.1:{port}: no Ray cluster answered"):
        executor.connect()
    assert called == []


def test_a_listening_address_passes_and_portless_ones_are_left_to_ray():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        check_ray_address(f"127.0.0.1:{server.getsockname()[1]}")  # no error
    check_ray_address("auto")
    with pytest.raises(EmoaugError, match="not a TCP port"):
        check_ray_address("127.0.0.1:70000")


def test_an_address_that_never_answers_is_given_up_after_the_timeout(monkeypatch):
    def hang(address, timeout):
        assert timeout == 0.2
        raise socket.timeout("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    with pytest.raises(EmoaugError, match=r"no Ray cluster answered within 0.2 s; start one with"):
        check_ray_address("127.0.0.1:6399", timeout_s=0.2)


def test_an_unanswering_tracking_server_names_the_bound_and_what_to_check():
    err = RuntimeError("API request failed")
    err.__cause__ = ConnectionRefusedError(111, "Connection refused")
    line = describe_failure(err, "http://127.0.0.1:5999")
    assert "http://127.0.0.1:5999" in line and "within 10 s" in line and "--no-mlflow" in line
    assert "\n" not in line
    assert "within" not in describe_failure(err, "sqlite:///x.db")


def test_a_locked_sqlite_store_is_waited_for_a_bounded_time(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    db = tmp_path / "mlflow.db"
    with open(f"{db}.lock", "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another run logging
        start = time.monotonic()
        with pytest.raises(TrackingStoreError, match=r"stayed locked by another process for 0 s"):
            with sqlite_store(db, wait_s=0.3):
                pass
        assert time.monotonic() - start < 5


def test_help_states_every_bound():
    text = " ".join(run_parser().format_help().split())
    assert "within 30 s" in text and "10 s per request" in text and "up to 600 s" in text
