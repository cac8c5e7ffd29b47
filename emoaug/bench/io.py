"""Atomic file writes: a crash never leaves a half-written result that looks finished."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def _atomic_write(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, obj: Any) -> Path:
    return _atomic_write(path, lambda h: json.dump(obj, h, indent=2, sort_keys=False, default=_jsonable))


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    return _atomic_write(path, lambda h: frame.to_csv(h, index=False))


def write_text(path: Path, text: str) -> Path:
    return _atomic_write(path, lambda h: h.write(text))


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def safe_name(name: str) -> str:
    """A file-system safe version of a name (plugin generators may be ``pkg.module:Class``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
