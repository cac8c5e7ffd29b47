"""Local process pools whose workers leave signals to the driver and never outlive it.

A terminal's Ctrl-C reaches every process of the foreground group: the driver and each worker. Workers of
:func:`worker_pool` start with SIGINT blocked and ignore it from their initializer on, so only the driver
handles it (:func:`_signals_held`); it then stops the pool with
:func:`stop_workers`: cancel what has not started, terminate what runs (a cell in progress cannot be stored
once the driver leaves), SIGKILL whatever is still there a couple of seconds later. A worker also exits when
its driver is gone (kill -9), checked twice a second from before the heavy imports of its real initializer.

This module imports nothing heavy: a worker unpickles it (and its initializer) while still starting.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.reduction import ForkingPickler

#: seconds the driver waits for terminated workers before it kills them
STOP_GRACE_S = 2.0
#: seconds between a worker's checks that its driver is alive
WATCH_EVERY_S = 0.5


#: signals a starting worker inherits blocked, and the driver holds back while it starts one
HELD = (signal.SIGINT, signal.SIGTERM)


class _QuietPool(ProcessPoolExecutor):
    """A pool that starts its workers (spawned on demand inside ``submit``) with SIGINT and SIGTERM held."""

    def submit(self, fn, /, *args, **kwargs):
        with _signals_held():
            return super().submit(fn, *args, **kwargs)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends. A worker spawned inside it inherits them blocked (a
    signal mask survives exec), so a Ctrl-C during its interpreter start-up stays pending until its
    initializer ignores it; and the driver handles a signal only once the pool has registered the new worker,
    so that stopping the pool stops that worker too. Nothing is lost: a held signal is raised again after."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in HELD}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for sig in dict.fromkeys(received):
            signal.raise_signal(sig)


def _start_worker(driver_pid: int, payload: bytes) -> None:
    """Every pool worker's initializer: ignore SIGINT, watch the driver, then run the caller's initializer,
    which arrives pickled so that its imports (torch) happen after the first two."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # discards a Ctrl-C held since the worker started
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # terminate() ends a worker at once, even inside torch
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
    exit_with(driver_pid)
    _no_named_semaphores()
    initializer, initargs = pickle.loads(payload)
    if initializer is not None:
        initializer(*initargs)


def _no_named_semaphores() -> None:
    """tqdm's default lock is a multiprocessing lock, a named semaphore: a worker ended by terminate() cannot
    unlink it, and the resource tracker then warns "leaked semaphore objects" when the driver exits. Workers
    draw no progress bars; a thread lock serves them."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    tqdm.set_lock(threading.RLock())


def exit_with(driver_pid: int, every_s: float = WATCH_EVERY_S) -> None:
    """End this worker when the driver is gone (kill -9 leaves pool workers running their cell otherwise;
    nobody would store its result)."""
    def watch() -> None:
        while os.getppid() == driver_pid:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="emoaug-driver-watch", daemon=True).start()


@contextlib.contextmanager
def worker_pool(jobs: int, initializer: Callable | None = None, initargs: tuple = ()) -> Iterator[ProcessPoolExecutor]:
    """A ProcessPoolExecutor of ``jobs`` spawned workers (torch and fork do not mix) as described above. On
    any exception (an interrupt, a failed cell) its workers are stopped within seconds; on success it shuts
    down as usual."""
    # multiprocessing's own pickler, as the pool would use: the same reductions (e.g. torch's) apply
    payload = bytes(ForkingPickler.dumps((initializer, initargs)))
    pool = _QuietPool(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                      initargs=(os.getpid(), payload))
    try:
        yield pool
    except BaseException:
        stop_workers(pool)
        raise
    pool.shutdown(wait=True)


def stop_workers(pool: ProcessPoolExecutor, grace_s: float = STOP_GRACE_S) -> None:
    """Cancel the queued tasks and end every worker now: SIGTERM, then SIGKILL after ``grace_s``."""
    _quiet_resource_sharer()
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1.0)
    pool.shutdown(wait=True)  # the pool's own thread notices the ended workers and returns at once


def _quiet_resource_sharer() -> None:
    """Tensors reach workers as shared memory whose file descriptors the driver's multiprocessing
    resource-sharer thread hands over. A worker ended in the middle of that makes the thread print the
    connection's error with a traceback (ConnectionResetError, EOFError): noise once the pool is being stopped,
    so from then on exactly those errors of that thread are dropped; every other exception is printed as before."""
    previous = sys.excepthook
    if getattr(previous, "drops_resource_sharer_errors", False):
        return

    def excepthook(kind, value, traceback) -> None:
        lost_connection = issubclass(kind, (OSError, EOFError, multiprocessing.AuthenticationError))
        if lost_connection and _in_resource_sharer(traceback):
            return
        previous(kind, value, traceback)

    excepthook.drops_resource_sharer_errors = True
    sys.excepthook = excepthook


def _in_resource_sharer(traceback) -> bool:
    code = traceback.tb_frame.f_code if traceback is not None else None
    return code is not None and code.co_name == "_serve" and os.path.basename(code.co_filename) == "resource_sharer.py"
