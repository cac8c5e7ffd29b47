"""Quality measures of a generated set of log-mel rows, per emotion and overall (pure; never prints).

Inputs are :class:`FeatureSet` rows *as the generators and classifiers see them* (normalised by the
fold's :class:`Normaliser`), plus a "judge": the fixed real-only classifier of the same fold and seed
(anything with ``embed(fs) -> [N, D]`` and ``predict_items(fs)``, e.g. a fitted ``SERClassifier``).
:func:`assess_generated` runs everything and returns one tidy frame; the functions it uses are public
so each measure can be computed and tested on its own.

Two spaces are used:

* **mel space** ("mel"): rows mapped back to dB with ``Normaliser.to_db`` and then to
  [-1, 1] with Malik et al. (2023)'s global min/max scaling fitted on the *real training rows*
  (:class:`MelScale`). Values therefore do not depend on which normaliser the preset uses.
* **embedding space** ("emb"): the judge's penultimate-layer embedding of each row.

Distances between rows are root-mean-square differences (Euclidean distance / sqrt(dimension)), so a
mel-space distance reads on the same [-1, 1] scale as the values (0.1 = 5 % of the dB range).

Measures (column ``measure``; ``emotion`` is a label or ``"overall"``):

``mad``
    Mean absolute difference of mean spectra on Malik's [-1, 1] scale, see :func:`mad`.
    ``overall`` = unweighted mean over emotions; ``mad_sum`` (overall only) = their sum, the form of
    Malik's Table 1 "total" row (0.0476 = 0.0141 + 0.0096 + 0.0097 + 0.0143).
``fd`` / ``fd_real``
    Frechet distance in the judge's embedding space between generated and real training rows, and, as
    the floor a perfect generator would reach at that sample size, between held-out and training rows.
``judge_wa`` / ``judge_ua`` (overall), ``judge_recall`` (per emotion)
    The judge's item-level accuracy on generated items, their intended emotion taken as truth.
``nn_train`` / ``nn_heldout`` / ``nn_baseline`` / ``nn_ratio`` / ``copy_fraction`` (suffix ``_mel`` / ``_emb``)
    Memorisation check ("distance to closest record"), see :func:`memorisation`.
``diversity_mel`` / ``diversity_emb``
    Mean pairwise distance within generated rows of an emotion over the same within real training
    rows of it, see :func:`diversity`; ``overall`` = unweighted mean of the per-emotion ratios.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from .errors import EmoaugError
from .features import Normaliser
from .featureset import FeatureSet
from .metrics import classification_metrics, per_class_recall

OVERALL = "overall"
COLUMNS = ("emotion", "measure", "value", "n_generated")
MIN_FD_ROWS = 2  # a covariance needs two rows; below this frechet_distance raises
FD_COVARIANCES = ("auto", "sample", "shrunk")


class Judge(Protocol):
    """What the quality measures need from the fixed real-only classifier."""

    def embed(self, fs: FeatureSet) -> np.ndarray: ...

    def predict_items(self, fs: FeatureSet) -> pd.DataFrame: ...


# ------------------------------------------------------------------------------- Malik's scale
@dataclass(frozen=True)
class MelScale:
    """Malik et al. (2023)'s mel scaling: ``s = 2 * (dB - low_db) / (high_db - low_db) - 1``.

    ``low_db``/``high_db`` are the global min/max dB of the real training rows, so real training rows
    span exactly [-1, 1] and a constant shift of ``x`` dB moves every value by ``2x / (high - low)``.
    """

    low_db: float
    high_db: float

    @classmethod
    def fit(cls, real_train: FeatureSet, normaliser: Normaliser) -> MelScale:
        if len(real_train) == 0:
            raise EmoaugError("quality: the real training set is empty, cannot fit the [-1, 1] mel scale")
        low, high = np.inf, -np.inf
        for db in _db_chunks(real_train, normaliser):
            low, high = min(low, float(db.min())), max(high, float(db.max()))
        return cls._checked(low, high)

    @classmethod
    def fit_db(cls, db: np.ndarray) -> MelScale:
        """The scale of real training rows given in dB ``[N, M, T]``."""
        return cls._checked(float(db.min()), float(db.max()))

    @classmethod
    def _checked(cls, low: float, high: float) -> MelScale:
        if not high - low > 1e-6:
            raise EmoaugError(f"quality: real training rows are constant ({low:.3f} dB), cannot scale to [-1, 1]")
        return cls(low, high)

    def apply(self, fs: FeatureSet, normaliser: Normaliser) -> np.ndarray:
        """Rows of ``fs`` on the [-1, 1] scale, float32 ``[N, M, T]`` (converted a block of rows at a time)."""
        return _blockwise(fs, normaliser, self.from_db)

    def from_db(self, db: np.ndarray) -> np.ndarray:
        return (2.0 * (db - self.low_db) / (self.high_db - self.low_db) - 1.0).astype(np.float32)

    def view(self, fs: FeatureSet, normaliser: Normaliser) -> MelRows:
        """Rows of ``fs`` on the [-1, 1] scale, converted only when indexed (see :class:`MelRows`)."""
        return MelRows(fs.row_source(), normaliser, self)


class MelRows:
    """A set's rows on the [-1, 1] scale, converted when indexed: ``rows[a:b]``, ``rows[index]`` and
    ``rows[mask]`` give float32 arrays equal to the same rows of :meth:`MelScale.apply` (the conversion is
    element by element), converted CHUNK_ROWS at a time. The quality measures read a fold's rows through it a
    block or a class at a time, so a worker never holds a converted copy of the whole training set beside the
    set itself; :meth:`subset` (a sample of rows) stays unconverted too."""

    def __init__(self, x: np.ndarray, normaliser: Normaliser, scale: MelScale, rows: np.ndarray | None = None):
        self.x, self.normaliser, self.scale = x, normaliser, scale
        self.rows = np.arange(len(x)) if rows is None else np.asarray(rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, index: np.ndarray) -> MelRows:
        return MelRows(self.x, self.normaliser, self.scale, self.rows[index])

    def __getitem__(self, index) -> np.ndarray:
        wanted = self.rows[np.flatnonzero(index) if isinstance(index, np.ndarray) and index.dtype == bool else index]
        out = np.empty((len(wanted), *self.x.shape[1:]), dtype=np.float32)
        for start in range(0, len(wanted), CHUNK_ROWS):
            db = self.normaliser.to_db(self.x[wanted[start:start + CHUNK_ROWS]])
            out[start:start + CHUNK_ROWS] = self.scale.from_db(np.asarray(db, dtype=np.float32))
        return out


#: rows converted at a time: a fold's rows of 128 x 173 in one piece, with numpy's temporaries, were gigabytes
CHUNK_ROWS = 256


def _db_chunks(fs: FeatureSet, normaliser: Normaliser):
    x = fs.row_source()
    for start in range(0, len(x), CHUNK_ROWS):
        yield np.asarray(normaliser.to_db(x[start:start + CHUNK_ROWS]), dtype=np.float32)


def _blockwise(fs: FeatureSet, normaliser: Normaliser, convert) -> np.ndarray:
    """``convert`` applied to the rows of ``fs`` in dB, a block at a time, into one float32 ``[N, M, T]`` array."""
    out = np.empty(tuple(fs.x.shape), dtype=np.float32)
    for start, db in zip(range(0, len(fs), CHUNK_ROWS), _db_chunks(fs, normaliser)):
        out[start:start + len(db)] = convert(db)
    return out


def to_db(fs: FeatureSet, normaliser: Normaliser) -> np.ndarray:
    """Undo the fold's normalisation: float32 dB array ``[N, M, T]`` (converted a block of rows at a time)."""
    return _blockwise(fs, normaliser, lambda db: db)


