"""The cell store: finished judges, cells and generator checkpoints, addressed by content key and shared
by every run (default ``<cache>/store``; ``--store DIR`` chooses another, e.g. on a shared disk).

Layout::

    cells/<key[:2]>/<key>/   predictions.csv, quality.csv, examples.pt, meta.json
    judges/<key[:2]>/<key>.pt
    checkpoints/<key[:2]>/<key>.pt
    references/<key[:2]>/<key>.json   one fold of the classic reference row

A cell folder is written under a temporary name and renamed into place once complete, so a cell
either exists whole or not at all; only the driver process writes. A damaged entry (truncated by a
full disk, edited by hand) is treated as missing and recomputed.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from .. import storage
from .cells import CellResult, JudgeResult
from .reference import ReferenceResult

log = logging.getLogger("emoaug")

CELL_FILES = ("predictions.csv", "meta.json")


class CellStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ------------------------------------------------------------------ paths
    def cell_dir(self, key: str) -> Path:
        return self.root / "cells" / key[:2] / key

    def judge_path(self, key: str) -> Path:
        return self.root / "judges" / key[:2] / f"{key}.pt"

    def checkpoint_path(self, key: str) -> Path:
        return self.root / "checkpoints" / key[:2] / f"{key}.pt"

    def reference_path(self, key: str) -> Path:
        return self.root / "references" / key[:2] / f"{key}.json"

    def clean(self) -> int:
        """Remove partial files and folders that killed writers left behind."""
        return storage.remove_stale_temporaries(self.root)

    # ------------------------------------------------------------------ cells
    def has_cell(self, key: str) -> bool:
        folder = self.cell_dir(key)
        return all((folder / name).is_file() for name in CELL_FILES)

    def load_cell(self, key: str) -> CellResult | None:
        folder = self.cell_dir(key)
        if not self.has_cell(key):
            return None
        try:
            meta = storage.read_json(folder / "meta.json")
            predictions = pd.read_csv(folder / "predictions.csv", dtype={"item_id": str})
            quality_path = folder / "quality.csv"
            quality = pd.read_csv(quality_path) if quality_path.is_file() else pd.DataFrame()
        except (OSError, ValueError) as err:  # damaged: recompute rather than report wrong numbers
            log.warning("stored cell %s is unreadable (%s); recomputing it", folder, err)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        if meta.get("key") != key:
            log.warning("stored cell %s holds another key; recomputing it", folder)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return CellResult(key, predictions, quality, meta, computed=False)

    def load_examples(self, key: str) -> dict | None:
        path = self.cell_dir(key) / "examples.pt"
        return self._load_torch(path) if path.is_file() else None

    def save_cell(self, result: CellResult) -> None:
        final = self.cell_dir(result.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=storage.temporary_prefix(result.key),
                                    suffix=storage.TMP_SUFFIX))
        try:
            storage.write_csv(tmp / "predictions.csv", result.predictions)
            if not result.quality.empty:
                storage.write_csv(tmp / "quality.csv", result.quality)
            if result.examples is not None:
                storage.write_torch(tmp / "examples.pt", result.examples)
            storage.write_json(tmp / "meta.json", result.meta)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():  # recomputed (--fresh, or a damaged entry): replace the old one
            shutil.rmtree(final, ignore_errors=True)
        storage.publish_dir(tmp, final)

    # ------------------------------------------------------------------ judges and checkpoints
    def load_judge(self, key: str) -> JudgeResult | None:
        state = self._load_torch(self.judge_path(key))
        if state is None:
            return None
        return JudgeResult(key, state["classifier"], float(state["seconds"]), list(state["audit"]))

    def save_judge(self, result: JudgeResult) -> None:
        storage.write_torch(self.judge_path(result.key), {"classifier": result.state, "seconds": result.seconds,
                                                           "audit": result.audit})

    def load_checkpoint(self, key: str | None) -> dict | None:
        return None if key is None else self._load_torch(self.checkpoint_path(key))

    def save_checkpoint(self, key: str, state: dict) -> None:
        storage.write_torch(self.checkpoint_path(key), state)

    # ------------------------------------------------------------------ the classic reference, per fold
    def load_reference(self, key: str) -> ReferenceResult | None:
        path = self.reference_path(key)
        if not path.is_file():
            return None
        try:
            result = ReferenceResult.from_dict(storage.read_json(path))
        except (OSError, ValueError, KeyError, TypeError) as err:  # damaged: recompute rather than trust it
            log.warning("stored reference %s is unreadable (%s); recomputing it", path, err)
            path.unlink(missing_ok=True)
            return None
        if result.key != key:
            log.warning("stored reference %s holds another key; recomputing it", path)
            path.unlink(missing_ok=True)
            return None
        return result

    def save_reference(self, result: ReferenceResult) -> None:
        storage.write_json(self.reference_path(result.key), result.to_dict())

    def _load_torch(self, path: Path) -> dict | None:
        if not path.is_file():
            return None
        import torch

        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated or corrupt: move it aside and recompute
            # (torch's own message may suggest weights_only=False, i.e. running untrusted pickles: not shown)
            aside = path.with_name(path.name + ".corrupt")
            log.warning("%s is unreadable (%s: truncated or corrupt); moved aside to %s and recomputing", path,
                        type(err).__name__, aside.name)
            path.replace(aside)
            return None
