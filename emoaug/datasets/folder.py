"""User corpora without a published scheme: ``folder`` (one sub-folder per emotion) and ``csv``.

``folder``: ``root/<emotion>/<speaker>_<anything>.wav`` (also .flac/.ogg/.opus/.mp3). Folder names are
canonicalised through common aliases. Files without a ``<speaker>_`` prefix become their own
speaker, which makes speaker-independent splits meaningless: scan() warns about it.

``csv``: a manifest with columns path, emotion, speaker (optional gender, text_id); paths are
relative to the CSV's folder and may not leave it (a symbolic link leaving it is skipped by ``load_corpus``
unless ``follow_links``, like a linked file or folder of any layout).
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

from ..errors import EmoaugError
from . import audio_files, skip_entry

NAME = "folder"
# Every canonical emotion any built-in corpus uses, in label-set order first.
ALL_EMOTIONS = (
    "neutral", "happy", "sad", "angry", "fear", "disgust",
    "calm", "surprise", "boredom", "excited", "frustrated", "other",
)  # fmt: skip
WHERE_TO_GET = (
    "your own recordings, one sub-folder per emotion: DIR/angry/spk1_001.wav, DIR/neutral/spk1_002.wav "
    "(.wav/.flac/.ogg/.opus/.mp3; the file-name prefix before the first '_' is the speaker)"
)
LAYOUT = "DIR/<emotion>/<speaker>_<name>.wav, one level deep (.wav/.flac/.ogg/.opus/.mp3)"

EMOTION_ALIASES = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "happiness": "happy", "happy": "happy", "joy": "happy", "joyful": "happy",
    "sadness": "sad", "sad": "sad",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "disgust": "disgust", "disgusted": "disgust",
    "neutral": "neutral", "neu": "neutral",
    "calm": "calm",
    "surprise": "surprise", "surprised": "surprise",
    "boredom": "boredom", "bored": "boredom",
    "excited": "excited", "excitement": "excited",
    "frustrated": "frustrated", "frustration": "frustrated",
    "other": "other",
}  # fmt: skip


class SpeakerWarning(UserWarning):
    """Speakers could not be read from file names; each file became its own speaker."""


def canonical_emotion(label: str) -> str | None:
    """Canonical name for a user label (case and surrounding space ignored), None when unknown."""
    return EMOTION_ALIASES.get(label.strip().lower())


def _safe_id(text: str) -> str:
    return re.sub(r"\s+", "_", text.strip())


# --------------------------------------------------------------------------- folder


def _folder_record(path: Path, root: Path, emotion: str) -> tuple[dict, bool]:
    """(record, whether the speaker came from the file name)."""
    prefix, has_prefix, _ = path.stem.partition("_")
    relative = path.relative_to(root).with_suffix("").as_posix()
    speaker = _safe_id(prefix) if has_prefix and prefix.strip() else _safe_id(relative)
    record = {
        "item_id": f"{NAME}/{_safe_id(relative)}",
        "path": str(path),
        "corpus": NAME,
        "speaker": f"{NAME}/{speaker}",
        "gender": "",
        "emotion": emotion,
        "raw_label": path.parent.name,
        "text_id": "",
    }
    return record, bool(has_prefix and prefix.strip())


def scan(root: Path) -> tuple[list[dict], list[dict]]:
    root = Path(root)
    if not root.is_dir():
        raise EmoaugError(f"corpus 'folder': {root} is not a folder ({WHERE_TO_GET})")
    records, skipped, without_speaker = [], [], 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        emotion = canonical_emotion(folder.name)
        files = audio_files(folder, recursive=False)
        if emotion is None:
            skipped += [skip_entry(path, f"unknown emotion folder {folder.name!r}") for path in files]
            continue
        for path in files:
            record, from_name = _folder_record(path, root, emotion)
            records.append(record)
            without_speaker += not from_name
    if without_speaker:
        warnings.warn(
            f"folder corpus {root}: {without_speaker} file(s) have no '<speaker>_' name prefix; each is "
            "its own speaker, so speaker-independent splits cannot keep a real speaker out of training",
            SpeakerWarning,
            stacklevel=2,
        )
    return records, skipped


# --------------------------------------------------------------------------- csv

CSV_NAME = "csv"
CSV_WHERE_TO_GET = (
    "your own manifest CSV with columns path,emotion,speaker (optional gender,text_id), paths relative "
    "to the CSV's folder; pass the CSV file or a folder holding manifest.csv"
)
CSV_REQUIRED = ("path", "emotion", "speaker")
GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female"}


def manifest_path(root: Path) -> Path:
    root = Path(root)
    return root / "manifest.csv" if root.is_dir() else root


def _relative_audio_path(raw: str, base: Path, where: str) -> Path:
    """The row's file under ``base``; refuse absolute paths and ``..`` escapes (one-line error)."""
    text = raw.strip().replace("\\", "/")
    if not text:
        raise EmoaugError(f"{where}: empty path")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise EmoaugError(f"{where}: path {raw!r} is absolute; paths must be relative to the CSV's folder")
    # Judged on the text (normalised); where a symbolic link on the way leads is load_corpus's check.
    parts: list[str] = []
    for part in PurePosixPath(text).parts:
        if part == "..":
            if not parts:
                raise EmoaugError(f"{where}: path {raw!r} leaves the CSV's folder")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return base.joinpath(*parts)


