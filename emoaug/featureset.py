"""The tensor container that flows from the front end to generators and classifiers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


class RowFile:
    """Float32 rows ``[N, n_mels, n_frames]`` in an unnamed temporary file, read with explicit reads.

    A worker keeps its fold's normalised rows here instead of in tensors. Rows read with ``os.preadv`` land in
    the caller's buffer and the file's pages stay in the operating system's page cache, which is not the
    process's resident memory: a training epoch over every row does not make the set resident, as a pass over a
    memory map would (touched pages of a mapping count in RSS). The file has no name, so it disappears with the
    last reference to it, also when the process is killed.
    """

    def __init__(self, file, n_rows: int, row_shape: tuple[int, int]):
        self._file = file
        self.shape = (int(n_rows), *(int(d) for d in row_shape))
        self.dtype = np.dtype(np.float32)
        self.row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:]))

    @classmethod
    def write(cls, arrays: Iterable[np.ndarray], row_shape: tuple[int, int], directory: str | None = None) -> RowFile:
        """The rows of ``arrays`` (each ``[S, n_mels, n_frames]``), in order, as float32."""
        file = tempfile.TemporaryFile(dir=directory)
        n_rows = 0
        for array in arrays:
            array = np.ascontiguousarray(array, dtype=np.float32)
            if array.shape[1:] != tuple(row_shape):
                raise ValueError(f"RowFile.write: rows of shape {array.shape[1:]}, expected {tuple(row_shape)}")
            file.write(memoryview(array).cast("B"))
            n_rows += len(array)
        file.flush()
        return cls(file, n_rows, row_shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __reduce__(self):  # another process gets its own file with the same rows
        return _row_file_of, (self.read(np.arange(len(self))),)

    def read(self, index: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
        """The rows ``index`` in that order (``x[index]`` of the array the file holds); a run of consecutive
        rows is one read."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"RowFile: row index out of range for {len(self)} rows")
        out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
        run_starts = np.flatnonzero(np.diff(index, prepend=-2) != 1)
        for begin, end in zip(run_starts, [*run_starts[1:], len(index)]):
            self._read_into(out[begin:end], int(index[begin]) * self.row_bytes)
        return out

    def __getitem__(self, key) -> np.ndarray:
        """numpy-style reads: a slice, an integer array or a boolean mask of rows (what the quality measures use)."""
        if isinstance(key, slice):
            return self.read(np.arange(*key.indices(len(self))))
        key = np.asarray(key)
        if key.dtype == bool:
            return self.read(np.flatnonzero(key))
        if key.ndim == 0:
            return self.read([int(key)])[0]
        return self.read(key)

    def _read_into(self, out: np.ndarray, offset: int) -> None:
        view = memoryview(out).cast("B")
        while len(view):  # a read may return fewer bytes than asked (Linux caps one read near 2 GiB)
            got = os.preadv(self._file.fileno(), [view], offset)
            if got <= 0:
                raise OSError(f"RowFile: short read at byte {offset}")
            view, offset = view[got:], offset + got

    def as_tensor(self) -> torch.Tensor:
        """All rows as a tensor over a private memory map of the file (no copy; pages are read when touched),
        for code that wants a tensor (generators): what it touches becomes resident in that process."""
        if len(self) == 0:
            return torch.zeros(self.shape, dtype=torch.float32)
        # mode "c": copy-on-write, so the tensor is writable as torch expects and a write never reaches the file
        return torch.from_numpy(np.memmap(self._file, dtype=self.dtype, mode="c", shape=self.shape))


def _row_file_of(rows: np.ndarray) -> RowFile:
    return RowFile.write([rows], rows.shape[1:])


