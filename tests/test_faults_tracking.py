"""Faults of the MLflow tracking store and of --out (issue 11's fault catalogue, continued).

A tracking store that cannot be written is one warning line naming it (no page of SQLAlchemy errors), the run
still succeeds and its local results are intact; two runs creating one sqlite store at the same moment both
get logged; --out on a read-only folder is a one-line error.

Read-only faults: chmod makes a file or folder read-only for an ordinary user, but root (uid 0, as these
tests run in some containers and CI) writes through any mode bits. There the fault is injected at the OS
boundary the code crosses instead (see :func:`read_only`), as close to the real failure as possible: sqlite
itself raises its own error for a database opened read-only.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from emoaug.cli import main
from tests.helpers import make_emodb, only_run_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return make_emodb(tmp_path_factory.mktemp("data") / "emodb", speakers=("03", "08", "09", "10"), texts=("a01",))


@pytest.fixture(scope="module")
def cell_store(tmp_path_factory):
    """One cell store for the module: each test's runs reuse the cells the first one computed."""
    return tmp_path_factory.mktemp("cells")


def args_for(root: Path, out: Path, store: Path, *extra: str) -> list[str]:
    # --quiet: stderr holds warnings and errors only, so "exactly one line" is checkable
    return ["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--gen", "none",
            "--protocol", "none", "--out", str(out), "--store", str(store), "--quiet", *extra]


def _inside(path, target: Path) -> bool:
    try:
        resolved = Path(os.fsdecode(path)).resolve()
    except (TypeError, ValueError):
        return False
    return resolved == target or target in resolved.parents


WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _denied(path) -> PermissionError:
    return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))


@contextlib.contextmanager
def read_only(target: Path) -> Iterator[None]:
    """``target`` (a file, or a folder and every folder below it) is read-only for this process while the
    context lasts.

    As an ordinary user: chmod, the real fault. When chmod does not stop this process from writing (root, or
    a process with CAP_DAC_OVERRIDE), the fault is injected where the code meets the OS instead, for paths at
    or under ``target``: ``sqlite3.connect`` opens the database through a ``mode=ro`` URI, so sqlite raises
    its real error ("attempt to write a readonly database" for an existing database, "unable to open database
    file" for a new one); ``os.access`` (what the --out check asks) answers no to W_OK; opening for writing
    (``open``, ``os.open``) and ``os.mkdir`` raise PermissionError(EACCES) as the OS would."""
    target = target.resolve()
    paths = [target, *(p for p in target.rglob("*") if p.is_dir())] if target.is_dir() else [target]
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in paths}
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        with pytest.MonkeyPatch.context() as patch:
            if os.access(target, os.W_OK):  # chmod does not bind this process
                real_connect, real_access, real_open, real_os_open, real_mkdir = (
                    sqlite3.connect, os.access, builtins.open, os.open, os.mkdir)

                def connect(database, *args, **kwargs):
                    if not _inside(database, target):
                        return real_connect(database, *args, **kwargs)
                    kwargs.pop("uri", None)
                    read_only_uri = f"{Path(os.fsdecode(database)).resolve().as_uri()}?mode=ro"
                    return real_connect(read_only_uri, *args, uri=True, **kwargs)

                def access(path, access_mode, *args, **kwargs):
                    if access_mode & os.W_OK and _inside(path, target):
                        return False
                    return real_access(path, access_mode, *args, **kwargs)

                def open_(file, mode="r", *args, **kwargs):
                    if set(mode) & set("wax+") and _inside(file, target):
                        raise _denied(file)
                    return real_open(file, mode, *args, **kwargs)

                def os_open(path, flags, *args, **kwargs):
                    if flags & WRITE_FLAGS and _inside(path, target):
                        raise _denied(path)
                    return real_os_open(path, flags, *args, **kwargs)

                def mkdir(path, *args, **kwargs):
                    if _inside(path, target):
                        raise _denied(path)
                    return real_mkdir(path, *args, **kwargs)

                patch.setattr(sqlite3, "connect", connect)
                patch.setattr(os, "access", access)
                patch.setattr(builtins, "open", open_)
                patch.setattr(io, "open", open_)
                patch.setattr(os, "open", os_open)
                patch.setattr(os, "mkdir", mkdir)
            yield
    finally:
        for path in reversed(paths):
            path.chmod(modes[path])


