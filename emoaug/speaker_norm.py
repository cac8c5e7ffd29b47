"""Per-speaker standardisation (``--speaker-norm``): a flagged, transductive front-end option.

Each speaker's log-mel rows are standardised per mel bin with the mean and std over every frame of every
utterance of that speaker; each speaker's functionals (the classic reference) are standardised per value over
that speaker's utterances. It removes much of what tells speakers apart (vocal-tract length, recording level,
habitual loudness) and keeps what varies within a speaker, emotion among it.

**It uses unlabelled test-speaker audio**: the statistics of a test speaker come from that speaker's test
utterances (no labels). That is a common protocol in SER papers but not a deployment-free one, so runs that
use it say so in every table and never share a leaderboard group or a stored cell with runs that do not.

Statistics are per speaker and do not depend on the fold: in a speaker-independent split every speaker's
utterances sit in one partition, so a training speaker's statistics come from training utterances only.
Padding frames of short clips count like any other frame, as in the global normalisation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import EmoaugError
from .features import ArraysOf, bin_mean_std, safe_scale

log = logging.getLogger("emoaug")

SpeakerStats = dict[str, dict[str, np.ndarray]]  # speaker -> {"mean": [n_mels], "std": [n_mels]}


def speakers_of(items: pd.DataFrame) -> dict[str, list[str]]:
    """speaker -> item ids, in manifest order; a one-line error when the manifest has no speakers."""
    if "speaker" not in items.columns or items["speaker"].isna().any():
        raise EmoaugError("--speaker-norm: the corpus manifest has no speaker for every item")
    return {str(speaker): list(part["item_id"]) for speaker, part in items.groupby("speaker", sort=True)}


def mel_statistics(features: Mapping[str, np.ndarray], items: pd.DataFrame) -> SpeakerStats:
    """Per speaker, the mean and std of each mel bin over every frame of every row of its utterances."""
    stats: SpeakerStats = {}
    for speaker, ids in speakers_of(items).items():
        mean, std = bin_mean_std(ArraysOf(features, ids))
        stats[speaker] = {"mean": mean, "std": std}
    return stats


def standardise_mels(features: Mapping[str, np.ndarray], items: pd.DataFrame,
                     stats: SpeakerStats) -> dict[str, np.ndarray]:
    """item_id -> its rows standardised per bin with its speaker's statistics (float32, as the front end)."""
    out = {}
    for speaker, ids in speakers_of(items).items():
        mean, std = stats[speaker]["mean"][:, None], safe_scale(stats[speaker]["std"])[:, None]
        for item_id in ids:
            out[item_id] = ((np.asarray(features[item_id], dtype=np.float64) - mean) / std).astype(np.float32)
    return out


def reference_statistics(stats: SpeakerStats, speakers: Iterable[str]) -> dict[str, list[float]]:
    """The average speaker of ``speakers`` (mean of their bin means and stds): how standardised rows are mapped
    back to dB for listening and for the quality measures in mel space."""
    chosen = [stats[s] for s in sorted(set(speakers))]
    if not chosen:
        raise ValueError("reference_statistics: no speakers")
    return {"mean": np.mean([s["mean"] for s in chosen], axis=0).tolist(),
            "std": np.mean([safe_scale(s["std"]) for s in chosen], axis=0).tolist()}


def standardise_vectors(vectors: Mapping[str, np.ndarray], items: pd.DataFrame) -> dict[str, np.ndarray]:
    """item_id -> its vector (e.g. openSMILE functionals) standardised per value over its speaker's items."""
    out = {}
    for ids in speakers_of(items).values():
        ids = [i for i in ids if i in vectors]
        if not ids:
            continue
        block = np.stack([np.asarray(vectors[i], dtype=np.float64) for i in ids])
        mean, std = block.mean(axis=0), safe_scale(block.std(axis=0))
        out.update({i: ((block[k] - mean) / std).astype(np.float32) for k, i in enumerate(ids)})
    return out


def warn_small_speakers(items: pd.DataFrame) -> None:
    """A speaker with one utterance is standardised over that utterance alone (per-utterance normalisation,
    which removes level cues); say how many there are."""
    sizes = items.groupby("speaker").size()
    alone = int((sizes == 1).sum())
    if alone:
        log.warning("--speaker-norm: %d of %d speakers have a single utterance; each is standardised over that "
                    "utterance alone (per-utterance normalisation)", alone, len(sizes))