# ------------------------------------------------------------------------------------------ MAD
def mad(real: FeatureSet, generated: FeatureSet, normaliser: Normaliser, *,
        scale: MelScale | None = None) -> dict[str, float]:
    """Mean absolute difference of mean spectra, per emotion and ``"overall"`` (Malik Table 1 scale).

    For emotion ``e``: ``MAD_e = mean_m | R_e(m) - G_e(m) |`` where ``R_e(m)`` (``G_e(m)``) is the
    mean over real (generated) rows of emotion ``e`` and over all their frames of mel bin ``m``, with
    values on Malik's [-1, 1] scale (:class:`MelScale`, fitted on ``real`` unless ``scale`` is given;
    pass the real *training* rows as ``real``). ``overall`` is the unweighted mean of ``MAD_e`` over
    emotions present in both sets (Malik's "total" is their sum). A constant ``+x`` dB error on every
    generated value gives ``MAD = 2x / (high_db - low_db)``. Averaging over frames makes the measure
    independent of time alignment, and averaging over rows before differencing is what makes values
    as small as Malik's (about 0.01) possible; a per-row pixelwise difference would be ~0.3.
    """
    _check_compatible(real, generated)
    scale = scale or MelScale.fit(real, normaliser)
    per_emotion = _mad_arrays(scale.apply(real, normaliser), real.y.numpy(),
                              scale.apply(generated, normaliser), generated.y.numpy(), real.labels)
    return {**per_emotion, OVERALL: _mean_or_nan(per_emotion.values())}


