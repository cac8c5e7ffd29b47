"""Atomic file writes: a crash (even kill -9) never leaves a half-written file that looks finished.

Every writer goes through :func:`atomic_path`: the content is written to a hidden temporary file in the
target's folder, flushed, then renamed over the target (``os.replace`` is atomic within one file system).
Temporary names carry the writer's process id (``.<name>.<pid>.<random>.tmp``), so the temporaries a killed
process left behind can be told from those of a live writer: :func:`remove_stale_temporaries` clears them.

Files and folders follow the user's umask (``tempfile`` would create them 0600 / 0700), so a store on a shared
disk works for a group. :func:`file_record`, :func:`write_digest` and :func:`check_manifest` record and check
the size and SHA-256 of stored files, so that an edited or truncated file is noticed when read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import EmoaugError, WriteFailed

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on failure it is removed.
    A write the disk refuses (full, quota, read-only, ...) raises :class:`WriteFailed` naming ``path``."""
    path = Path(path)
    with write_errors_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path.name), suffix=TMP_SUFFIX)
        os.close(fd)
        try:
            os.chmod(tmp, FILE_MODE & ~current_umask())  # mkstemp makes it 0600 whatever the umask
            yield Path(tmp)
            _fsync(tmp)  # a full disk may refuse the data only here (delayed allocation)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


#: errno values of a write the disk or the system refused (not a bug of ours): one line, no traceback
WRITE_ERRNOS = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                errno.EPERM: "operation not permitted", errno.EIO: "input/output error",
                errno.EFBIG: "file too large (the file size limit, ulimit -f)"}
#: those that only a write can cause (an OSError from elsewhere with EACCES or EIO may be a read)
ONLY_WRITES_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def refused_write(err: OSError) -> str | None:
    """One line for an OSError raised outside :func:`atomic_path` that only a refused write causes, else None."""
    if err.errno not in ONLY_WRITES_ERRNOS:
        return None
    return write_failure(err.filename, WRITE_ERRNOS[err.errno])


@contextlib.contextmanager
def write_errors_named(path: Path) -> Iterator[None]:
    """Turn an OSError of :data:`WRITE_ERRNOS` inside the block into :class:`WriteFailed` naming ``path``
    (an error of ``write()`` or ``fsync()`` names no file by itself)."""
    try:
        yield
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        raise WriteFailed(write_failure(path, WRITE_ERRNOS[err.errno])) from None


def write_failure(path: str | Path | None, reason: str) -> str:
    """``no space left writing runs/x/report.html (12.3 MB free on that disk)``."""
    if path is None:
        return f"{reason} while writing"
    free = free_space(Path(path))
    return f"{reason} writing {path}" + (f" ({free} free on that disk)" if free else "")


def free_space(path: Path) -> str | None:
    """The free space of the disk holding ``path`` (its nearest existing folder), e.g. ``12.3 MB``."""
    for folder in (path, *path.parents):
        try:
            return _bytes_text(shutil.disk_usage(folder).free)
        except OSError:
            continue
    return None


def _bytes_text(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


FILE_MODE, DIR_MODE = 0o666, 0o777


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux: /proc/self/status), so
    that no other thread ever sees a temporary umask; elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temporary_dir(parent: Path, name: str) -> Path:
    """A hidden temporary folder for ``name`` in ``parent`` (cleared by :func:`remove_stale_temporaries` when
    its writer died), with the umask's permissions rather than mkdtemp's 0700."""
    with write_errors_named(parent / name):
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=temporary_prefix(name), suffix=TMP_SUFFIX))
        os.chmod(tmp, DIR_MODE & ~current_umask())
    return tmp


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
    import numpy as np
    import soundfile as sf

    with atomic_path(path) as tmp:
        try:
            sf.write(str(tmp), audio, sample_rate, subtype=subtype, format="WAV")
        except sf.SoundFileRuntimeError as err:  # libsndfile says "System error", not which one
            raise audio_write_failed(path, np.asarray(audio).nbytes, err) from None
    return Path(path)


def audio_write_failed(path: str | Path, nbytes: int, err: Exception) -> WriteFailed:
    """A libsndfile write error as one line. libsndfile reports a full disk as "System error": call it that
    when the disk has less room than the samples (a WAV file takes about as many bytes at 16 bits, fewer than
    float samples take)."""
    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        free = None
    if free is not None and free < max(nbytes, 1 << 20):
        return WriteFailed(write_failure(path, "no space left"))
    return WriteFailed(write_failure(path, f"libsndfile failed ({' '.join(str(err).split()) or type(err).__name__})"))


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
        os.chmod(tmp_dir, DIR_MODE & ~current_umask())  # a mkdtemp folder is 0700 whatever the umask
        os.replace(tmp_dir, final)  # atomic for a folder only while ``final`` does not exist or is empty
        return True
    except OSError:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        return False


# ------------------------------------------------------------------------------------------------ verify on read
MANIFEST = "manifest.json"
DIGEST_SUFFIX = ".sha256"


def file_record(path: str | Path) -> dict:
    """{"size": bytes, "sha256": hex digest} of one file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"size": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def record_mismatch(path: Path, record) -> str | None:
    """Why ``path`` is not the file ``record`` describes (missing, another size, another digest), or None."""
    if not isinstance(record, dict) or not isinstance(record.get("size"), int) or not record.get("sha256"):
        return f"{path.name}: its record is malformed"
    if not path.is_file():
        return f"{path.name} is missing"
    actual = file_record(path)
    if actual["size"] != record["size"]:
        return f"{path.name} has {actual['size']} bytes, {record['size']} when written"
    if actual["sha256"] != record["sha256"]:
        return f"{path.name} was changed after it was written (SHA-256 differs)"
    return None


def digest_path(path: str | Path) -> Path:
    """The sidecar holding a single-file entry's size and SHA-256: ``<name>.sha256`` beside it."""
    return Path(path).with_name(Path(path).name + DIGEST_SUFFIX)


def write_digest(path: str | Path) -> Path:
    """Record ``path``'s size and SHA-256 in its sidecar (written right after the file itself)."""
    return write_json(digest_path(path), file_record(path))


def check_digest(path: str | Path) -> str | None:
    """Why the single file at ``path`` differs from its sidecar, or None -- also when it has no sidecar (written
    before emoaug recorded digests: such a file is trusted as before)."""
    sidecar = digest_path(path)
    if not sidecar.is_file():
        return None
    try:
        record = read_json(sidecar)
    except (OSError, ValueError) as err:
        return f"{sidecar.name} is unreadable ({err})"
    return record_mismatch(Path(path), record)


def write_manifest(folder: str | Path) -> Path:
    """Record the size and SHA-256 of every file in ``folder`` in its ``manifest.json`` (written last, before
    the folder is published)."""
    folder = Path(folder)
    files = {p.name: file_record(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    return write_json(folder / MANIFEST, {"files": files})


def check_manifest(folder: str | Path) -> str | None:
    """Why a folder's files differ from its ``manifest.json`` (a file missing, truncated or edited), or None --
    also when it has none (written before emoaug recorded manifests: trusted as before)."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        return None
    try:
        files = read_json(folder / MANIFEST)["files"]
        records = list(files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"{MANIFEST} is unreadable ({type(err).__name__}: {err})"
    for name, record in records:
        if Path(name).name != name:  # a record naming another folder: not ours
            return f"{MANIFEST} names {name!r}, not a file of the folder"
        problem = record_mismatch(folder / name, record)
        if problem:
            return problem
    return None


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