# ------------------------------------------------------------------------------------- a read-only store
@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("database", "attempt to write a readonly database"),  # the default store, <out>/mlflow.db, read-only
        ("folder", "unable to open database file"),  # --tracking-uri into a read-only folder: a new database
        ("folder-with-database", "attempt to write a readonly database"),  # no journal can be made beside it
        ("artifacts", "Permission denied"),  # the store is writable, <out>/mlartifacts is not
    ],
)
def test_a_read_only_tracking_store_is_one_warning_naming_it_and_keeps_results(
        emodb_root, cell_store, tmp_path, capsys, case, says):
    out, folder = tmp_path / "runs", tmp_path / "tracking"
    folder.mkdir()
    if case in ("database", "artifacts"):
        uri_args, db = [], out / "mlflow.db"
        target = db if case == "database" else out / "mlartifacts"
    else:
        db = folder / "mlflow.db"
        uri_args, target = ["--tracking-uri", f"sqlite:///{db}"], folder
    args = args_for(emodb_root, out, cell_store, *uri_args)
    assert main(args if case != "folder" else [*args, "--no-mlflow"]) == 0
    assert db.exists() == (case != "folder")
    run_dir = only_run_dir(out)
    first = {name: pd.read_csv(run_dir / name) for name in ("predictions.csv", "summary.csv")}
    capsys.readouterr()

    with read_only(target):
        code = main(args)
        printed, err = capsys.readouterr()
    assert code == 0  # the results are local first; tracking is a copy
    assert "Traceback" not in err and "mlflow.store" not in err and "[SQL:" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # nothing from MLflow, SQLAlchemy or alembic: our one line
    assert lines[0].startswith("MLflow logging failed") and str(db) in lines[0] and says in lines[0]
    assert case != "artifacts" or str(target) in lines[0]  # the folder that could not be written
    assert str(run_dir) in lines[0] and "mlflow: run" not in printed
    assert only_run_dir(out) == run_dir
    for name, frame in first.items():
        pd.testing.assert_frame_equal(frame, pd.read_csv(run_dir / name))
    assert any((run_dir / "tables").iterdir()) and (run_dir / "config.json").exists()


# ------------------------------------------------------------------------------- two runs, one new store
LOG_ONE = textwrap.dedent("""
    import sys, time
    from pathlib import Path

    from emoaug.bench.results import load_result
    from emoaug.bench.tracking import log_benchmark

    out, run_dir, barrier = map(Path, sys.argv[1:4])
    result = load_result(run_dir)
    import mlflow  # noqa: F401  the slow imports first, so both processes reach the store at the same moment
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: F401

    (barrier / f"ready-{run_dir.name}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.001)
    print(log_benchmark(tracking_uri=f"sqlite:///{out / 'mlflow.db'}", out_dir=out, run_dir=run_dir,
                        result=result))
""")


def test_two_runs_creating_one_sqlite_store_at_the_same_moment_are_both_logged(emodb_root, cell_store, tmp_path):
    """Without a lock the two processes' schema creations interleave: "table latest_metrics already exists",
    "duplicate column name", a half-migrated store. A real sqlite MLflow store, two real processes."""
    out, barrier = tmp_path / "runs", tmp_path / "barrier"
    barrier.mkdir()
    run_dirs = []
    for name in ("first", "second"):
        assert main(args_for(emodb_root, out, cell_store, "--run-name", name, "--no-mlflow")) == 0
        run_dirs.append(out / name)
    assert not (out / "mlflow.db").exists()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", LOG_ONE, str(out), str(run_dir), str(barrier)], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for run_dir in run_dirs]
    try:
        deadline = time.monotonic() + 300  # a hang guard only
        while len(list(barrier.glob("ready-*"))) < 2 and all(p.poll() is None for p in procs):
            assert time.monotonic() < deadline, "the logging processes never got ready"
            time.sleep(0.01)
        (barrier / "go").touch()
        finished = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (stdout, stderr) in zip(procs, finished):
        assert p.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stderr and "already exists" not in stderr, stderr[-3000:]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("emoaug")
    runs = client.search_runs([experiment.experiment_id])
    parents = {r.data.tags["emoaug.run_dir"]: r for r in runs if r.data.tags.get("emoaug.level") == "benchmark"}
    assert sorted(parents) == sorted(str(d.resolve()) for d in run_dirs)
    assert sorted(r.info.run_id for r in parents.values()) == sorted(out.strip() for out, _ in finished)
    for run_dir in run_dirs:
        arms = pd.read_csv(run_dir / "summary.csv")[["generator", "arm"]].drop_duplicates()
        parent_id = parents[str(run_dir.resolve())].info.run_id
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
        assert len(children) == len(arms) and all("ua" in r.data.metrics for r in children)


# -------------------------------------------------------------------------------------- --out read-only
@pytest.mark.parametrize("case", ["out", "below-out", "run-folder"])
def test_out_on_a_read_only_folder_is_a_one_line_error(emodb_root, cell_store, tmp_path, capsys, case):
    """--out itself, a new folder to make below it, or (--out writable) the run folder an earlier run of the
    same command left, which this one would write into."""
    folder = tmp_path / "readonly"
    out = {"out": folder, "below-out": folder / "new" / "deeper", "run-folder": tmp_path / "runs"}[case]
    if case == "run-folder":
        assert main(args_for(emodb_root, out, cell_store, "--no-mlflow")) == 0
        folder = only_run_dir(out)
    else:
        folder.mkdir()
    before = sorted((p, p.stat().st_mtime_ns) for p in folder.rglob("*"))
    capsys.readouterr()
    with read_only(folder):
        code = main(args_for(emodb_root, out, cell_store, "--no-mlflow"))
        err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert "--out" in err and str(folder) in err and "Traceback" not in err
    assert sorted((p, p.stat().st_mtime_ns) for p in folder.rglob("*")) == before  # nothing was written