def _mad_arrays(real: np.ndarray, real_y: np.ndarray, gen: np.ndarray, gen_y: np.ndarray,
                labels: Sequence[str]) -> dict[str, float]:
    out = {}
    for k, label in enumerate(labels):
        if (real_y == k).any() and (gen_y == k).any():
            real_spectrum = real[real_y == k].mean(axis=(0, 2), dtype=np.float64)
            gen_spectrum = gen[gen_y == k].mean(axis=(0, 2), dtype=np.float64)
            out[label] = float(np.mean(np.abs(real_spectrum - gen_spectrum)))
    return out


# ------------------------------------------------------------------------------ Frechet distance
@dataclass(frozen=True)
class Gaussian:
    """Mean and covariance of a set of embeddings, the sufficient statistics of the Frechet distance."""

    mean: np.ndarray  # [D]
    cov: np.ndarray  # [D, D]

    @classmethod
    def fit(cls, x: np.ndarray, covariance: str) -> Gaussian:
        """``covariance``: ``"sample"`` (ddof=1) or ``"shrunk"`` (Ledoit-Wolf)."""
        x = _as_matrix(x)
        if covariance == "sample":
            cov = np.atleast_2d(np.cov(x, rowvar=False, ddof=1))
        elif covariance == "shrunk":
            from sklearn.covariance import ledoit_wolf

            cov, _ = ledoit_wolf(x, assume_centered=False)
        else:
            raise ValueError(f"Gaussian.fit: covariance must be 'sample' or 'shrunk', got {covariance!r}")
        return cls(x.mean(axis=0), cov)


