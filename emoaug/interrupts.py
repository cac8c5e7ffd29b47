"""SIGINT and SIGTERM take one path: the signal becomes :class:`Interrupted` in the driver's main thread.

Whatever is running unwinds as for Ctrl-C: executors stop their workers (:mod:`emoaug.workers`), atomic
writers remove their temporary files (:func:`emoaug.storage.atomic_path`), no ``finished.json`` is written, and
the CLI prints one line and exits 128 + the signal's number (130, 143). A second signal while that clean-up
runs is ignored, so that the clean-up itself is never cut short into a traceback; a first signal that Python
swallowed (raised inside a weakref callback or ``__del__``) is delivered again.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading

HANDLED = (signal.SIGINT, signal.SIGTERM)
#: seconds after which a swallowed signal is delivered again (see _redeliver_if_swallowed)
REDELIVER_AFTER_S = 0.05


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; a KeyboardInterrupt, so every ``except KeyboardInterrupt`` treats both alike."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(signal_name)
        self.signal_name = signal_name


#: the first signal of this command, once one arrived (later ones are ignored while the run stops)
_received: str | None = None
#: whether install() is in effect (reclaim() re-asserts it)
_installed = False


def _on_signal(signum: int, frame) -> None:
    global _received
    if _received is not None:
        return
    _received = signal.Signals(signum).name
    raise Interrupted(_received)


def _redeliver_if_swallowed(unraisable) -> None:
    """``sys.unraisablehook``: a signal that arrives while Python runs a weakref callback or ``__del__`` (e.g.
    during garbage collection) raises there, where Python prints "Exception ignored in ..." and goes on as if
    nothing happened. Deliver it again instead, quietly: the handler then raises in the interrupted code."""
    global _received
    if not isinstance(unraisable.exc_value, Interrupted):
        _previous_unraisablehook(unraisable)
        return
    name, _received = unraisable.exc_value.signal_name, None
    # from another thread, a moment later: delivered now, the handler would raise inside this hook again
    redeliver = threading.Timer(REDELIVER_AFTER_S, _thread.interrupt_main, (signal.Signals[name],))
    redeliver.daemon = True
    redeliver.start()


_previous_unraisablehook = sys.unraisablehook


def install() -> dict | None:
    """Route SIGINT and SIGTERM to :class:`Interrupted`; returns what to put back with :func:`restore`
    (None where handlers cannot be set: outside the main thread)."""
    global _received, _installed, _previous_unraisablehook
    if threading.current_thread() is not threading.main_thread():
        return None
    _received, _installed = None, True
    previous = {sig: signal.getsignal(sig) for sig in HANDLED}
    for sig in HANDLED:
        signal.signal(sig, _on_signal)
    if sys.unraisablehook is not _redeliver_if_swallowed:
        _previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _redeliver_if_swallowed
    return previous


def reclaim() -> None:
    """Put the handlers back after a library replaced them: ``ray.init`` installs its own for SIGTERM (a stack
    dump, then exit 15). Does nothing unless :func:`install` is in effect."""
    if _installed and threading.current_thread() is threading.main_thread():
        for sig in HANDLED:
            if signal.getsignal(sig) is not _on_signal:
                signal.signal(sig, _on_signal)


def restore(previous: dict | None) -> None:
    global _installed
    if previous is None:
        return
    _installed = False
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    if sys.unraisablehook is _redeliver_if_swallowed:
        sys.unraisablehook = _previous_unraisablehook


def ignore_from_now_on() -> None:
    """The process is about to exit: a late signal must not raise inside atexit callbacks (MLflow's,
    multiprocessing's), which print "Exception ignored in atexit callback" with a traceback."""
    if threading.current_thread() is threading.main_thread():
        for sig in HANDLED:
            signal.signal(sig, signal.SIG_IGN)


def signal_name(err: KeyboardInterrupt) -> str:
    """The signal behind ``err``; a plain KeyboardInterrupt may stand for ours (Ray's ``wait`` and ``get`` raise a
    new one when a handler raised inside them), so the signal received comes first."""
    if isinstance(err, Interrupted):
        return err.signal_name
    return _received or "SIGINT"


def exit_code(err: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process the signal ended: 130 SIGINT, 143 SIGTERM."""
    return 128 + int(signal.Signals[signal_name(err)])
