"""The manifest contract shared by every corpus loader."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# One row per usable utterance. ``emotion`` is the canonical name (see emoaug.labels); ``raw_label``
# is the corpus's own code. ``sha1`` is the hash of the file's bytes (the feature-cache key).
MANIFEST_COLUMNS = [
    "item_id",  # unique within the corpus, e.g. "emodb/03a01Fa"
    "path",  # absolute path to the audio file
    "corpus",
    "speaker",  # corpus-prefixed speaker id as str, e.g. "emodb/03"
    "gender",  # "male" / "female" / "" when unknown
    "emotion",
    "raw_label",
    "text_id",  # sentence / script id as str ("" when unknown)
    "duration",  # seconds
    "sample_rate",  # native rate of the file
    "channels",
    "sha1",
]


@dataclass
class CorpusScan:
    """What a loader found under a root folder."""

    corpus: str
    root: str
    items: pd.DataFrame  # columns MANIFEST_COLUMNS (+ the corpus's EXTRA_COLUMNS), RangeIndex, item_id unique
    labels: tuple[str, ...]  # the label set in force (class order)
    # every file under the root that is not an item: [{"path", "reason", "stage"}], never silent
    skipped: list[dict] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)  # emotion -> count dropped by the label set
    # every symbolic link under the root: [{"path", "target", "outside_root"}] (files behind one leaving the
    # root are in ``skipped`` unless they were read with --follow-links)
    links: list[dict] = field(default_factory=list)

    @property
    def missing(self) -> tuple[str, ...]:
        """Emotions of the label set without a usable item."""
        present = set(self.items["emotion"])
        return tuple(label for label in self.labels if label not in present)

    @property
    def n_speakers(self) -> int:
        return int(self.items["speaker"].nunique())