def frechet_distance(a: np.ndarray, b: np.ndarray, *, covariance: str = "auto") -> float:
    """Frechet distance between Gaussians fitted to rows of ``a [N, D]`` and ``b [M, D]`` (the FID formula).

    ``||mu_a - mu_b||^2 + Tr(C_a) + Tr(C_b) - 2 Tr(sqrtm(C_a C_b))``. Needs at least ``MIN_FD_ROWS`` (2)
    rows per set (``EmoaugError`` otherwise). Covariance estimator:

    * ``"sample"``: unbiased sample covariance (ddof=1), the standard FID estimator; rank-deficient
      (but still valid in the formula) when a set has ``N <= D`` rows.
    * ``"shrunk"``: Ledoit-Wolf shrinkage (scikit-learn), well-conditioned for any ``N``.
    * ``"auto"`` (default): ``"sample"`` when both sets have more rows than dimensions, else
      ``"shrunk"`` for *both* sets (so the two are always estimated alike).

    The estimate is biased upwards for small samples: compare values at similar sample sizes
    (``assess_generated`` reports the real-vs-real floor ``fd_real`` next to each value).
    """
    a, b = _as_matrix(a), _as_matrix(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance: dimensions differ ({a.shape[1]} vs {b.shape[1]})")
    method = fd_covariance_method(len(a), len(b), a.shape[1], covariance)
    return frechet_from_gaussians(Gaussian.fit(a, method), Gaussian.fit(b, method))


def fd_covariance_method(n_a: int, n_b: int, dim: int, covariance: str = "auto") -> str:
    if covariance not in FD_COVARIANCES:
        raise ValueError(f"frechet_distance: covariance must be one of {FD_COVARIANCES}, got {covariance!r}")
    if covariance != "auto":
        return covariance
    return "sample" if min(n_a, n_b) > dim else "shrunk"


def frechet_from_gaussians(a: Gaussian, b: Gaussian) -> float:
    """The Frechet distance of two fitted Gaussians; a tiny negative result (rounding) is clipped to 0."""
    diff = a.mean - b.mean
    value = diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * trace_sqrt_product(a.cov, b.cov)
    return max(0.0, float(value))


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """``Tr(sqrtm(cov_a @ cov_b))`` for symmetric PSD matrices, computed without ``scipy.linalg.sqrtm``.

    ``cov_a @ cov_b`` is not symmetric, and sqrtm on it (the pytorch-fid route) can return complex
    values or fail when the covariances are singular, which then needs an eps on the diagonal. With
    ``S = sqrtm(cov_a)`` (symmetric, from ``eigh``), ``cov_a @ cov_b = S (S cov_b)`` and the symmetric
    PSD matrix ``S cov_b S = (S cov_b) S`` have the same eigenvalues ``l_i >= 0`` (XY and YX always
    do, singular or not), so the trace is ``sum sqrt(l_i)``. Only symmetric eigensolvers are used:
    the result is real by construction, singular covariances need no eps on the diagonal, and
    rounding negatives are clipped to 0.
    The tests check it against ``scipy.linalg.sqrtm`` on well-conditioned matrices.
    """
    values, vectors = np.linalg.eigh(_symmetric(cov_a))
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = _symmetric(root_a @ cov_b @ root_a)
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0.0, None)).sum())


def _symmetric(m: np.ndarray) -> np.ndarray:
    return (m + m.T) / 2.0


def _as_matrix(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"frechet_distance: embeddings must be [N, D], got shape {x.shape}")
    if len(x) < MIN_FD_ROWS:
        raise EmoaugError(f"frechet_distance: needs at least {MIN_FD_ROWS} rows per set, got {len(x)}")
    if not np.isfinite(x).all():
        raise EmoaugError("frechet_distance: embeddings contain NaN or inf")
    return x


