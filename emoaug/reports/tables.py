"""Paper-style tables from tidy result frames (Markdown, CSV, LaTeX)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from tabulate import tabulate

from ..stats import DEFAULT_ALPHA, DEFAULT_POWER

#: lists every rendered table (name, title, note) so that report.html can show them without re-rendering
TABLE_INDEX = "index.json"

SPLIT_DESCRIPTIONS = {
    "kfold": "speaker-independent grouped stratified {n_folds}-fold (no speaker in both train and test)",
    "loso": "speaker-independent leave-one-speaker-out",
    "paper": "SPEAKER-DEPENDENT random 8:2 split as in the paper (test speakers also seen in training)",
    "standard": "the corpus's standard speaker-independent protocol (leave-one-session-out where it has sessions, "
                "its release partitions where it has them, else grouped stratified {n_folds}-fold; split_audit.json "
                "says which)",
}


#: the flag every table of a --speaker-norm run carries
SPEAKER_NORM_NOTE = ("SPEAKER-NORMALISED (--speaker-norm): every speaker's rows and functionals were standardised "
                     "with that speaker's own statistics, which uses the test speakers' unlabelled audio; not "
                     "comparable with runs without it.")


def near_duplicates_note(test_items: int) -> str:
    """The flag every table of a run with --allow-near-duplicates carries when test items had near-copies."""
    return (f"NEAR-DUPLICATES ALLOWED (--allow-near-duplicates): {test_items} test item(s) have near-copies "
            "(dithered, re-gained, resampled, re-encoded or trimmed copies of one recording) in training or "
            "validation (split_audit.json lists them); their scores are inflated.")


def definitions_note(labels: Sequence[str], split: str, n_folds: int, n_seeds: int, *, cells: bool = True,
                     speaker_norm: bool = False, near_duplicates: int = 0) -> str:
    """The sentence every table carries: what WA and UA mean and how the split was made (and, with
    ``cells``, how the generator table's cells read; other tables say that themselves), flagged when the rows
    were speaker-normalised."""
    split_text = SPLIT_DESCRIPTIONS.get(split, split).format(n_folds=n_folds)
    cells_text = (f"Cells: pooled over all test folds (fold mean ± std over {n_folds} fold(s) x {n_seeds} "
                  "seed(s)). ") if cells else f"{n_folds} fold(s) x {n_seeds} seed(s). "
    return (
        "WA = overall accuracy (weighted accuracy); UA = unweighted mean of per-class recall over the "
        f"label set [{', '.join(labels)}]. {cells_text}Split: {split_text}."
        + (f" {SPEAKER_NORM_NOTE}" if speaker_norm else "")
        + (f" {near_duplicates_note(near_duplicates)}" if near_duplicates else "")
    )


def rate_cell(row: pd.Series, metric: str) -> str:
    """``pooled (fold mean ± std)`` in percent."""
    pooled, mean, std = row.get(metric), row.get(f"{metric}_fold_mean"), row.get(f"{metric}_fold_std")
    if pd.isna(pooled):
        return ""
    if pd.isna(std):
        return f"{100 * pooled:.1f}"
    return f"{100 * pooled:.1f} ({100 * mean:.1f} ± {100 * std:.1f})"


def number_cell(value, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


#: the header of every table's minimum-detectable-effect column
MDE_HEADER = f"MDE pp ({100 * DEFAULT_POWER:.0f} % power, α {DEFAULT_ALPHA:g})"
#: what the MDE column means, for the notes of every table that shows it
MDE_NOTE = (
    f"MDE = the smallest true mean difference that the paired t-test on these cells would find at α "
    f"{DEFAULT_ALPHA:g} (before Holm) with {100 * DEFAULT_POWER:.0f} % power, from the standard deviation of the "
    "per-cell differences: a non-significant difference rules out effects larger than the MDE, not effects in "
    "general (Wilcoxon, whose p is shown, has a little less power from 10 cells on and clearly less below). "
    "not reachable = with this few cells the exact Wilcoxon p can never fall below α (5 pairs: p >= 0.0625), so "
    "no effect size is ruled out."
)
QUALITY_NOTE = (
    "ΔUA = pooled UA minus pooled UA of `none` (percentage points). Paired ΔUA = mean over (seed, fold) "
    "cells of UA minus `none`'s UA in the same cell, with a bootstrap 95 % CI over cells, the two-sided "
    "Wilcoxon signed-rank p and Holm's correction across generators (p / p_Holm). " + MDE_NOTE + " "
    "MAD = mean absolute difference of per-emotion mean "
    "log-mel spectra on Malik et al.'s [-1, 1] scale (mean over emotions). FD = Frechet distance between "
    "generated and real training rows in the real-only classifier's embedding (in brackets: held-out real vs "
    "training, the floor at this sample size). Judge UA = that classifier's UA on generated items. "
    "NN ratio = median distance of generated rows to the nearest training row over that to the nearest "
    "held-out row (<< 1 suggests copies). Fit/sample times are means per fold."
)


#: how the classic reference row is named in every table
REFERENCE_LABEL = "classic (reference, real only)"


def reference_note(config) -> str:
    """What the classic row is, for the notes of every table that shows it (``config``: the run's RunConfig)."""
    from ..classifiers.classic import FEATURE_SETS, ClassicSettings

    feature_set = FEATURE_SETS.get(getattr(config, "reference", "compare"), FEATURE_SETS["compare"])
    per_speaker = "standardised per speaker, then " if getattr(config, "speaker_norm", False) else ""
    return (f"classic = the real-only reference: openSMILE {feature_set} functionals, {per_speaker}standardised on "
            f"the training speakers, RBF SVM ({ClassicSettings().rule()}; reference_folds.json says which per "
            "fold) trained on the same training speakers of each fold as the network, with "
            "C chosen on the validation speakers (folds without any: by cross-validation grouped by training speaker); "
            "deterministic, so the same predictions for every seed; its ΔUA compares it with none's network on "
            "the same cells.")


def generator_table(generators: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Wide table from ``emoaug.bench.aggregate.generator_summary``: the reference row (when given), then one
    row per generator."""
    rows = []
    if reference is not None and not reference.empty:
        rows.append({**_generator_row(reference.iloc[0]), "generator": REFERENCE_LABEL})
    rows += [_generator_row(row) for _, row in generators.iterrows()]
    return pd.DataFrame(rows)


def _generator_row(row: pd.Series) -> dict:
    fd = number_cell(row.get("fd"), ".3g")
    if fd and not pd.isna(row.get("fd_real")):
        fd += f" ({row['fd_real']:.3g})"
    return {
        "generator": row["generator"],
        "WA %": rate_cell(row, "wa"),
        "UA %": rate_cell(row, "ua"),
        "macro-F1 %": rate_cell(row, "macro_f1"),
        "ΔUA pp": number_cell(100 * row["delta_ua_vs_none"], "+.1f") if "delta_ua_vs_none" in row else "",
        "paired ΔUA pp [95% CI]": _paired(row),
        "p / p_Holm": _p_values(row),
        MDE_HEADER: mde_cell(row.get("ua_mde"), row.get("ua_paired_diff")),
        "MAD": number_cell(row.get("mad"), ".4f"),
        "FD (real)": fd,
        "judge UA %": number_cell(100 * row["judge_ua"], ".1f") if "judge_ua" in row else "",
        "NN ratio": number_cell(row.get("nn_ratio_emb"), ".2f"),
        "fit s": number_cell(row.get("generator_fit_s"), ".1f"),
        "sample s": number_cell(row.get("generate_s"), ".1f"),
        "items/s": number_cell(row.get("items_per_s"), ".0f"),
    }


def _paired(row: pd.Series) -> str:
    return paired_cell(row.get("ua_paired_diff"), row.get("ua_ci_low"), row.get("ua_ci_high"))


def _p_values(row: pd.Series) -> str:
    return p_cell(row.get("ua_p"), row.get("ua_p_holm"))


def paired_cell(diff, low, high) -> str:
    """A paired difference (a fraction) as ``+1.2 [-0.3, +2.7]`` in percentage points."""
    if diff is None or pd.isna(diff):
        return ""
    interval = "" if low is None or pd.isna(low) else f" [{100 * low:+.1f}, {100 * high:+.1f}]"
    return f"{100 * diff:+.1f}{interval}"


def mde_cell(mde, diff) -> str:
    """A minimum detectable effect (a fraction) in percentage points: empty where there is no comparison,
    ``—`` where the comparison has no MDE (results written before it existed, or a single pair) and
    ``not reachable`` where no effect could be significant (:func:`emoaug.stats.detectable_effect`)."""
    if diff is None or pd.isna(diff):
        return ""
    if mde is None or pd.isna(mde):
        return "—"
    return "not reachable" if math.isinf(mde) else f"{100 * mde:.1f}"


def p_cell(p, p_holm) -> str:
    """``p / p_Holm`` to three significant digits."""
    return "" if p is None or pd.isna(p) else f"{p:.3g} / {p_holm:.3g}"


CURVE_NOTE = (
    "Synthetic-ratio curve: each ratio (synthetic rows per real training row) is its own set of cells; the "
    "generator is fit once per (fold, seed) and sampled for every ratio, and ratio 0 is `none`, the real-only "
    "classifier of the same cells. UA % = mean ± std over (seed, fold) cells. Paired ΔUA = mean over cells of "
    "UA minus `none`'s UA in the same cell, bootstrap 95 % CI, two-sided Wilcoxon p and Holm's correction over "
    "every (generator, ratio) point of the arm (p / p_Holm). " + MDE_NOTE
)


def ratio_curve_table(curve: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, generator, ratio) from ``emoaug.bench.curve.ratio_curve``."""
    rows = []
    for _, row in curve.iterrows():
        std = "" if pd.isna(row["ua_fold_std"]) else f" ± {100 * row['ua_fold_std']:.1f}"
        rows.append({"arm": row["arm"], "generator": row["generator"], "ratio": f"{row['synthetic_ratio']:g}",
                     "synthetic rows": number_cell(row["n_synthetic_rows"], ".0f"), "cells": str(int(row["n_cells"])),
                     "UA %": f"{100 * row['ua_fold_mean']:.1f}{std}", "WA %": number_cell(100 * row["wa_fold_mean"], ".1f"),
                     "paired ΔUA pp [95% CI]": paired_cell(row["ua_paired_diff"], row["ua_ci_low"], row["ua_ci_high"]),
                     "p / p_Holm": p_cell(row["ua_p"], row["ua_p_holm"]),
                     MDE_HEADER: mde_cell(row.get("ua_mde"), row["ua_paired_diff"])})
    table = pd.DataFrame(rows)
    if not table.empty and set(table["arm"]) == {"main"}:
        table = table.drop(columns="arm")
    return table


def to_markdown(table: pd.DataFrame, title: str, note: str) -> str:
    body = tabulate(table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
    return f"### {title}\n\n{body}\n\n{note}\n"


def to_text(table: pd.DataFrame, title: str, note: str) -> str:
    body = tabulate(table, headers="keys", tablefmt="simple", showindex=False, disable_numparse=True)
    return f"{title}\n{body}\n{note}\n"


def to_latex(table: pd.DataFrame, title: str, note: str) -> str:
    body = tabulate(table, headers="keys", tablefmt="latex_booktabs", showindex=False, disable_numparse=True)
    return f"% {title}\n% {note}\n{body}\n"
