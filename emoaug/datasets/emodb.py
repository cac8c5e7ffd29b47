"""Berlin Emotional Speech Database (EmoDB): ``03a01Fa.wav`` = speaker, text, emotion, version."""

from __future__ import annotations

import re
from pathlib import Path

from . import audio_files, skip_entry

NAME = "emodb"
ALL_EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "boredom")
WHERE_TO_GET = (
    "download EmoDB from http://emodb.bilderbar.info/download/ (download.zip) and unzip it so that "
    "DIR/wav/03a01Fa.wav exists (DIR itself holding the wav files also works)"
)
LAYOUT = "DIR/wav/ or DIR/ holding files named like 03a01Fa.wav (.wav/.flac/.ogg/.opus/.mp3)"

# Speaker codes with gender, from the corpus documentation.
SPEAKER_GENDER = {
    "03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
    "12": "male", "13": "female", "14": "female", "15": "male", "16": "female",
}  # fmt: skip
# The ten sentences actually recorded (the documentation's list; a03, a06, b04-b08 do not exist).
TEXT_CODES = frozenset(["a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10"])
EMOTION_LETTERS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
_NAME_PATTERN = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])$")


def _wav_dir(root: Path) -> Path:
    return root / "wav" if (root / "wav").is_dir() else root


def parse_name(stem: str) -> dict | str:
    """Fields of an EmoDB file name, or the reason it does not follow the scheme."""
    match = _NAME_PATTERN.match(stem)
    if not match:
        return "name does not follow the EmoDB scheme (e.g. 03a01Fa.wav)"
    speaker, text, letter = match["speaker"], match["text"], match["emotion"]
    if speaker not in SPEAKER_GENDER:
        return f"unknown EmoDB speaker code {speaker!r}"
    if text not in TEXT_CODES:
        return f"unknown EmoDB text code {text!r}"
    if letter not in EMOTION_LETTERS:
        return f"unknown EmoDB emotion letter {letter!r}"
    return {"speaker": speaker, "text": text, "letter": letter}


def scan(root: Path) -> tuple[list[dict], list[dict]]:
    records, skipped = [], []
    for path in audio_files(_wav_dir(Path(root)), recursive=False):
        fields = parse_name(path.stem)
        if isinstance(fields, str):
            skipped.append(skip_entry(path, fields))
            continue
        records.append(
            {
                "item_id": f"{NAME}/{path.stem}",
                "path": str(path),
                "corpus": NAME,
                "speaker": f"{NAME}/{fields['speaker']}",
                "gender": SPEAKER_GENDER[fields["speaker"]],
                "emotion": EMOTION_LETTERS[fields["letter"]],
                "raw_label": fields["letter"],
                "text_id": fields["text"],
            }
        )
    return records, skipped
