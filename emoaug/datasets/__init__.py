"""Corpus registry: find a corpus's files, parse names, probe the audio, apply the label set.

Each corpus module exposes ``NAME``, ``ALL_EMOTIONS``, ``WHERE_TO_GET``, ``scan(root) ->
(records, skipped)`` and optionally ``LABEL_MERGES`` ({label set: {emotion: merged emotion}}),
``support_files(root)`` (files the layout reads besides the audio) and ``EXTRA_COLUMNS`` (record keys kept
in the manifest after ``MANIFEST_COLUMNS``, e.g. MSP-IMPROV's ``scenario``). A ``session`` column (IEMOCAP,
MSP-IMPROV) or a ``split_set`` column (MSP-Podcast's release partitions) is what ``--split standard`` reads.
Modules are imported lazily so a missing optional module (``synthetic``) breaks only itself.

Every file under a corpus root is accounted for: it is an item, or an entry of ``skipped`` whose
``stage`` says where it dropped out: ``layout`` (not a file of this corpus's layout: other formats,
other recordings, broken links; or reached through a symbolic link leaving the root, without
``follow_links``), ``scan`` (an audio file whose name or label cannot be read),
``duplicate`` (another item has the same id or the same bytes), ``probe`` (the audio cannot be used)
or ``features`` (it failed at decoding for the front end, added by the runner).
"""

from __future__ import annotations

import errno
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pandas as pd
from tqdm.auto import tqdm

from ..errors import BadAudioError, EmoaugError
from ..registry import Registry
from ..labels import resolve_labels
from ..limits import DEFAULT_MAX_DURATION, DEFAULT_MIN_DURATION
from .base import MANIFEST_COLUMNS, CorpusScan

DATA_ENV_VAR = "EMOAUG_DATA"
BAD_FILE_POLICIES = ("skip", "fail")
# What every layout reads wherever it reads wav (libsndfile decodes all of them).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
# Audio that no layout reads: named in the skip reason, so the fix (convert) is obvious.
OTHER_AUDIO_SUFFIXES = (".m4a", ".aac", ".wma", ".aif", ".aiff", ".au", ".amr", ".webm", ".sph", ".pcm", ".raw")
# Where a file stopped being a candidate; "layout" entries are other files, not bad ones (see fail policy).
STAGES = ("layout", "scan", "duplicate", "probe", "features")
# corpus name -> the module (or the object) with the corpus protocol (emoaug.datasets.base); plugins register
# under the "emoaug.corpora" entry-point group
CORPORA = Registry("corpus", "--corpus", {
    "emodb": "emoaug.datasets.emodb",
    "ravdess": "emoaug.datasets.ravdess",
    "cremad": "emoaug.datasets.cremad",
    "iemocap": "emoaug.datasets.iemocap",
    "msp-improv": "emoaug.datasets.msp_improv",
    "msp-podcast": "emoaug.datasets.msp_podcast",
    "folder": "emoaug.datasets.folder",
    "csv": "emoaug.datasets.folder:CSV_CORPUS",
    "synthetic": "emoaug.datasets.synthetic",
}, entry_point_group="emoaug.corpora")


# --------------------------------------------------------------------------- helpers for corpus modules


def audio_files(directory: Path, *, suffixes: Iterable[str] = AUDIO_SUFFIXES, recursive: bool) -> list[Path]:
    """Sorted audio files with one of ``suffixes`` (any case); hidden and ``._*`` files are not audio.

    Broken links and unreadable folders are not returned: :func:`unused_files` reports them."""
    if not directory.is_dir():
        return []
    wanted = {s.lower() for s in suffixes}
    try:
        candidates = list(directory.rglob("*") if recursive else directory.iterdir())
    except OSError:
        return []
    return sorted(
        path
        for path in candidates
        if path.suffix.lower() in wanted and not path.name.startswith(".") and path.is_file()
    )


def release_folder(root: Path, looks_like_release) -> Path:
    """``root`` when it is a corpus release (``looks_like_release(root)``), else the one folder below it that is
    (a copy unpacked as ``DIR/MSP-IMPROV/``); ``root`` again when none or several are."""
    if not root.is_dir() or looks_like_release(root):
        return root
    try:
        children = sorted(c for c in root.iterdir() if c.is_dir() and not c.name.startswith("."))
    except OSError:
        return root
    releases = [child for child in children if looks_like_release(child)]
    return releases[0] if len(releases) == 1 else root


def skip_entry(path: Path | str, reason: str, stage: str = "scan") -> dict:
    return {"path": str(path), "reason": reason, "stage": stage}


def unused_files(root: Path, accounted: set[str], layout: str) -> list[dict]:
    """A ``layout`` skip entry for every file under ``root`` that no record or skip entry names.

    Symbolic links to folders are not followed (a loop would never end); links that dangle or loop
    are entries, like folders that cannot be read."""
    entries: list[dict] = []

    def unreadable(err: OSError) -> None:
        entries.append(skip_entry(err.filename, f"folder cannot be read ({err.strerror})", "layout"))

    for folder, subfolders, names in os.walk(root, onerror=unreadable):
        for name in subfolders:
            path = Path(folder) / name
            if path.is_symlink() and (reason := _bad_link(path)):
                entries.append(skip_entry(path, reason, "layout"))
        for name in names:
            path = Path(folder) / name
            if str(path) not in accounted:
                entries.append(skip_entry(path, _why_unused(path, layout), "layout"))
    return sorted(entries, key=lambda e: e["path"])


