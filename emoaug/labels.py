"""Canonical emotion label sets.

Every corpus loader maps its own codes onto these canonical names; label sets select a subset.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import EmoaugError

# Kim & Lee 2024 (6 classes) and Malik et al. 2023 (4 classes); order fixes the class index.
LABEL_SETS: dict[str, tuple[str, ...]] = {
    "6class": ("neutral", "happy", "sad", "angry", "fear", "disgust"),
    "4class": ("neutral", "happy", "sad", "angry"),
}


def resolve_labels(label_set: str, corpus_labels: Sequence[str]) -> tuple[str, ...]:
    """Labels of ``label_set``; ``all`` means the corpus's own canonical labels, in the given order."""
    if label_set == "all":
        return tuple(corpus_labels)
    if label_set not in LABEL_SETS:
        choices = ", ".join([*LABEL_SETS, "all"])
        raise EmoaugError(f"--labels: unknown label set {label_set!r} (choose from {choices})")
    return LABEL_SETS[label_set]
