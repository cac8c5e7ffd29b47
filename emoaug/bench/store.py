"""The cell store: finished judges, cells and generator checkpoints, addressed by content key and shared
by every run (default ``<cache>/store``; ``--store DIR`` chooses another, e.g. on a shared disk).

Layout::

    cells/<key[:2]>/<key>/   predictions.csv, quality.csv, examples.pt, meta.json, manifest.json
    judges/<key[:2]>/<key>.pt (+ <key>.pt.sha256)
    checkpoints/<key[:2]>/<key>.pt (+ <key>.pt.sha256)
    references/<key[:2]>/<key>.json (+ <key>.json.sha256)   one fold of the classic reference row

A cell folder is written under a temporary name and renamed into place once complete, so a cell
either exists whole or not at all; only the driver process writes. Every entry records the size and
SHA-256 of its files when written (a cell's ``manifest.json``, written last; a single file's ``.sha256``
sidecar, written right after it) and is checked when read: a damaged entry (truncated by a full disk or
a partial copy, edited by hand, bit rot) is one warning naming it and the reason, and is recomputed --
never reused. Entries written before emoaug recorded digests have no manifest or sidecar: they are still
used when they pass the other checks (readable, their own key, a cell's prediction counts: see
:func:`count_mismatch`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from .. import storage
from .arms import CLARITY_PREDICTED, CLARITY_TRUE, MAIN, SYNTHETIC_ONLY
from .cells import CellResult, JudgeResult
from .reference import ReferenceResult

log = logging.getLogger("emoaug")

CELL_FILES = ("predictions.csv", "meta.json")
#: arms scored on every item of the test fold, once each (as the main arm)
TEST_FOLD_ARMS = (SYNTHETIC_ONLY, CLARITY_TRUE, CLARITY_PREDICTED)


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
        """The stored cell, or None (recompute) when it is absent or fails a check: its files against its
        manifest (an older cell without one skips this), readable, its own key, and as many main-arm test
        predictions as the test set it recorded (:func:`count_mismatch`)."""
        folder = self.cell_dir(key)
        if not self.has_cell(key):
            if folder.is_dir():  # a file of a published cell was deleted: never half of a cell
                self._drop_cell(folder, f"{', '.join(n for n in CELL_FILES if not (folder / n).is_file())} missing")
            return None
        problem = storage.check_manifest(folder)
        if problem:
            self._drop_cell(folder, problem)
            return None
        try:
            meta = storage.read_json(folder / "meta.json")
            predictions = pd.read_csv(folder / "predictions.csv", dtype={"item_id": str})
            quality_path = folder / "quality.csv"
            quality = pd.read_csv(quality_path) if quality_path.is_file() else pd.DataFrame()
        except (OSError, ValueError) as err:  # damaged: recompute rather than report wrong numbers
            self._drop_cell(folder, f"unreadable: {err}")
            return None
        if not isinstance(meta, dict) or meta.get("key") != key:
            self._drop_cell(folder, "it holds another key")
            return None
        problem = count_mismatch(predictions, meta)
        if problem:
            self._drop_cell(folder, problem)
            return None
        return CellResult(key, predictions, quality, meta, computed=False)

    @staticmethod
    def _drop_cell(folder: Path, reason: str) -> None:
        log.warning("stored cell %s is damaged (%s); recomputing it", folder, reason)
        shutil.rmtree(folder, ignore_errors=True)

    def load_examples(self, key: str) -> dict | None:
        path = self.cell_dir(key) / "examples.pt"
        return self._load_torch(path) if path.is_file() else None

    def save_cell(self, result: CellResult) -> None:
        final = self.cell_dir(result.key)
        tmp = storage.make_temporary_dir(final.parent, result.key)
        try:
            storage.write_csv(tmp / "predictions.csv", result.predictions)
            if not result.quality.empty:
                storage.write_csv(tmp / "quality.csv", result.quality)
            if result.examples is not None:
                storage.write_torch(tmp / "examples.pt", result.examples)
            storage.write_json(tmp / "meta.json", result.meta)
            storage.write_manifest(tmp)  # last: it vouches for every file above
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
        storage.write_digest(self.judge_path(result.key))

    def load_checkpoint(self, key: str | None) -> dict | None:
        return None if key is None else self._load_torch(self.checkpoint_path(key))

    def save_checkpoint(self, key: str, state: dict) -> None:
        storage.write_torch(self.checkpoint_path(key), state)
        storage.write_digest(self.checkpoint_path(key))

    # ------------------------------------------------------------------ the classic reference, per fold
    def load_reference(self, key: str) -> ReferenceResult | None:
        path = self.reference_path(key)
        if not path.is_file():
            storage.digest_path(path).unlink(missing_ok=True)  # an orphan sidecar
            return None
        problem = storage.check_digest(path)
        if problem is None:
            try:
                result = ReferenceResult.from_dict(storage.read_json(path))
            except (OSError, ValueError, KeyError, TypeError) as err:  # damaged: recompute rather than trust it
                problem = f"unreadable: {err}"
            else:
                problem = None if result.key == key else "it holds another key"
        if problem:
            log.warning("stored reference %s is damaged (%s); recomputing it", path, problem)
            path.unlink(missing_ok=True)
            storage.digest_path(path).unlink(missing_ok=True)
            return None
        return result

    def save_reference(self, result: ReferenceResult) -> None:
        storage.write_json(self.reference_path(result.key), result.to_dict())
        storage.write_digest(self.reference_path(result.key))

    def _load_torch(self, path: Path) -> dict | None:
        """A judge's or checkpoint's state, or None: absent, or damaged (moved aside to ``.corrupt`` with one
        warning). A file with a ``.sha256`` sidecar must match it; one without (older) must load."""
        if not path.is_file():
            storage.digest_path(path).unlink(missing_ok=True)  # an orphan sidecar
            return None
        import torch

        problem = storage.check_digest(path)
        if problem is None:
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # truncated or corrupt: move it aside and recompute
                # (torch's own message may suggest weights_only=False, i.e. running untrusted pickles: not shown)
                problem = f"{type(err).__name__}: truncated or corrupt"
        aside = path.with_name(path.name + ".corrupt")
        log.warning("%s is unreadable (%s); moved aside to %s and recomputing", path, problem, aside.name)
        path.replace(aside)
        storage.digest_path(path).unlink(missing_ok=True)
        return None


def count_mismatch(predictions: pd.DataFrame, meta: dict) -> str | None:
    """Why a cell's predictions disagree with the test set it recorded (a truncated or padded
    ``predictions.csv``), or None. Every cell scores each test item once on the main arm: as many rows as
    ``n_test_items``. Cells written before that was recorded have ``n_test_rows`` only, which counts segments
    (one or more per item): there the main arm may not exceed it, and every arm scored on the test fold must
    have as many rows as the main arm (a file cut at a line boundary loses the rows of its last arm first)."""
    if "arm" not in predictions.columns or "item_id" not in predictions.columns:
        return "predictions.csv has no arm or item_id column"
    main = predictions[predictions["arm"] == MAIN]
    found = len(main)
    if main["item_id"].duplicated().any():
        return "predictions.csv scores a test item twice on the main arm"
    items, rows = meta.get("n_test_items"), meta.get("n_test_rows")
    if isinstance(items, int):
        if found != items:
            return f"predictions.csv holds {found} main-arm test predictions, the cell recorded {items} test items"
        return None
    if not isinstance(rows, int):
        return "meta.json records no test-set size"
    if not 0 < found <= rows:
        return f"predictions.csv holds {found} main-arm test predictions, the cell recorded {rows} test rows"
    per_arm = predictions["arm"].value_counts()
    for arm in TEST_FOLD_ARMS:
        if arm in per_arm and per_arm[arm] != found:
            return f"predictions.csv holds {per_arm[arm]} {arm} predictions but {found} main-arm ones"
    return None