def _bad_link(path: Path) -> str | None:
    """Why a symbolic link cannot be followed, or None when it leads somewhere outside itself."""
    try:
        target = path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 raises this for a loop in strict mode
        return "symbolic link loop"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"dangling symbolic link (to {os.readlink(path)}, which does not exist)"
    if target.is_dir() and path.parent.resolve().is_relative_to(target):
        return f"symbolic link loop (points back to {target})"
    return None


def _resolved(path: Path) -> Path | None:
    """Where ``path`` leads through every symbolic link on the way; None when one dangles or loops."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: Python 3.11's symlink loop
        return None


def symbolic_links(root: Path) -> list[dict]:
    """Every symbolic link under ``root``, file or folder: ``{"path", "target", "outside_root"}``.

    ``target`` is where the link resolves (its own text when it dangles or loops). Linked folders are not
    entered (a loop would never end), so links inside them are not listed."""
    real_root, links = root.resolve(), []
    for folder, subfolders, names in os.walk(root, onerror=lambda err: None):
        for name in [*subfolders, *names]:
            path = Path(folder) / name
            if not path.is_symlink():
                continue
            target = _resolved(path)
            try:
                shown = str(target) if target is not None else os.readlink(path)
            except OSError:
                shown = "?"
            links.append({"path": str(path), "target": shown,
                          "outside_root": target is not None and not target.is_relative_to(real_root)})
    return sorted(links, key=lambda link: link["path"])


def _drop_links_leaving_root(records: list[dict], root: Path, follow_links: bool) -> tuple[list[dict], list[dict]]:
    """A corpus is what lies under its root: a file reached through a symbolic link (the file itself, or a
    folder above it) that resolves outside the root is skipped, unless ``follow_links``. Otherwise a stray
    link would silently pull another corpus, or another partition, into this one."""
    if follow_links:
        return records, []
    real_root, kept, skipped = root.resolve(), [], []  # (the synthetic corpus's root is not resolved)
    for record in records:
        target = _resolved(Path(record["path"]))
        if target is not None and not target.is_relative_to(real_root):
            skipped.append(skip_entry(record["path"], f"symbolic link outside the corpus root (to {target}; "
                                                      "use --follow-links to read it)", "layout"))
        else:
            kept.append(record)
    return kept, skipped


def _why_unused(path: Path, layout: str) -> str:
    if path.is_symlink() and (reason := _bad_link(path)):
        return reason
    try:
        regular = path.is_file()
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if not regular:
        return "not a regular file (pipe, socket or device)"
    suffix = path.suffix.lower()
    if path.name.startswith("."):
        return "hidden file"
    if suffix in AUDIO_SUFFIXES:
        return f"audio file outside the layout ({layout})"
    if suffix in OTHER_AUDIO_SUFFIXES:
        return f"{suffix} audio is not read (convert it to {', '.join(AUDIO_SUFFIXES)})"
    return f"not audio ({suffix or 'no extension'})"


def split_skipped(skipped: list[dict]) -> tuple[list[dict], list[dict]]:
    """(entries worth a line each, other files: non-audio and hidden files beside the corpus)."""
    def other(entry: dict) -> bool:
        return entry.get("stage") == "layout" and entry["reason"].startswith(("not audio", "hidden file"))

    return [e for e in skipped if not other(e)], [e for e in skipped if other(e)]


def summarise_skipped(skipped: list[dict], examples: int = 2) -> list[str]:
    """One line per (stage, reason kind) with a count and the first paths: thousands of video files
    in a download must not become thousands of warnings (``skipped.json`` keeps every entry)."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for entry in skipped:
        kind = entry["reason"].split(" (")[0]
        groups[(entry.get("stage", "scan"), kind)].append(entry["path"])
    lines = []
    for (stage, kind), paths in sorted(groups.items(), key=lambda g: (STAGES.index(g[0][0]), g[0][1])):
        shown = ", ".join(paths[:examples]) + (f", ... ({len(paths) - examples} more)" if len(paths) > examples else "")
        lines.append(f"{len(paths)} file(s) skipped at {stage}: {kind}: {shown}")
    return lines


# --------------------------------------------------------------------------- registry


def available_corpora() -> list[str]:
    return CORPORA.names()


def corpus_module(name: str) -> ModuleType | SimpleNamespace:
    """The object describing corpus ``name`` (a module, or a namespace for ``csv``)."""
    return CORPORA.get(name)


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
            skipped.append(skip_entry(record["path"], f"duplicate item id {item_id} (also {first_path[item_id]})",
                                      "duplicate"))
        else:
            first_path[item_id] = record["path"]
            kept.append(record)
    return kept, skipped


