"""Corpus registry: find a corpus's files, parse names, probe the audio, apply the label set.

Each corpus module exposes ``NAME``, ``ALL_EMOTIONS``, ``WHERE_TO_GET``, ``scan(root) ->
(records, skipped)`` and optionally ``LABEL_MERGES`` ({label set: {emotion: merged emotion}}).
Modules are imported lazily so a missing optional module (``synthetic``) breaks only itself.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pandas as pd
from tqdm.auto import tqdm

from ..errors import BadAudioError, EmoaugError
from ..labels import resolve_labels
from .base import MANIFEST_COLUMNS, CorpusScan

DATA_ENV_VAR = "EMOAUG_DATA"
BAD_FILE_POLICIES = ("skip", "fail")
# corpus name -> (module, attribute holding the corpus object or None for the module itself)
_CORPORA: dict[str, tuple[str, str | None]] = {
    "emodb": ("emoaug.datasets.emodb", None),
    "ravdess": ("emoaug.datasets.ravdess", None),
    "cremad": ("emoaug.datasets.cremad", None),
    "iemocap": ("emoaug.datasets.iemocap", None),
    "folder": ("emoaug.datasets.folder", None),
    "csv": ("emoaug.datasets.folder", "CSV_CORPUS"),
    "synthetic": ("emoaug.datasets.synthetic", None),
}


# --------------------------------------------------------------------------- helpers for corpus modules


def audio_files(directory: Path, *, suffixes: Iterable[str], recursive: bool) -> list[Path]:
    """Sorted audio files with one of ``suffixes`` (any case); hidden and ``._*`` files are not audio."""
    if not directory.is_dir():
        return []
    wanted = {s.lower() for s in suffixes}
    candidates = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(
        path
        for path in candidates
        if path.suffix.lower() in wanted and not path.name.startswith(".") and path.is_file()
    )


def skip_entry(path: Path | str, reason: str) -> dict:
    return {"path": str(path), "reason": reason}


# --------------------------------------------------------------------------- registry


def available_corpora() -> list[str]:
    return sorted(_CORPORA)


def corpus_module(name: str) -> ModuleType | SimpleNamespace:
    """The object describing corpus ``name`` (a module, or a namespace for ``csv``)."""
    if name not in _CORPORA:
        raise EmoaugError(f"--corpus: unknown corpus {name!r} (available: {', '.join(available_corpora())})")
    module_name, attribute = _CORPORA[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise EmoaugError(f"--corpus: corpus {name!r} cannot be loaded ({err})") from None
    return getattr(module, attribute) if attribute else module


def resolve_root(name: str, root: str | os.PathLike | None, module) -> Path:
    """``root`` or ``$EMOAUG_DATA/<name>`` (``synthetic`` generates itself); must exist."""
    if root is None and name == "synthetic":
        return Path(module.ensure_corpus())
    if root is None:
        parent = os.environ.get(DATA_ENV_VAR)
        if not parent:
            raise EmoaugError(
                f"corpus {name!r} needs its files: {module.WHERE_TO_GET}; pass --data-root DIR or set {DATA_ENV_VAR}"
            )
        path = Path(parent).expanduser() / name
        origin = f" (from {DATA_ENV_VAR}={parent})"
    else:
        path, origin = Path(root).expanduser(), ""
    if not path.exists():
        raise EmoaugError(f"corpus {name!r}: data root {path} does not exist{origin}; {module.WHERE_TO_GET}")
    return path.resolve()


def check_bad_file_policy(on_bad_file: str) -> None:
    if on_bad_file not in BAD_FILE_POLICIES:
        raise EmoaugError(f"--on-bad-file: unknown policy {on_bad_file!r} (choose from {', '.join(BAD_FILE_POLICIES)})")


def _drop_duplicates(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Keep the first record per item_id (e.g. a corpus unzipped twice); the rest are skipped."""
    first_path: dict[str, str] = {}
    kept, skipped = [], []
    for record in records:
        item_id = record["item_id"]
        if item_id in first_path:
            skipped.append(skip_entry(record["path"], f"duplicate item id {item_id} (also {first_path[item_id]})"))
        else:
            first_path[item_id] = record["path"]
            kept.append(record)
    return kept, skipped


