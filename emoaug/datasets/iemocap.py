"""IEMOCAP: ``Session1/sentences/wav/<dialog>/<utt>.wav`` labelled by ``dialog/EmoEvaluation/<dialog>.txt``.

Each EmoEvaluation file holds one summary line per utterance, e.g.
``[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]`` (the evaluators'
majority label). ``xxx`` means the evaluators did not agree: such utterances carry the emotion
``no_agreement``, which no label set contains, so they are always counted as excluded.

Sessions: the manifest's ``session`` column is ``Ses01``..``Ses05``, from the utterance name. The two speakers
of a session (``iemocap/Ses01F``, ``iemocap/Ses01M``) act the same dialogs together, so ``--split standard``
holds a whole session out per fold (leave-one-session-out, the corpus's usual protocol).
"""

from __future__ import annotations

import re
from pathlib import Path

from . import audio_files, skip_entry

NAME = "iemocap"
ALL_EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "excited", "frustrated", "surprise", "other")
WHERE_TO_GET = (
    "request IEMOCAP from https://sail.usc.edu/iemocap/ and pass the unpacked IEMOCAP_full_release "
    "folder as DIR, so that DIR/Session1/sentences/wav/ and DIR/Session1/dialog/EmoEvaluation/ exist"
)
LAYOUT = "SessionN/sentences/wav/<dialog>/<utterance>.wav, labelled in SessionN/dialog/EmoEvaluation/*.txt"

CODES = {
    "neu": "neutral", "hap": "happy", "exc": "excited", "sad": "sad", "ang": "angry",
    "fru": "frustrated", "fea": "fear", "sur": "surprise", "dis": "disgust", "oth": "other",
    "xxx": "no_agreement",
}  # fmt: skip
# The 4- and 6-class literature (Malik et al. 2023 and most IEMOCAP work) counts excited as happy.
LABEL_MERGES = {"4class": {"excited": "happy"}, "6class": {"excited": "happy"}}
SESSIONS = tuple(f"Session{n}" for n in range(1, 6))
EXTRA_COLUMNS = ("session",)  # kept in the manifest beside MANIFEST_COLUMNS
_LABEL_LINE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s+(?P<utt>Ses\S+)\s+(?P<code>[a-z]{3})\s+\[")
_UTT_PATTERN = re.compile(r"^Ses(?P<session>\d\d)[FM]_(?P<dialog_rest>.+)_(?P<gender>[FM])\d{3}$")


def _corpus_dir(root: Path) -> Path:
    """Accept the release folder itself or a parent holding IEMOCAP_full_release."""
    release = root / "IEMOCAP_full_release"
    if not (root / "Session1").is_dir() and release.is_dir():
        return release
    return root


def _label_tables(session_dir: Path) -> list[Path]:
    # "._*" are macOS resource forks shipped in some copies
    return [t for t in sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt")) if not t.name.startswith("._")]


def support_files(root: Path) -> list[Path]:
    """Files the layout reads besides the audio (not listed as unused)."""
    corpus_dir = _corpus_dir(Path(root))
    return [table for session in SESSIONS for table in _label_tables(corpus_dir / session)]


def read_labels(session_dir: Path) -> dict[str, str]:
    """Utterance id -> raw code from every top-level EmoEvaluation/*.txt of one session."""
    labels: dict[str, str] = {}
    for table in _label_tables(session_dir):
        for line in table.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _LABEL_LINE.match(line)
            if match:
                labels[match["utt"]] = match["code"]
    return labels


def _record(path: Path, code: str) -> dict | str:
    match = _UTT_PATTERN.match(path.stem)
    if not match:
        return "name does not follow the IEMOCAP scheme (e.g. Ses01F_impro01_F000.wav)"
    if code not in CODES:
        return f"unknown IEMOCAP emotion code {code!r}"
    letter = match["gender"]
    return {
        "item_id": f"{NAME}/{path.stem}",
        "path": str(path),
        "corpus": NAME,
        "speaker": f"{NAME}/Ses{match['session']}{letter}",
        "gender": "female" if letter == "F" else "male",
        "emotion": CODES[code],
        "raw_label": code,
        # Scripts and improvisation prompts are shared across sessions: the dialog minus its session.
        "text_id": match["dialog_rest"],
        "session": f"Ses{match['session']}",
    }


def scan(root: Path) -> tuple[list[dict], list[dict]]:
    corpus_dir = _corpus_dir(Path(root))
    records, skipped = [], []
    for session in SESSIONS:
        session_dir = corpus_dir / session
        if not session_dir.is_dir():
            continue
        labels = read_labels(session_dir)
        for path in audio_files(session_dir / "sentences" / "wav", recursive=True):
            code = labels.get(path.stem)
            entry = _record(path, code) if code else f"no label for {path.stem} in {session}/dialog/EmoEvaluation"
            if isinstance(entry, str):
                skipped.append(skip_entry(path, entry))
            else:
                records.append(entry)
    return records, skipped
