"""CREMA-D: ``AudioWAV/1001_DFA_ANG_XX.wav`` = actor, sentence, emotion, intensity level."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..errors import EmoaugError
from . import audio_files, skip_entry

NAME = "cremad"
ALL_EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "disgust")
WHERE_TO_GET = (
    "clone https://github.com/CheyneyComputerScience/CREMA-D (git lfs pull) and pass its folder as DIR, "
    "so that DIR/AudioWAV/1001_DFA_ANG_XX.wav and DIR/VideoDemographics.csv exist"
)
LAYOUT = "DIR/AudioWAV/ or DIR/ holding files named like 1001_DFA_ANG_XX.wav (.wav/.flac/.ogg/.opus/.mp3)"

SENTENCES = frozenset(["IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"])
EMOTION_CODES = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVELS = frozenset(["LO", "MD", "HI", "XX", "X"])
DEMOGRAPHICS_FILE = "VideoDemographics.csv"
_NAME_PATTERN = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")


def _audio_dir(root: Path) -> Path:
    return root / "AudioWAV" if (root / "AudioWAV").is_dir() else root


def parse_name(stem: str) -> dict | str:
    match = _NAME_PATTERN.match(stem)
    if not match:
        return "name does not follow the CREMA-D scheme (e.g. 1001_DFA_ANG_XX.wav)"
    actor, sentence, emotion, level = match.groups()
    if not 1001 <= int(actor) <= 1091:
        return f"unknown CREMA-D actor {actor!r} (1001..1091)"
    if sentence not in SENTENCES:
        return f"unknown CREMA-D sentence code {sentence!r}"
    if emotion not in EMOTION_CODES:
        return f"unknown CREMA-D emotion code {emotion!r}"
    if level not in LEVELS:
        return f"unknown CREMA-D intensity level {level!r}"
    return {"actor": actor, "sentence": sentence, "emotion": emotion, "level": level}


def _demographics_table(root: Path) -> Path | None:
    for folder in (root, _audio_dir(root)):
        if (folder / DEMOGRAPHICS_FILE).is_file():
            return folder / DEMOGRAPHICS_FILE
    return None


def support_files(root: Path) -> list[Path]:
    """Files the layout reads besides the audio (not listed as unused)."""
    table = _demographics_table(Path(root))
    return [table] if table else []


def read_genders(root: Path) -> dict[str, str]:
    """ActorID -> "male"/"female" from VideoDemographics.csv next to the audio; {} when absent."""
    table = _demographics_table(root)
    return _parse_demographics(table) if table else {}


def _parse_demographics(table: Path) -> dict[str, str]:
    with open(table, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not {"ActorID", "Sex"} <= set(reader.fieldnames or ()):
            raise EmoaugError(f"{table}: expected columns ActorID and Sex, found {reader.fieldnames}")
        return {
            row["ActorID"].strip(): {"male": "male", "female": "female"}.get(row["Sex"].strip().lower(), "")
            for row in reader
        }


def scan(root: Path) -> tuple[list[dict], list[dict]]:
    root = Path(root)
    genders = read_genders(root)
    records, skipped = [], []
    for path in audio_files(_audio_dir(root), recursive=False):
        fields = parse_name(path.stem)
        if isinstance(fields, str):
            skipped.append(skip_entry(path, fields))
            continue
        records.append(
            {
                "item_id": f"{NAME}/{path.stem}",
                "path": str(path),
                "corpus": NAME,
                "speaker": f"{NAME}/{fields['actor']}",
                "gender": genders.get(fields["actor"], ""),
                "emotion": EMOTION_CODES[fields["emotion"]],
                "raw_label": fields["emotion"],
                "text_id": fields["sentence"],
            }
        )
    return records, skipped
