"""Signals and refused writes (issue 22): SIGINT or SIGTERM in any phase, and a full disk, give one line and
the exit code a shell expects, stop every worker within seconds, leave no temporary file and no finished.json,
and the same command resumes from the cell store. Damaged run folders are one warning under ``report``.

Signals go to real ``run_bench.py`` processes: SIGINT to the whole process group (what a terminal's Ctrl-C does)
and SIGTERM to the driver alone (``kill PID``)."""

from __future__ import annotations

import errno
import gc
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import pandas as pd
import pytest

from emoaug import interrupts, storage
from emoaug.bench.results import FINISHED, mark_finished
from emoaug.cli import main
from tests.helpers import cells_index, make_emodb, only_run_dir, published_cells, wait_until_group_is_empty

ROOT = Path(__file__).resolve().parents[1]
#: seconds the workers may take to be gone after the driver exited
WORKERS_GONE_WITHIN_S = 10


@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return make_emodb(tmp_path_factory.mktemp("data") / "emodb", speakers=("03", "08", "09", "10"), texts=("a01",))


def run_args(root: Path, tmp: Path, *extra: str, gen: str = "none") -> list[str]:
    return ["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--gen", gen, "--protocol", "none",
            "--reference", "off", "--out", str(tmp / "runs"), "--store", str(tmp / "store"), "--no-mlflow", *extra]


def temporaries(tmp: Path) -> list[Path]:
    return [p for p in tmp.rglob("*") if p.name.endswith(storage.TMP_SUFFIX)]