@dataclass
class FeatureSet:
    """Normalised log-mel rows with labels.

    One row per segment: an utterance cut into several fixed-length segments gives several rows
    sharing one ``item_ids`` entry. Generated rows carry ids that start with ``"gen:"``.
    """

    x: torch.Tensor  # [N, n_mels, n_frames] float32
    y: torch.Tensor  # [N] int64, index into ``labels``
    labels: tuple[str, ...]
    item_ids: list[str]
    speakers: list[str] = field(default_factory=list)  # empty for generated rows without a speaker
    # the rows of ``x`` in a file (x is then a memory map of it): batches are read from the file, so that a pass
    # over the set does not make it resident; None: x is in memory
    stored: RowFile | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.x.ndim != 3:
            raise ValueError(f"FeatureSet.x must be [N, n_mels, n_frames], got {tuple(self.x.shape)}")
        n = self.x.shape[0]
        if self.y.shape != (n,) or len(self.item_ids) != n:
            raise ValueError("FeatureSet: x, y and item_ids must have the same length")
        if self.speakers and len(self.speakers) != n:
            raise ValueError("FeatureSet: speakers must be empty or one per row")
        if self.stored is not None and self.stored.shape != tuple(self.x.shape):
            raise ValueError("FeatureSet: stored rows and x have different shapes")
        self.labels = tuple(self.labels)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_mels(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_frames(self) -> int:
        return int(self.x.shape[2])

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """``x[index]``: what a training loop reads per batch (:class:`StackedFeatureSet` reads it from parts);
        read from the file when the rows are stored."""
        if self.stored is not None:
            return torch.from_numpy(self.stored.read(index))
        return self.x[index]

    def block(self, start: int, stop: int) -> torch.Tensor:
        """``x[start:stop]``: what batched inference reads."""
        if self.stored is not None:
            return torch.from_numpy(self.stored[start:stop])
        return self.x[start:stop]

    def row_source(self) -> np.ndarray | RowFile:
        """The rows for numpy-style reads (slices, index arrays, masks): ``x`` as an array, or the file that
        holds them."""
        return self.stored if self.stored is not None else self.x.detach().cpu().numpy()

    def label_names(self) -> list[str]:
        return [self.labels[i] for i in self.y.tolist()]

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y.numpy(), minlength=len(self.labels))
        return {label: int(c) for label, c in zip(self.labels, counts)}

    def subset(self, index: Sequence[int] | np.ndarray | torch.Tensor) -> FeatureSet:
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        pick = idx.tolist()
        return FeatureSet(
            x=self.x[idx],
            y=self.y[idx],
            labels=self.labels,
            item_ids=[self.item_ids[i] for i in pick],
            speakers=[self.speakers[i] for i in pick] if self.speakers else [],
        )

    @staticmethod
    def concat(parts: Sequence[FeatureSet]) -> FeatureSet:
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError("FeatureSet.concat needs at least one non-empty part")
        labels = parts[0].labels
        if any(p.labels != labels for p in parts):
            raise ValueError("FeatureSet.concat: parts have different label sets")
        keep_speakers = all(p.speakers for p in parts)
        return FeatureSet(
            x=torch.cat([p.x for p in parts]),
            y=torch.cat([p.y for p in parts]),
            labels=labels,
            item_ids=[i for p in parts for i in p.item_ids],
            speakers=[s for p in parts for s in p.speakers] if keep_speakers else [],
        )


class StackedFeatureSet:
    """Several FeatureSets read as their concatenation by a training loop, without copying their rows into one
    tensor: real and generated rows of a fold are each already in memory, and their concatenation would hold
    them twice. ``rows(index)`` equals ``FeatureSet.concat(parts).x[index]`` exactly."""

    def __init__(self, parts: Sequence[FeatureSet]):
        self.parts = [p for p in parts if len(p)]
        if not self.parts:
            raise ValueError("StackedFeatureSet needs at least one non-empty part")
        self.labels = self.parts[0].labels
        if any(p.labels != self.labels for p in self.parts) or len({p.x.shape[1:] for p in self.parts}) != 1:
            raise ValueError("StackedFeatureSet: parts have different label sets or row shapes")
        self.y = torch.cat([p.y for p in self.parts])
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_mels(self) -> int:
        return self.parts[0].n_mels

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(index, dtype=torch.int64)
        out = torch.empty((len(index), *self.parts[0].x.shape[1:]), dtype=self.parts[0].x.dtype)
        for part, start, stop in zip(self.parts, self.offsets[:-1], self.offsets[1:]):
            mine = (index >= int(start)) & (index < int(stop))
            if mine.any():
                out[mine] = part.rows(index[mine] - int(start))
        return out

    def materialise(self) -> FeatureSet:
        return FeatureSet.concat(self.parts)