def _drop_content_duplicates(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Byte-identical files under two names would put one recording in training and in test.

    Copies with one label: the first by item id is kept. Copies that disagree on the label say
    nothing about either emotion: all of them are skipped."""
    by_content: dict[str, list[dict]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r["item_id"]):
        by_content[record["sha1"]].append(record)
    kept, skipped = [], []
    for copies in by_content.values():
        emotions = sorted({r["emotion"] for r in copies})
        if len(emotions) > 1:
            listing = "; ".join(f"{r['emotion']}: {r['path']}" for r in copies)
            skipped += [skip_entry(r["path"], f"identical audio with conflicting labels ({listing})", "duplicate")
                        for r in copies]
            continue
        kept.append(copies[0])
        skipped += [skip_entry(r["path"], f"duplicate of {copies[0]['path']} (identical audio)", "duplicate")
                    for r in copies[1:]]
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


def _probe_all(records: list[dict], name: str, progress: bool, on_bad_file: str,
               limits: dict[str, float]) -> tuple[list[dict], list[dict]]:
    from ..audio import probe_audio  # librosa: imported when a corpus is read, not when the CLI starts

    show = progress and sys.stderr.isatty()
    usable, skipped = [], []
    for record in tqdm(records, desc=f"probing {name}", unit="file", disable=not show):
        try:
            info = probe_audio(record["path"], **limits)
        except BadAudioError as err:
            if on_bad_file == "fail":
                raise
            skipped.append(skip_entry(record["path"], err.reason, "probe"))
            continue
        audio = {"duration": info.duration, "sample_rate": info.sample_rate, "channels": info.channels, "sha1": info.sha1}
        usable.append({**record, **audio})
    return usable, skipped


def _manifest(records: list[dict], extra_columns: Iterable[str] = ()) -> pd.DataFrame:
    items = pd.DataFrame(records, columns=[*MANIFEST_COLUMNS, *extra_columns])
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


def check_duration_bounds(min_duration: float, max_duration: float) -> None:
    if not 0 <= min_duration < max_duration < float("inf"):
        raise EmoaugError(f"--min-duration {min_duration:g} and --max-duration {max_duration:g}: need "
                          "0 <= min < max, both finite (seconds)")


def _fail_on(entries: list[dict], on_bad_file: str) -> None:
    """Under ``fail`` a bad file stops the run; files of other layouts are not bad files."""
    bad = [e for e in entries if e.get("stage") != "layout" or e["reason"].startswith(("dangling", "symbolic"))]
    if bad and on_bad_file == "fail":
        raise BadAudioError(bad[0]["path"], bad[0]["reason"])


def load_corpus(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    labels: str = "6class",
    on_bad_file: str = "skip",
    progress: bool = False,
    min_duration: float | None = None,
    max_duration: float | None = None,
    follow_links: bool = False,
) -> CorpusScan:
    """Scan, label-filter and probe one corpus; every file under the root that is not an item is in
    ``skipped`` (with its reason) or counted in ``excluded`` (outside the label set). Files reached through
    a symbolic link leaving the root are skipped unless ``follow_links``; ``links`` lists every link."""
    limits = {"min_duration": DEFAULT_MIN_DURATION if min_duration is None else min_duration,
              "max_duration": DEFAULT_MAX_DURATION if max_duration is None else max_duration}
    check_duration_bounds(**limits)
    check_bad_file_policy(on_bad_file)
    module = corpus_module(name)
    path = resolve_root(name, root, module)
    folder = path if path.is_dir() else path.parent  # a csv corpus may be named by its manifest
    records, skipped = module.scan(path)
    records, outside = _drop_links_leaving_root(records, folder, follow_links)
    records, duplicates = _drop_duplicates(records)
    support = getattr(module, "support_files", lambda root: [])(path)
    accounted = ({r["path"] for r in records} | {e["path"] for e in skipped + outside + duplicates}
                 | {str(p) for p in support})
    skipped = [*skipped, *outside, *duplicates,
               *unused_files(folder, accounted, getattr(module, "LAYOUT", module.WHERE_TO_GET))]
    _fail_on(skipped, on_bad_file)
    if not records:
        raise _nothing_found(name, path, [e for e in skipped if e["stage"] != "layout"] or skipped, module)
    kept, wanted, excluded = _apply_label_set(module, records, labels)
    usable, bad = _probe_all(kept, name, progress, on_bad_file, limits)
    usable, copies = _drop_content_duplicates(usable)
    _fail_on(copies, on_bad_file)
    skipped = skipped + bad + copies
    present = {r["emotion"] for r in usable}
    if labels == "all":  # the corpus's own emotions that survived, in the module's order
        wanted = tuple(e for e in module.ALL_EMOTIONS if e in present)
    if not usable:
        found = ", ".join(f"{e} {n}" for e, n in sorted(excluded.items())) or "nothing usable"
        raise EmoaugError(f"corpus {name!r} under {path}: no usable files with --labels {labels} (found: {found})")
    return CorpusScan(
        corpus=name,
        root=str(path),
        items=_manifest(usable, getattr(module, "EXTRA_COLUMNS", ())),
        labels=wanted,
        skipped=skipped,
        excluded=dict(sorted(excluded.items())),
        links=symbolic_links(folder),
    )