def _csv_record(row: dict, base: Path, where: str) -> dict | str:
    path = _relative_audio_path(row["path"] or "", base, where)
    if path == base:
        return f"{where}: path {row['path']!r} names the CSV's folder, not an audio file"
    label = (row["emotion"] or "").strip()
    emotion = canonical_emotion(label)
    if emotion is None:
        return f"{where}: unknown emotion label {label!r}"
    speaker = _safe_id(row["speaker"] or "")
    if not speaker:
        return f"{where}: empty speaker"
    relative = path.relative_to(base).with_suffix("").as_posix()
    return {
        "item_id": f"{CSV_NAME}/{_safe_id(relative)}",
        "path": str(path),
        "corpus": CSV_NAME,
        "speaker": f"{CSV_NAME}/{speaker}",
        "gender": GENDERS.get((row.get("gender") or "").strip().lower(), ""),
        "emotion": emotion,
        "raw_label": label,
        "text_id": (row.get("text_id") or "").strip(),
    }


def scan_csv(root: Path) -> tuple[list[dict], list[dict]]:
    table = manifest_path(root)
    if not table.is_file():
        raise EmoaugError(f"corpus 'csv': manifest {table} not found ({CSV_WHERE_TO_GET})")
    base = table.parent.resolve()
    records, skipped = [], []
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=_delimiter(handle))
            missing = [column for column in CSV_REQUIRED if column not in (reader.fieldnames or ())]
            if missing:
                raise EmoaugError(f"{table}: missing column(s) {', '.join(missing)} "
                                  f"(need {', '.join(CSV_REQUIRED)}, comma-, semicolon- or tab-separated)")
            for row in reader:
                where = f"{table} line {reader.line_num}"
                entry = _csv_record(row, base, where)
                if isinstance(entry, str):
                    skipped.append(skip_entry(base / (row["path"] or ""), entry))
                else:
                    records.append(entry)
    except UnicodeDecodeError as err:
        raise EmoaugError(f"{table}: not UTF-8 text (byte {err.start}); save the CSV as UTF-8") from None
    except csv.Error as err:
        raise EmoaugError(f"{table}: unreadable CSV ({err})") from None
    return records, skipped


def _delimiter(handle) -> str:
    """Comma, semicolon (spreadsheets in many locales) or tab: the most frequent in the header line."""
    header = handle.readline()
    handle.seek(0)
    counts = {delimiter: header.count(delimiter) for delimiter in ",;\t"}
    return max(counts, key=counts.get) if any(counts.values()) else ","


# The registry expects one object per corpus with NAME, ALL_EMOTIONS, WHERE_TO_GET and scan.
CSV_CORPUS = SimpleNamespace(
    NAME=CSV_NAME,
    ALL_EMOTIONS=ALL_EMOTIONS,
    WHERE_TO_GET=CSV_WHERE_TO_GET,
    LAYOUT="files the manifest CSV names",
    scan=scan_csv,
    support_files=lambda root: [manifest_path(root)],
    LABEL_MERGES={},
)