# ------------------------------------------------------------------------------------------------ subprocesses
class Run:
    """``run_bench.py ARGS`` in its own process group, its stderr collected line by line."""

    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run_bench.py"), *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True, env=os.environ.copy())
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    def wait_until(self, ready, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert self.proc.poll() is None, f"the run ended before the signal: {''.join(self.lines)[-2000:]}"
            assert time.monotonic() < deadline, "the run never reached the phase"
            time.sleep(0.02)

    def interrupt(self, sig: int, *, whole_group: bool) -> tuple[int, list[str], float]:
        """Send ``sig``; (exit code, stderr lines from then on, seconds until every process of the group is gone)."""
        before = len(self.lines)
        sent = time.monotonic()
        if whole_group:
            os.killpg(self.proc.pid, sig)
        else:
            os.kill(self.proc.pid, sig)
        code = self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        if not wait_until_group_is_empty(self.proc.pid, WORKERS_GONE_WITHIN_S):
            pytest.fail(f"worker processes outlived the driver by {WORKERS_GONE_WITHIN_S} s")
        gone = time.monotonic()
        return code, [line.rstrip("\n") for line in self.lines[before:]], gone - sent


def beyond_progress(err: str) -> list[str]:
    """stderr of an in-process run without its progress line (``run directory ...``)."""
    return [line for line in err.strip().splitlines() if not line.startswith("run directory")]


def assert_one_clean_line(lines: list[str], says: str) -> None:
    assert len(lines) == 1 and lines[0].startswith(says), lines
    assert "Traceback" not in lines[0]


@pytest.mark.slow
def test_sigterm_while_cells_run_stops_the_workers_and_the_same_command_resumes(emodb_root, tmp_path):
    args = run_args(emodb_root, tmp_path, "--executor", "process", "--jobs", "2", "--threads", "1",
                    gen="none,specaugment")
    run = Run(args)
    run.wait_until(lambda: len(published_cells(tmp_path / "store")) >= 2)  # 2 of 4: the other 2 are running
    code, lines, seconds = run.interrupt(signal.SIGTERM, whole_group=False)
    assert code == 143
    assert_one_clean_line(lines, "interrupted by SIGTERM: finished cells are kept in the cell store")
    assert seconds < WORKERS_GONE_WITHIN_S  # measured: about 2 s, the driver's exit included
    run_dir = only_run_dir(tmp_path / "runs")
    assert not temporaries(tmp_path) and not (run_dir / FINISHED).exists()
    stored = len(published_cells(tmp_path / "store"))

    assert main(args) == 0
    cells = cells_index(run_dir)
    assert (~cells["computed_by_this_run"]).sum() == stored >= 1 and (run_dir / FINISHED).exists()


@pytest.mark.slow
def test_ctrl_c_while_workers_start_is_one_line_and_stops_them(emodb_root, tmp_path):
    run = Run(run_args(emodb_root, tmp_path, "--executor", "process", "--jobs", "2", "--threads", "1"))
    run.wait_until(lambda: any(line.startswith("run directory") for line in run.lines))  # the pool starts now
    code, lines, seconds = run.interrupt(signal.SIGINT, whole_group=True)
    assert code == 130
    assert_one_clean_line(lines, "interrupted by SIGINT: finished cells are kept in the cell store")
    assert "Traceback" not in "".join(run.lines)
    assert seconds < WORKERS_GONE_WITHIN_S
    assert not temporaries(tmp_path) and not (only_run_dir(tmp_path / "runs") / FINISHED).exists()


# ------------------------------------------------------------------------------------------------ in this process
@pytest.fixture(scope="module")
def finished(emodb_root, tmp_path_factory) -> Path:
    """A finished run (``runs/``) and its store (``store/``), made once per module."""
    tmp = tmp_path_factory.mktemp("finished")
    assert main(run_args(emodb_root, tmp)) == 0
    return tmp


@pytest.fixture
def copy_of_finished(finished, tmp_path) -> Path:
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    return tmp_path


@pytest.mark.slow
def test_sigterm_while_rendering_leaves_the_run_unfinished_and_a_rerun_finishes_it(emodb_root, copy_of_finished,
                                                                                   monkeypatch, capsys):
    from emoaug.reports import run_report

    render = run_report.render_run

    def render_and_receive_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return render(*args, **kwargs)

    monkeypatch.setattr(run_report, "render_run", render_and_receive_sigterm)
    args = run_args(emodb_root, copy_of_finished)
    capsys.readouterr()
    assert main(args) == 143
    assert_one_clean_line(beyond_progress(capsys.readouterr().err), "interrupted by SIGTERM")
    run_dir = only_run_dir(copy_of_finished / "runs")
    assert not (run_dir / FINISHED).exists() and not temporaries(copy_of_finished)
    assert signal.getsignal(signal.SIGTERM) is not interrupts._on_signal  # main() put the handlers back

    monkeypatch.setattr(run_report, "render_run", render)
    assert main(args) == 0 and (run_dir / FINISHED).exists()
    assert not cells_index(run_dir)["computed_by_this_run"].any()


@pytest.mark.slow
def test_a_full_disk_while_writing_the_report_is_one_line_naming_the_file(emodb_root, copy_of_finished, monkeypatch,
                                                                          capsys):
    fsync = storage._fsync

    def disk_full_at_the_report(path):  # delayed allocation: the disk refuses the data when it is flushed
        if Path(path).name.startswith(".report.html."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(path)

    monkeypatch.setattr(storage, "_fsync", disk_full_at_the_report)
    store_before = sorted(published_cells(copy_of_finished / "store"))
    capsys.readouterr()
    assert main(run_args(emodb_root, copy_of_finished)) == 2
    err = beyond_progress(capsys.readouterr().err)
    run_dir = only_run_dir(copy_of_finished / "runs")
    assert len(err) == 1 and err[0].startswith(f"emoaug: error: no space left writing {run_dir / 'report.html'} (")
    assert "free on that disk); finished cells are kept in the cell store" in err[0]
    assert not (run_dir / FINISHED).exists() and not temporaries(copy_of_finished)
    assert sorted(published_cells(copy_of_finished / "store")) == store_before


def test_writes_past_the_file_size_limit_are_one_line_naming_the_file(tmp_path):
    """A real refusal, no root needed: RLIMIT_FSIZE makes the kernel refuse writes past it (EFBIG; Python ignores
    SIGXFSZ). Text goes through atomic_path; audio through libsndfile, which only says "System error"."""
    script = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        from emoaug import storage
        from emoaug.errors import WriteFailed
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        for write in (lambda: storage.write_text({str(tmp_path / 'report.html')!r}, "x" * 200_000),
                      lambda: storage.write_wav({str(tmp_path / 'happy_0.wav')!r}, np.zeros(160_000), 16000)):
            try:
                write()
            except WriteFailed as err:
                print(err)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert lines[0].startswith(f"file too large (the file size limit, ulimit -f) writing {tmp_path / 'report.html'} (")
    assert lines[1].startswith(f"libsndfile failed (System error.) writing {tmp_path / 'happy_0.wav'} (")
    assert not list(tmp_path.iterdir())  # no temporary file left beside them


def test_libsndfile_failing_on_a_full_disk_says_no_space_left(tmp_path, monkeypatch):
    import numpy as np
    import soundfile as sf

    def full_disk(*args, **kwargs):
        raise sf.LibsndfileError(2, "")  # what sf.write raises when the disk is full: "System error."

    monkeypatch.setattr(sf, "write", full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 12_300_000,
                                                                                      12_300_000))
    with pytest.raises(storage.WriteFailed) as raised:
        storage.write_wav(tmp_path / "angry_0.wav", np.zeros(16_000_000), 16000)
    assert str(raised.value) == f"no space left writing {tmp_path / 'angry_0.wav'} (12.3 MB free on that disk)"
    assert not list(tmp_path.iterdir())


def test_a_signal_python_swallows_in_a_weakref_callback_is_delivered_again(capsys):
    """A signal raised while garbage collection runs a weakref callback would print "Exception ignored in" and be
    lost; it is raised again in the code that was running."""

    class Collected:
        pass

    def on_collect(_):
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # the handler runs here, inside the callback

    previous = interrupts.install()
    try:
        with pytest.raises(interrupts.Interrupted, match="SIGTERM"):
            obj = Collected()
            ref = weakref.ref(obj, on_collect)  # noqa: F841
            del obj
            gc.collect()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        interrupts.restore(previous)
    assert "Exception ignored" not in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ damaged run folders
@pytest.mark.slow
def test_report_warns_once_for_a_non_numeric_prediction_and_a_config_that_is_not_json(finished, tmp_path, capsys):
    good = only_run_dir(finished / "runs")
    for name in ("good", "letters", "not-json"):
        shutil.copytree(good, tmp_path / name)
    predictions = pd.read_csv(tmp_path / "letters" / "predictions.csv", dtype=str)
    column = next(c for c in predictions.columns if c.startswith("prob_"))
    predictions.loc[4, column] = "0.3x"
    predictions.to_csv(tmp_path / "letters" / "predictions.csv", index=False)
    (tmp_path / "not-json" / "config.json").write_text("{not json")
    for name in ("letters", "not-json"):  # the marker agrees with the edit: the values themselves must be checked
        mark_finished(tmp_path / name)
    capsys.readouterr()

    assert main(["report", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2 and "Traceback" not in captured.err
    assert f"{tmp_path / 'letters'}: predictions.csv holds a non-numeric value in column {column}, line 6 " \
           "('0.3x'" in warnings[0]
    assert f"{tmp_path / 'not-json'}: config.json is not JSON" in warnings[1]
    assert captured.out.count("report: ") == 1 and str(tmp_path / "good" / "report.html") in captured.out
