"""Atomic file writes: a crash (even kill -9) never leaves a half-written file that looks finished.

Every writer goes through :func:`atomic_path`: the content is written to a hidden temporary file in the
target's folder, flushed, then renamed over the target (``os.replace`` is atomic within one file system).
Temporary names carry the writer's process id (``.<name>.<pid>.<random>.tmp``), so the temporaries a killed
process left behind can be told from those of a live writer: :func:`remove_stale_temporaries` clears them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import EmoaugError

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path.name), suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync(path: str) -> None:
    """Content on disk before the rename publishes it (a crash then leaves the old file or the new, whole)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


_TEMPORARY = re.compile(r"^\..*\.(\d+)\.[^.]+" + re.escape(TMP_SUFFIX) + "$")


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _write_text_handle(path: Path, write) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            write(handle)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return _write_text_handle(Path(path), lambda h: json.dump(obj, h, indent=2, sort_keys=False, default=jsonable))


def write_csv(path: str | Path, frame) -> Path:
    return _write_text_handle(Path(path), lambda h: frame.to_csv(h, index=False))


def write_text(path: str | Path, text: str) -> Path:
    return _write_text_handle(Path(path), lambda h: h.write(text))


def write_torch(path: str | Path, state: dict) -> Path:
    """Plain tensors and primitives only, so the file loads with ``torch.load(..., weights_only=True)``."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def write_npy(path: str | Path, array) -> Path:
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
    return Path(path)


_CONTENT_HASH = re.compile(r"[0-9a-f]{8,128}")


def is_content_hash(value) -> bool:
    """A hex digest (any case) that may name a cache entry."""
    return isinstance(value, str) and _CONTENT_HASH.fullmatch(value.lower()) is not None


def content_path(directory: Path, sha1: str, suffix: str = ".npy") -> Path:
    """``directory/<sha[:2]>/<sha><suffix>`` for a content hash (lower-cased); anything that is not a hex digest
    is refused, since the key becomes a path and must never contain separators."""
    sha1 = str(sha1).lower()
    if not is_content_hash(sha1):
        raise ValueError(f"invalid content hash {sha1!r}")
    return Path(directory) / sha1[:2] / f"{sha1}{suffix}"


def read_npy(path: Path, what: str):
    """The single array stored at ``path`` by :func:`write_npy`, or None (with one warning naming ``what``)
    when it is missing, unreadable or something else under that name (e.g. an .npz archive)."""
    import logging

    import numpy as np

    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        logging.getLogger("emoaug").warning("%s: unreadable %s (%s); recomputing", what, path, err)
        return None
    if not isinstance(array, np.ndarray):
        getattr(array, "close", lambda: None)()
        logging.getLogger("emoaug").warning("%s: %s is not a single array; recomputing", what, path)
        return None
    return array


def write_wav(path: str | Path, audio, sample_rate: int, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, sample_rate, subtype=subtype, format="WAV")
    return Path(path)


def save_figure(fig, path: str | Path, **kwargs) -> Path:
    """A matplotlib figure as PNG (closed afterwards)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", **kwargs)
    finally:
        plt.close(fig)
    return Path(path)


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def jsonable(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def stable_hash(obj: Any) -> str:
    """SHA-1 of a JSON-able object with sorted keys: the same content gives the same key in any process."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=jsonable).encode()
    return hashlib.sha1(blob).hexdigest()


def safe_name(name: str) -> str:
    """A file-system safe version of a name (plugin generators may be ``pkg.module:Class``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def publish_dir(tmp_dir: Path, final: Path) -> bool:
    """Rename a fully written folder into place; ``False`` if another writer got there first (kept as is)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp_dir, final)  # atomic for a folder only while ``final`` does not exist or is empty
        return True
    except OSError:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        return False


def remove_stale_temporaries(root: str | Path) -> int:
    """Delete temporary files and folders under ``root`` whose writer process is gone (killed mid-write).
    Returns how many were removed."""
    if not Path(root).is_dir():
        return 0
    removed = 0
    for path in Path(root).rglob(f".*{TMP_SUFFIX}"):
        match = _TEMPORARY.match(path.name)
        if not match or _writer_alive(int(match.group(1))):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


class CachedArrays(Mapping):
    """key -> an array read from its ``.npy`` file in a cache when asked, memory-mapped: nothing is held in
    memory, and it pickles as its index (key -> file), so a worker process receives a few bytes per item. Pages
    read belong to the operating system's file cache, shared by every process on the machine."""

    what = "cache"

    def __init__(self, paths: Mapping[str, str]):
        self.paths = dict(paths)

    def __getitem__(self, key: str):
        import numpy as np

        path = self.paths[key]
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:  # removed or damaged after this run checked it
            raise EmoaugError(f"{self.what}: {path} (item {key}) can no longer be read ({err}); "
                              "run the command again to recompute it") from None

    def __iter__(self):
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __contains__(self, key: object) -> bool:
        return key in self.paths
