"""RAVDESS speech: ``Actor_12/03-01-06-01-02-01-12.wav`` (seven two-digit fields).

modality (01 AV, 02 video, 03 audio) - vocal channel (01 speech, 02 song) - emotion - intensity
(01 normal, 02 strong) - statement (01, 02) - repetition (01, 02) - actor (01..24, odd = male).
"""

from __future__ import annotations

import re
from pathlib import Path

from . import audio_files, skip_entry

NAME = "ravdess"
ALL_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise")
WHERE_TO_GET = (
    "download Audio_Speech_Actors_01-24.zip from https://zenodo.org/records/1188976 and unzip it "
    "into DIR (any depth) so that files like DIR/Actor_01/03-01-01-01-01-01-01.wav exist"
)
LAYOUT = "audio-only speech files named like 03-01-01-01-01-01-01.wav anywhere under DIR"

EMOTION_CODES = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fear", "07": "disgust", "08": "surprise",
}  # fmt: skip
AUDIO_ONLY, SPEECH = "03", "01"
_NAME_PATTERN = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_FIELD_VALUES = {  # field index -> allowed codes (emotion and actor are checked separately)
    0: ("01", "02", "03"),
    1: ("01", "02"),
    3: ("01", "02"),
    4: ("01", "02"),
    5: ("01", "02"),
}
_FIELD_NAMES = ("modality", "vocal channel", "emotion", "intensity", "statement", "repetition", "actor")


def parse_name(stem: str) -> dict | str:
    """Fields of a RAVDESS name, or the reason it does not follow the scheme."""
    match = _NAME_PATTERN.match(stem)
    if not match:
        return "name does not follow the RAVDESS scheme (e.g. 03-01-06-01-02-01-12.wav)"
    fields = match.groups()
    for index, allowed in _FIELD_VALUES.items():
        if fields[index] not in allowed:
            return f"unknown RAVDESS {_FIELD_NAMES[index]} code {fields[index]!r}"
    if fields[2] not in EMOTION_CODES:
        return f"unknown RAVDESS emotion code {fields[2]!r}"
    if not 1 <= int(fields[6]) <= 24:
        return f"unknown RAVDESS actor {fields[6]!r} (01..24)"
    return dict(zip(("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor"), fields))


def _record(path: Path, fields: dict) -> dict:
    actor = fields["actor"]
    return {
        "item_id": f"{NAME}/{path.stem}",
        "path": str(path),
        "corpus": NAME,
        "speaker": f"{NAME}/{actor}",
        "gender": "male" if int(actor) % 2 else "female",
        "emotion": EMOTION_CODES[fields["emotion"]],
        "raw_label": fields["emotion"],
        "text_id": fields["statement"],
    }


def scan(root: Path) -> tuple[list[dict], list[dict]]:
    """Audio-only speech files anywhere under ``root``; song and video-modality files are left out."""
    records, skipped = [], []
    for path in audio_files(Path(root), recursive=True):
        fields = parse_name(path.stem)
        if isinstance(fields, str):
            skipped.append(skip_entry(path, fields))
        elif fields["modality"] == AUDIO_ONLY and fields["channel"] == SPEECH:
            records.append(_record(path, fields))
        # Song and audio-visual files are RAVDESS but not its speech corpus: listed as unused, not errors.
    return records, skipped