def _apply_label_set(module, records: list[dict], labels: str) -> tuple[list[dict], tuple[str, ...], Counter]:
    """Merge emotions for this label set, keep those inside it; count the rest as excluded."""
    merges = getattr(module, "LABEL_MERGES", {}).get(labels, {})
    for record in records:
        record["emotion"] = merges.get(record["emotion"], record["emotion"])
    wanted = resolve_labels(labels, module.ALL_EMOTIONS)
    kept = [r for r in records if r["emotion"] in wanted]
    excluded = Counter(r["emotion"] for r in records if r["emotion"] not in wanted)
    return kept, wanted, excluded


def _probe_all(records: list[dict], name: str, progress: bool, on_bad_file: str) -> tuple[list[dict], list[dict]]:
    from ..audio import probe_audio  # librosa: imported when a corpus is read, not when the CLI starts

    show = progress and sys.stderr.isatty()
    usable, skipped = [], []
    for record in tqdm(records, desc=f"probing {name}", unit="file", disable=not show):
        try:
            info = probe_audio(record["path"])
        except BadAudioError as err:
            if on_bad_file == "fail":
                raise
            skipped.append(skip_entry(record["path"], err.reason))
            continue
        audio = {"duration": info.duration, "sample_rate": info.sample_rate, "channels": info.channels, "sha1": info.sha1}
        usable.append({**record, **audio})
    return usable, skipped


def _manifest(records: list[dict]) -> pd.DataFrame:
    items = pd.DataFrame(records, columns=MANIFEST_COLUMNS)
    items = items.astype({"duration": "float64", "sample_rate": "int64", "channels": "int64"})
    return items.sort_values("item_id", kind="stable").reset_index(drop=True)


def _nothing_found(name: str, root: Path, skipped: list[dict], module) -> EmoaugError:
    if skipped:
        first = skipped[0]
        return EmoaugError(
            f"corpus {name!r}: none of the {len(skipped)} file(s) under {root} are usable "
            f"(first: {first['path']}: {first['reason']})"
        )
    return EmoaugError(f"corpus {name!r}: no audio files found under {root}; {module.WHERE_TO_GET}")


def load_corpus(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    labels: str = "6class",
    on_bad_file: str = "skip",
    progress: bool = False,
) -> CorpusScan:
    """Scan, label-filter and probe one corpus; every file left out is in ``skipped`` or ``excluded``."""
    check_bad_file_policy(on_bad_file)
    module = corpus_module(name)
    path = resolve_root(name, root, module)
    records, skipped = module.scan(path)
    records, duplicates = _drop_duplicates(records)
    skipped = skipped + duplicates
    if skipped and on_bad_file == "fail":
        raise BadAudioError(skipped[0]["path"], skipped[0]["reason"])
    if not records:
        raise _nothing_found(name, path, skipped, module)
    kept, wanted, excluded = _apply_label_set(module, records, labels)
    usable, bad = _probe_all(kept, name, progress, on_bad_file)
    skipped = skipped + bad
    if labels == "all":  # the corpus's own emotions that survived, in the module's order
        present = {r["emotion"] for r in usable}
        wanted = tuple(e for e in module.ALL_EMOTIONS if e in present)
    if not usable:
        found = ", ".join(f"{e} {n}" for e, n in sorted(excluded.items())) or "nothing usable"
        raise EmoaugError(f"corpus {name!r} under {path}: no usable files with --labels {labels} (found: {found})")
    return CorpusScan(
        corpus=name,
        root=str(path),
        items=_manifest(usable),
        labels=wanted,
        skipped=skipped,
        excluded=dict(sorted(excluded.items())),
    )