# ------------------------------------------------------------------------------- judge accuracy
def judge_accuracy(judge: Judge, generated: FeatureSet,
                   labels: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """The judge's item-level WA/UA on generated items (intended emotion as truth).

    Returns ``{"overall": {"judge_wa", "judge_ua"}, <emotion>: {"judge_recall"}}``; per emotion the
    recall is the share of that emotion's generated items the judge recognises as it. ``labels``
    (default: ``generated.labels``) is passed explicitly to the metrics.
    """
    labels = list(labels if labels is not None else generated.labels)
    items = judge.predict_items(generated)
    scores = classification_metrics(items["y_true"], items["y_pred"], labels)
    recalls = per_class_recall(items["y_true"], items["y_pred"], labels)
    out: dict[str, dict[str, float]] = {label: {"judge_recall": r} for label, r in recalls.items() if not math.isnan(r)}
    out[OVERALL] = {"judge_wa": scores["wa"], "judge_ua": scores["ua"]}
    return out


# --------------------------------------------------------------------------------- memorisation
#: generated and held-out rows whose nearest neighbours are searched, at most (a seeded sample beyond): the
#: search is linear in the training rows for any corpus size, and medians and a 5th percentile of 2,000
#: distances are precise to well under a percent of their spread
MAX_NN_QUERIES = 2000


def memorisation(generated: np.ndarray, generated_y: np.ndarray, train: np.ndarray, heldout: np.ndarray,
                 heldout_y: np.ndarray, labels: Sequence[str], *, percentile: float = 5.0,
                 max_queries: int = MAX_NN_QUERIES) -> dict[str, dict[str, float]]:
    """Distance-to-closest-record check of generated rows against real training rows.

    Rows are flattened to vectors (mel rows on the [-1, 1] scale, or embeddings); distances are RMS
    differences. For each group (emotion of the generated/held-out row, and ``"overall"``):

    * ``nn_train``: median distance of a generated row to its nearest *training* row (all emotions);
    * ``nn_heldout``: median distance of a generated row to its nearest held-out row;
    * ``nn_baseline``: median distance of a *held-out* real row to its nearest training row, i.e. what
      an unseen real draw gets; the reference set (training rows) is the same as for ``nn_train``, so
      the comparison does not depend on how many training vs held-out rows there are;
    * ``nn_ratio = nn_train / nn_baseline``: about 1 when generated rows are as far from the training
      rows as new real data, << 1 when they are near-copies of training rows;
    * ``copy_fraction``: share of generated rows closer to a training row than the ``percentile``-th
      percentile of the held-out rows' distances (about ``percentile``/100 for new draws, about 1 for copies).

    Caveats: with speaker-independent folds the held-out rows come from unseen speakers, so a
    generator that keeps the training speakers (CycleGAN conversion, diffusion "enhance", VAE
    reconstruction, SpecAugment) scores < 1 by design; only for sampling from noise is a low ratio a
    sign of memorisation. Groups without held-out rows get NaN baselines.

    Beyond ``max_queries`` generated (or held-out) rows, a seeded sample of that many is searched against every
    training row (all of them: the nearest record must be searched for among all of them).
    """
    generated, generated_y = _sample_rows(generated, generated_y, max_queries)
    heldout, heldout_y = _sample_rows(heldout, heldout_y, max_queries)
    train = ReferenceBlocks(train)  # searched twice: converted once when small enough
    gen_to_train = nearest_distances(generated, train)
    gen_to_heldout = nearest_distances(generated, heldout) if len(heldout) else np.full(len(generated), np.nan)
    heldout_to_train = nearest_distances(heldout, train) if len(heldout) else np.zeros(0)
    out = {}
    for group, gen_mask, held_mask in _groups(generated_y, heldout_y, labels):
        out[group] = _nn_summary(gen_to_train[gen_mask], gen_to_heldout[gen_mask], heldout_to_train[held_mask],
                                 percentile)
    return out


def _nn_summary(gen_train: np.ndarray, gen_heldout: np.ndarray, baseline: np.ndarray,
                percentile: float) -> dict[str, float]:
    nn_train = float(np.median(gen_train))
    nn_baseline = float(np.median(baseline)) if len(baseline) else math.nan
    threshold = float(np.percentile(baseline, percentile)) if len(baseline) else math.nan
    return {
        "nn_train": nn_train,
        "nn_heldout": float(np.median(gen_heldout)),
        "nn_baseline": nn_baseline,
        "nn_ratio": nn_train / nn_baseline if nn_baseline > 0 else math.nan,
        "copy_fraction": float(np.mean(gen_train < threshold)) if len(baseline) else math.nan,
    }


def _sample_rows(x: np.ndarray, y: np.ndarray, at_most: int) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= at_most:
        return x, y
    keep = np.sort(np.random.default_rng(0).choice(len(x), size=at_most, replace=False))
    return (x.subset(keep) if isinstance(x, MelRows) else x[keep]), np.asarray(y)[keep]


def nearest_distances(query, reference, *, chunk: int = 256,
                      reference_chunk: int | None = None) -> np.ndarray:
    """RMS distance of each ``query`` row to its nearest ``reference`` row (rows flattened), ``[len(query)]``.

    ``query`` and ``reference`` are arrays or :class:`MelRows` (``reference`` also :class:`ReferenceBlocks`, to
    search one set for several query sets). Blocks are read (converted) and turned into float64 as they are used:
    memory holds one block of each, not a float64 copy of the sets (a fold of 128 x 173 rows is gigabytes in
    float64), except a reference set of at most KEEP_REFERENCE_BYTES, which is kept converted while it is
    searched. The blocks' sizes, and whether they are kept, do not change the result."""
    blocks = reference if isinstance(reference, ReferenceBlocks) else ReferenceBlocks(reference, reference_chunk)
    out = np.empty(len(query))
    for start in range(0, len(query), chunk):
        block = _f64(_flat(query[start:start + chunk]))
        block_sq = np.einsum("ij,ij->i", block, block)[:, None]
        best = np.full(len(block), np.inf)
        for part, part_sq in blocks:
            # |q - r|^2 = |q|^2 + |r|^2 - 2 q.r ; BLAS makes this fast, float64 keeps exact copies near 0
            sq = block_sq + part_sq[None, :] - 2.0 * block @ part.T
            best = np.minimum(best, sq.min(axis=1))
        out[start:start + chunk] = np.sqrt(np.maximum(best, 0.0))
    return out / math.sqrt(int(np.prod(query.shape[1:])))


#: reference rows searched at a time
REFERENCE_BLOCK_ROWS = 256
#: a reference set up to this size in float64 is converted once and kept while it is searched (a training fold of
#: the embedded corpus is 81 MiB; read again for every block of queries, its conversion was most of the search)
KEEP_REFERENCE_BYTES = 128 * 2**20


class ReferenceBlocks:
    """The rows of a reference set as float64 blocks of ``block_rows`` with their squared norms, in order; the
    blocks are kept when the set is at most KEEP_REFERENCE_BYTES in float64, else read again at each pass."""

    def __init__(self, reference, block_rows: int | None = None):
        if len(reference) == 0:
            raise ValueError("nearest_distances: empty reference set")
        self.reference, self.block_rows = reference, block_rows or REFERENCE_BLOCK_ROWS
        self.starts = range(0, len(reference), self.block_rows)
        keep = len(reference) * int(np.prod(reference.shape[1:])) * 8 <= KEEP_REFERENCE_BYTES
        self.kept: list[np.ndarray] | None = [] if keep else None
        self.squared = []
        for start in self.starts:
            block = self._read(start)
            self.squared.append(np.einsum("ij,ij->i", block, block))
            if self.kept is not None:
                self.kept.append(block)

    def _read(self, start: int) -> np.ndarray:
        return _f64(_flat(self.reference[start:start + self.block_rows]))

    def __iter__(self):
        for k, start in enumerate(self.starts):
            yield (self.kept[k] if self.kept is not None else self._read(start)), self.squared[k]


def _flat(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(len(x), int(np.prod(x.shape[1:])))


def _f64(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64, copy=False)


# ------------------------------------------------------------------------------------ diversity
def diversity(generated: np.ndarray, generated_y: np.ndarray, real: np.ndarray, real_y: np.ndarray,
              labels: Sequence[str], *, max_rows: int = 500, seed: int = 0) -> dict[str, float]:
    """Within-emotion spread of generated rows relative to real rows, per emotion and ``"overall"``.

    For emotion ``e``: mean RMS distance over all pairs of two different generated rows of ``e``,
    divided by the same over real (training) rows of ``e``. 1 = as diverse as real data, about 0 =
    mode collapse, > 1 = more spread than real (e.g. noise). A side with more than ``max_rows`` rows of
    an emotion is first subsampled to ``max_rows`` rows (seeded), which keeps the cost bounded while
    still averaging over ~125,000 pairs. NaN for an emotion with < 2 rows on either side; ``overall``
    is the unweighted mean of the per-emotion ratios (pooling emotions would mix in the spread
    *between* emotions).
    """
    rng = np.random.default_rng(seed)
    out = {}
    for k, label in enumerate(labels):
        gen_rows = _class_rows(generated, generated_y == k)
        if len(gen_rows) == 0:
            continue
        real_spread = mean_pairwise_distance(_class_rows(real, real_y == k), max_rows=max_rows, rng=rng)
        gen_spread = mean_pairwise_distance(gen_rows, max_rows=max_rows, rng=rng)
        out[label] = gen_spread / real_spread if real_spread > 0 else math.nan
    out[OVERALL] = _mean_or_nan(out.values())
    return out


def _class_rows(x: np.ndarray | MelRows, mask: np.ndarray) -> np.ndarray | MelRows:
    """``x[mask]``; of :class:`MelRows` a lazy subset, so that only the rows a measure samples are converted (a
    class of a large fold on the [-1, 1] scale is hundreds of MiB)."""
    return x.subset(np.flatnonzero(mask)) if isinstance(x, MelRows) else x[mask]


def mean_pairwise_distance(x: np.ndarray, *, max_rows: int = 500, rng: np.random.Generator | None = None) -> float:
    """Mean RMS distance over all pairs of different rows of ``x`` (at most ``max_rows`` rows, sampled)."""
    if len(x) < 2:
        return math.nan
    if len(x) > max_rows:
        rng = rng if rng is not None else np.random.default_rng(0)
        x = x[np.sort(rng.choice(len(x), size=max_rows, replace=False))]
    else:
        x = x[np.arange(len(x))]  # MelRows: converted here, the sample only
    flat = _f64(_flat(x))
    squared_norms = np.einsum("ij,ij->i", flat, flat)
    squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * flat @ flat.T
    upper = np.triu_indices(len(flat), k=1)
    return float(np.sqrt(np.maximum(squared[upper], 0.0)).mean() / math.sqrt(flat.shape[1]))


# ------------------------------------------------------------------------------------ entry point
def assess_generated(judge: Judge, generated: FeatureSet, real_train: FeatureSet, real_test: FeatureSet,
                     normaliser: Normaliser, labels: Sequence[str] | None = None, *, seed: int = 0,
                     max_rows: int = 500, copy_percentile: float = 5.0) -> pd.DataFrame:
    """Every quality measure of ``generated`` (module docstring) as a tidy frame.

    Columns: ``emotion`` (a label or ``"overall"``), ``measure``, ``value``, ``n_generated`` (generated
    rows behind the value). ``real_train`` must be the real training rows of the fold the generator was
    fitted on (the reference of MAD, the [-1, 1] scale, FD and memorisation), ``real_test`` held-out real
    rows of the same fold (memorisation baseline and the real-vs-real FD floor; they are measured on,
    never trained on), ``normaliser`` the fold's fitted normaliser, ``judge`` the fold's real-only
    classifier. ``seed`` only drives the row subsampling of the diversity measure.
    """
    labels = tuple(labels if labels is not None else generated.labels)
    _check_inputs(generated, real_train, real_test, labels)
    scale = MelScale.fit(real_train, normaliser)  # block by block: no dB copy of the training set is kept
    mel = {name: scale.view(fs, normaliser) for name, fs in
           (("gen", generated), ("train", real_train), ("test", real_test))}
    emb = {name: np.asarray(judge.embed(fs), dtype=np.float64) for name, fs in
           (("gen", generated), ("train", real_train), ("test", real_test))}
    y = {"gen": generated.y.numpy(), "train": real_train.y.numpy(), "test": real_test.y.numpy()}

    rows: list[tuple[str, str, float]] = []
    per_emotion_mad = _mad_arrays(mel["train"], y["train"], mel["gen"], y["gen"], labels)
    rows += [(e, "mad", v) for e, v in per_emotion_mad.items()]
    rows += [(OVERALL, "mad", _mean_or_nan(per_emotion_mad.values())),
             (OVERALL, "mad_sum", float(sum(per_emotion_mad.values())) if per_emotion_mad else math.nan)]
    rows += _frechet_rows(emb, y, labels)
    rows += _nested_rows(judge_accuracy(judge, generated, labels))
    for space, vectors in (("mel", mel), ("emb", emb)):
        nn = memorisation(vectors["gen"], y["gen"], vectors["train"], vectors["test"], y["test"], labels,
                          percentile=copy_percentile)
        rows += [(group, f"{measure}_{space}", value)
                 for group, values in nn.items() for measure, value in values.items()]
        spread = diversity(vectors["gen"], y["gen"], vectors["train"], y["train"], labels, max_rows=max_rows, seed=seed)
        rows += [(group, f"diversity_{space}", value) for group, value in spread.items()]
    return _tidy(rows, y["gen"], labels)


def _frechet_rows(emb: dict[str, np.ndarray], y: dict[str, np.ndarray], labels: Sequence[str]) -> list[tuple]:
    """FD generated-vs-train and held-out-vs-train per emotion and overall; NaN below ``MIN_FD_ROWS``."""
    fitted: dict[tuple[str, str, str], Gaussian] = {}  # the training side is shared by fd and fd_real

    def gaussian(name: str, group: str, method: str) -> Gaussian:
        if (name, group, method) not in fitted:
            mask = slice(None) if group == OVERALL else y[name] == labels.index(group)
            fitted[name, group, method] = Gaussian.fit(emb[name][mask], method)
        return fitted[name, group, method]

    def fd(name: str, group: str) -> float:
        n = len(y[name]) if group == OVERALL else int((y[name] == labels.index(group)).sum())
        n_train = len(y["train"]) if group == OVERALL else int((y["train"] == labels.index(group)).sum())
        if min(n, n_train) < MIN_FD_ROWS:
            return math.nan
        method = fd_covariance_method(n, n_train, emb[name].shape[1])
        return frechet_from_gaussians(gaussian(name, group, method), gaussian("train", group, method))

    groups = [group for group, _, _ in _groups(y["gen"], y["test"], labels)]
    pairs = (("fd", "gen"), ("fd_real", "test"))
    return [(group, measure, fd(name, group)) for group in groups for measure, name in pairs]


def _groups(gen_y: np.ndarray, other_y: np.ndarray, labels: Sequence[str]):
    """(group name, mask over generated rows, mask over other rows) per generated emotion, then overall."""
    for k, label in enumerate(labels):
        if (gen_y == k).any():
            yield label, gen_y == k, other_y == k
    yield OVERALL, np.ones(len(gen_y), bool), np.ones(len(other_y), bool)


def _nested_rows(values: dict[str, dict[str, float]]) -> list[tuple[str, str, float]]:
    return [(group, measure, value) for group, measures in values.items() for measure, value in measures.items()]


def _tidy(rows: list[tuple[str, str, float]], gen_y: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    counts = {label: int((gen_y == k).sum()) for k, label in enumerate(labels)}
    counts[OVERALL] = len(gen_y)
    frame = pd.DataFrame(rows, columns=["emotion", "measure", "value"])
    frame["value"] = frame["value"].astype(float)
    frame["n_generated"] = frame["emotion"].map(counts).astype(int)
    order = {name: i for i, name in enumerate([*labels, OVERALL])}
    frame = frame.sort_values("emotion", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return frame[list(COLUMNS)]


# ------------------------------------------------------------------------------------ checks
def _check_compatible(a: FeatureSet, b: FeatureSet) -> None:
    if a.labels != b.labels:
        raise ValueError(f"quality: label sets differ ({a.labels} vs {b.labels})")
    if (a.n_mels, a.n_frames) != (b.n_mels, b.n_frames):
        raise ValueError(f"quality: row shapes differ ({a.n_mels}x{a.n_frames} vs {b.n_mels}x{b.n_frames})")
    if len(a) == 0 or len(b) == 0:
        raise EmoaugError("quality: a real or generated set is empty")


def _check_inputs(generated: FeatureSet, real_train: FeatureSet, real_test: FeatureSet,
                  labels: tuple[str, ...]) -> None:
    _check_compatible(real_train, generated)
    same_shape = (real_test.n_mels, real_test.n_frames) == (real_train.n_mels, real_train.n_frames)
    if real_test.labels != real_train.labels or not same_shape:
        raise ValueError("quality: real_test does not match real_train (labels or row shape)")
    if labels != generated.labels:
        raise ValueError(f"quality: labels {labels} differ from the feature sets' {generated.labels}")


def _mean_or_nan(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan
