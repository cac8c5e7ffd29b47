"""Kim & Lee (2024) Tables 5-12 and Malik et al. (2023) Tables 1-3 from stored result frames.

Every builder reads the runner's tidy frames (``summary``: one row per (generator, arm, metric);
confusions per (generator, arm)) and the shipped reference tables, and returns a frame of display
strings; nothing is recomputed from predictions. The paper's values appear beside ours, with the
difference, only when our corpus is the one the paper measured.

Which arm stands for the paper's "generated" condition (``generated_arm``): the judge on test utterances
enhanced under their true emotion when the generator can transform rows (Kim & Lee's protocol), else the
judge on class-conditional samples. The leak-free variant (enhanced under the judge's own prediction)
gets its own rows and tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from ..bench.arms import (CLARITY_PREDICTED, CLARITY_SAMPLED, CLARITY_TRUE, CROSS, CROSS_SYNTHETIC_ONLY, MAIN,
                            SYNTHETIC_ONLY)
from .reference import malik2023_table01, reference_table
from ..classifiers.classic import REFERENCE_NAME
from .tables import MDE_HEADER, MDE_NOTE, REFERENCE_LABEL, mde_cell, p_cell, paired_cell, reference_note

BASELINE = "none"
#: our corpus name -> the dataset name in Kim & Lee's tables
KIM_DATASETS = {"emodb": "EmoDB", "ravdess": "RAVDESS"}
#: Kim & Lee table numbers per layout: RAVDESS has its own; every other corpus uses EmoDB's
KIM_NUMBERS = {"ravdess": {"original": "06", "generated": "07", "delta": "11"},
               "emodb": {"original": "08", "generated": "09", "delta": "10"}}
KIM_REFERENCE = {"06": "kim2024_table06_confusion_ravdess", "07": "kim2024_table07_confusion_ravdess_generated",
                 "08": "kim2024_table08_confusion_emodb", "09": "kim2024_table09_confusion_emodb_generated",
                 "10": "kim2024_table10_delta_vs_dcgan_emodb", "11": "kim2024_table11_delta_vs_dcgan_ravdess"}
#: Malik et al.'s tables are on IEMOCAP (cross-corpus: tested on MSP-IMPROV)
MALIK_CORPUS = "iemocap"
MALIK_CROSS_TEST_CORPUS = "msp-improv"
#: our generator -> the study of Malik et al.'s Tables 2-3 using the same kind of model
MALIK_STUDY = {"diffusion": "Malik et al. (IDDPM+BERT)", "cyclegan": "Bao et al. (CycleGAN)",
               "dcgan": "Sahu et al. (conditional GAN)"}
ARM_DESCRIPTIONS = {
    CLARITY_TRUE: "test utterances enhanced under their true emotion (paper protocol; the label reaches the judge)",
    CLARITY_PREDICTED: "test utterances enhanced under the judge's prediction (leak-free)",
    CLARITY_SAMPLED: "class-conditional samples, as many per class as the test fold (cannot enhance)",
}


@dataclass
class Table:
    name: str
    title: str
    note: str
    frame: pd.DataFrame


# ---------------------------------------------------------------------------- reading the frames
def metric(summary: pd.DataFrame, generator: str, arm: str, name: str) -> pd.Series | None:
    """The summary row (pooled, fold_mean, fold_std) of one metric, or None when that arm did not run."""
    hit = summary[(summary["generator"] == generator) & (summary["arm"] == arm) & (summary["metric"] == name)]
    return None if hit.empty else hit.iloc[0]


def arms_of(summary: pd.DataFrame, generator: str) -> set[str]:
    return set(summary.loc[summary["generator"] == generator, "arm"])


def generated_arm(summary: pd.DataFrame, generator: str) -> str | None:
    arms = arms_of(summary, generator)
    return CLARITY_TRUE if CLARITY_TRUE in arms else CLARITY_SAMPLED if CLARITY_SAMPLED in arms else None


def generating(summary: pd.DataFrame) -> list[str]:
    return [g for g in dict.fromkeys(summary["generator"]) if g != BASELINE]


def chosen_generator(summary: pd.DataFrame, baseline: str | None) -> str | None:
    """The generator of Kim & Lee's single-generator tables: the first in run order other than ``none``
    and the baseline (the baseline itself when it is the only one)."""
    candidates = generating(summary)
    others = [g for g in candidates if g != baseline]
    return others[0] if others else candidates[0] if candidates else None


def percent(value) -> str:
    return "" if value is None or pd.isna(value) else f"{100 * value:.1f}"


def rate(row: pd.Series | None) -> str:
    """``fold mean ± std`` in percent (the std is over (seed, fold) cells)."""
    if row is None:
        return ""
    if pd.isna(row["fold_std"]):
        return percent(row["fold_mean"])
    return f"{100 * row['fold_mean']:.1f} ± {100 * row['fold_std']:.1f}"


def signed(value) -> str:
    return "" if value is None or pd.isna(value) else f"{value:+.1f}"


def paired(comparisons: pd.DataFrame | None, generator: str, arm: str, name: str) -> dict[str, str]:
    """The stored paired comparison with ``none`` (emoaug.bench.aggregate.arm_comparisons) as three cells:
    ``mean [95 % CI]`` in pp, ``p / p_Holm`` and the minimum detectable effect in pp (``—`` for comparisons
    stored before it existed); empty when it was not computed."""
    empty = {"diff": "", "p": "", "mde": ""}
    if comparisons is None or comparisons.empty:
        return empty
    hit = comparisons[(comparisons["generator"] == generator) & (comparisons["arm"] == arm)
                      & (comparisons["metric"] == name)]
    if hit.empty:
        return empty
    row = hit.iloc[0]
    return {"diff": paired_cell(row["mean_diff"], row["ci_low"], row["ci_high"]),
            "p": p_cell(row["p_value"], row["p_holm"]), "mde": mde_cell(row.get("mde"), row["mean_diff"])}


# ---------------------------------------------------------------------------- Kim & Lee
def kim_table05(summary: pd.DataFrame, corpus: str, comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    """WA/UA of the real-only judge on the original test utterances and on their generated versions."""
    dataset = KIM_DATASETS.get(corpus)
    paper = reference_table("kim2024_table05_wa_ua").set_index(["dataset", "condition"]) if dataset else None
    rows = [("original", "real test utterances", BASELINE, MAIN)]
    for generator in generating(summary):
        for arm in (CLARITY_TRUE, CLARITY_PREDICTED, CLARITY_SAMPLED):
            if arm in arms_of(summary, generator):
                rows.append(("generated", ARM_DESCRIPTIONS[arm], generator, arm))
    out = []
    for condition, what, generator, arm in rows:
        wa, ua = metric(summary, generator, arm, "wa"), metric(summary, generator, arm, "ua")
        if wa is None:
            continue
        row = {"condition": condition, "generator": generator, "judge scores": what,
               "WA %": rate(wa), "UA %": rate(ua)}
        if comparisons is not None:
            versus = paired(comparisons, generator, arm, "ua")
            row.update({"paired ΔUA pp vs original [95% CI]": versus["diff"], "p / p_Holm": versus["p"],
                        MDE_HEADER: versus["mde"]})
        if paper is not None:
            published = paper.loc[(dataset, condition)]
            row.update({"paper WA %": f"{published['wa_pct']:.1f}", "paper UA %": f"{published['ua_pct']:.1f}",
                        "Δ WA pp": signed(100 * wa["fold_mean"] - published["wa_pct"]),
                        "Δ UA pp": signed(100 * ua["fold_mean"] - published["ua_pct"])})
        out.append(row)
    return pd.DataFrame(out)


def confusion_table(ours: pd.DataFrame, paper: pd.DataFrame | None) -> pd.DataFrame:
    """Rows true, columns predicted; each cell ``ours`` or, with the paper, ``ours vs paper (Δ)``."""
    out = pd.DataFrame(index=ours.index, columns=ours.columns, dtype=object)
    for true in ours.index:
        for predicted in ours.columns:
            value = ours.loc[true, predicted]
            text = "" if pd.isna(value) else f"{value:.1f}"
            if paper is not None and text and true in paper.index and predicted in paper.columns:
                published = paper.loc[true, predicted]
                text = f"{text} vs {published:.1f} ({value - published:+.1f})"
            out.loc[true, predicted] = text
    return out.reset_index(names="true \\ predicted")


def kim_confusions(confusions: Mapping[tuple[str, str], pd.DataFrame], summary: pd.DataFrame, corpus: str,
                   baseline: str | None) -> list[Table]:
    """Tables 6-9 (original and generated confusion) and 10-11 (chosen minus baseline, pp)."""
    numbers = KIM_NUMBERS.get(corpus, KIM_NUMBERS["emodb"])
    layout = "RAVDESS" if corpus == "ravdess" else "EmoDB"
    with_paper = corpus in KIM_NUMBERS

    def paper(number: str) -> pd.DataFrame | None:
        return reference_table(KIM_REFERENCE[number]).set_index("true") if with_paper else None

    def name(number: str) -> str:
        return f"kim2024_table{number}"

    tables = []
    original = confusions.get((BASELINE, MAIN))
    if original is not None:
        number = numbers["original"]
        tables.append(Table(name(number), f"Kim & Lee (2024) Table {int(number)} layout ({layout} in the paper): "
                            f"confusion on original {corpus} test utterances (real-only judge), %",
                            CONFUSION_NOTE, confusion_table(original, paper(number))))
    chosen = chosen_generator(summary, baseline)
    arm = generated_arm(summary, chosen) if chosen else None
    if arm is None or (chosen, arm) not in confusions:
        return tables
    number = numbers["generated"]
    tables.append(Table(name(number), f"Kim & Lee (2024) Table {int(number)} layout ({layout} in the paper): "
                        f"confusion on {chosen}-generated {corpus} utterances (real-only judge), %",
                        f"{CONFUSION_NOTE} Generated = {ARM_DESCRIPTIONS[arm]}.",
                        confusion_table(confusions[(chosen, arm)], paper(number))))
    if (chosen, CLARITY_PREDICTED) in confusions:
        tables.append(Table(f"{name(number)}_leakfree", f"Table {int(number)} without the label leak: {chosen} "
                            f"enhancing {corpus} test utterances under the judge's prediction, %",
                            f"{CONFUSION_NOTE} Generated = {ARM_DESCRIPTIONS[CLARITY_PREDICTED]}.",
                            confusion_table(confusions[(chosen, CLARITY_PREDICTED)], None)))
    base_arm = generated_arm(summary, baseline) if baseline else None
    if base_arm is not None and baseline != chosen and (baseline, base_arm) in confusions:
        number = numbers["delta"]
        delta = confusions[(chosen, arm)] - confusions[(baseline, base_arm)]
        tables.append(Table(name(number), f"Kim & Lee (2024) Table {int(number)} layout ({layout} in the paper): "
                            f"{chosen} minus {baseline} per cell of the generated-utterance confusion, pp",
                            f"{CONFUSION_NOTE} Each cell: the {chosen} table minus the {baseline} table in percentage "
                            f"points. {chosen}: {ARM_DESCRIPTIONS[arm]}; {baseline}: {ARM_DESCRIPTIONS[base_arm]}.",
                            _signed_confusion(delta, paper(number))))
    return tables


def _signed_confusion(delta: pd.DataFrame, paper: pd.DataFrame | None) -> pd.DataFrame:
    table = confusion_table(delta, paper)
    return table.apply(lambda col: col.map(_with_plus) if col.name != "true \\ predicted" else col)


def _with_plus(text: str) -> str:
    return text if not text or text.startswith("-") else f"+{text}"


CONFUSION_NOTE = ("Rows = true emotion, columns = predicted, each row in percent of that row's items, pooled over "
                  "all test folds and seeds. With the paper: `ours vs paper (ours - paper)`; Kim & Lee's "
                  "published rows do not all sum to 100 %.")


def kim_table12(summary: pd.DataFrame, corpus: str, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Accuracy and weighted precision/recall/F1 of the classifier trained on real (+ generated) rows, after
    the classic reference's row when ``reference`` (its summary rows) is given."""
    dataset = KIM_DATASETS.get(corpus)
    paper = reference_table("kim2024_table12_classification_metrics").set_index("dataset") if dataset else None
    names = {"accuracy": "wa", "precision": "weighted_precision", "recall": "weighted_recall",
             "f1": "weighted_f1"}
    out = []
    if reference is not None and not reference.empty:
        values = {key: metric(reference, REFERENCE_NAME, MAIN, m) for key, m in names.items()}
        if values["accuracy"] is not None:
            out.append({"trained on": f"{corpus}: {REFERENCE_LABEL}",
                        **{key: f"{value['fold_mean']:.4f}" for key, value in values.items()}})
    for generator in dict.fromkeys(summary["generator"]):
        values = {key: metric(summary, generator, MAIN, m) for key, m in names.items()}
        if values["accuracy"] is None:
            continue
        row = {"trained on": corpus if generator == BASELINE else f"{corpus}+{generator}"}
        row.update({key: f"{value['fold_mean']:.4f}" for key, value in values.items()})
        if paper is not None and generator != BASELINE:
            published = paper.loc[f"{dataset}+generated"]
            for key, value in values.items():
                row[f"paper {key}"] = f"{published[key]:.4f}"
                row[f"Δ {key}"] = f"{value['fold_mean'] - published[key]:+.4f}"
        out.append(row)
    return pd.DataFrame(out).fillna("")  # the real-only row has no paper counterpart


# ---------------------------------------------------------------------------- Malik et al.
def malik_arms_table(summary: pd.DataFrame, real_arm: str, syn_arm: str, both_arm: str, reference: str | None,
                     improvement: bool, comparisons: pd.DataFrame | None = None,
                     classic: pd.DataFrame | None = None) -> pd.DataFrame:
    """UA of real-only, synthetic-only and real+synthetic classifiers per generator (fold mean and std, %);
    the classic reference's real-only UA first when ``classic`` (its summary rows) is given; the paper's rows
    follow ours when ``reference`` (a shipped table) is given."""
    real = metric(summary, BASELINE, real_arm, "ua")
    if real is None:  # nothing to compare with (the runner always runs none, so only for partial frames)
        return pd.DataFrame()
    out = []
    classic_ua = metric(classic, REFERENCE_NAME, MAIN, "ua") if classic is not None and not classic.empty else None
    if classic_ua is not None:
        out.append({"source": "reference", "generator / study": REFERENCE_LABEL,
                    "real": percent(classic_ua["fold_mean"]), "real std": percent(classic_ua["fold_std"])})
    for generator in generating(summary):
        syn, both = metric(summary, generator, syn_arm, "ua"), metric(summary, generator, both_arm, "ua")
        if both is None:
            continue
        row = {"source": "ours", "generator / study": generator,
               "real": percent(real["fold_mean"]), "real std": percent(real["fold_std"]),
               "syn": percent(syn["fold_mean"]) if syn is not None else "",
               "syn std": percent(syn["fold_std"]) if syn is not None else "",
               "real+syn": percent(both["fold_mean"]), "real+syn std": percent(both["fold_std"])}
        if improvement:
            row["improvement pp"] = signed(100 * (both["fold_mean"] - real["fold_mean"]))
            versus = paired(comparisons, generator, both_arm, "ua")
            row.update({"paired improvement [95% CI]": versus["diff"], "p / p_Holm": versus["p"],
                        MDE_HEADER: versus["mde"]})
        out.append(row)
    if reference is None:
        return pd.DataFrame(out).fillna("")  # the reference row has no synthetic columns
    paper = reference_table(reference).set_index("study")
    for row in out:
        study = MALIK_STUDY.get(row["generator / study"])
        if study in paper.index:
            row["Δ real+syn vs paper pp"] = signed(float(row["real+syn"]) - paper.loc[study, "real_syn"])
            row["compared with"] = study
    for study, published in paper.iterrows():
        row = {"source": "paper", "generator / study": study}
        for column in ("real", "real_std", "syn", "syn_std", "real_syn", "real_syn_std"):
            row[column.replace("_syn", "+syn").replace("_std", " std")] = _plain(published[column])
        if improvement and "improvement" in published.index:  # Table 3's reference does not report it
            row["improvement pp"] = signed(published["improvement"])
        out.append(row)
    return pd.DataFrame(out).fillna("")


def _four_decimals(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers as fixed 4-decimal strings (MAD values are ~1e-2)."""
    return table.apply(lambda col: col.map(lambda v: ("" if pd.isna(v) else f"{v:.4f}") if isinstance(v, float) else v))


def _plain(value) -> str:
    return "" if pd.isna(value) else f"{value:.2f}"


def malik_table02(summary: pd.DataFrame, corpus: str, comparisons: pd.DataFrame | None = None,
                  classic: pd.DataFrame | None = None) -> pd.DataFrame:
    reference = "malik2023_table02_iemocap_uar" if corpus == MALIK_CORPUS else None
    return malik_arms_table(summary, MAIN, SYNTHETIC_ONLY, MAIN, reference, improvement=True,
                            comparisons=comparisons, classic=classic)


def malik_table03(summary: pd.DataFrame, corpus: str, test_corpus: str,
                  comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    matches = corpus == MALIK_CORPUS and test_corpus == MALIK_CROSS_TEST_CORPUS
    reference = "malik2023_table03_cross_corpus_uar" if matches else None
    return malik_arms_table(summary, CROSS, CROSS_SYNTHETIC_ONLY, CROSS, reference, improvement=True,
                            comparisons=comparisons)


MAD_NOTE = ("MAD = mean absolute difference between the mean log-mel spectrum of generated and of real training "
            "rows of each emotion on Malik et al.'s [-1, 1] scale (the training fold's dB min/max); total = sum "
            "over emotions as in Malik et al. (2023) Table 1; mean over (seed, fold) cells. Paper values "
            "(IEMOCAP) are shown only for the same corpus.")
MALIK_NOTE = ("UA (= UAR) in percent: mean and std over (seed, fold) cells. real = classifier trained on real "
              "training speakers only; syn = trained on synthetic rows only (same size and class proportions as "
              "the real training fold); real+syn = trained on both; improvement = real+syn minus real. Paper rows "
              "(IEMOCAP, leave-one-speaker-out) are shown only for the same corpus; Δ compares ours with the study "
              "using the same kind of model. Paired improvement: mean over (seed, fold) cells of real+syn minus "
              "real in the same cell, bootstrap 95 % CI, Wilcoxon signed-rank p and Holm's correction across "
              "generators. " + MDE_NOTE)

MALIK03_NOTE = (MALIK_NOTE + " Cross-corpus: the classifier of every (seed, fold) cell, trained on the training "
                "corpus's fold, also scores every item of the test corpus (both corpora cut to the emotions they "
                "share); no test-corpus item is used for training or model selection. Malik et al. trained on "
                "IEMOCAP and split MSP-IMPROV into 30 % development and 70 % test: their rows are on 70 % of "
                "MSP-IMPROV, ours on all of it.")


def paper_tables(result) -> tuple[list[Table], list[str]]:
    """Every Kim & Lee / Malik table that applies to ``result`` (emoaug.bench.results.RunResult), and a
    line for each that does not, saying why."""
    config, summary = result.experiment, result.summary
    comparisons = getattr(result, "comparisons", None)
    classic = getattr(result, "reference_summary", None)
    with_classic = ""  # the notes of tables that show the reference row say what it is
    if classic is not None and not classic.empty:
        with_classic = " " + reference_note(config)
    corpus = config.corpus
    protocols = set(config.protocols or ())
    confusions = {**{(g, MAIN): c for g, c in result.confusions.items()}, **result.arm_confusions}
    tables, skipped = [], []
    quality = result.quality
    if not quality.empty and (quality["measure"] == "mad").any():
        tables.append(Table("malik2023_table01", f"Malik et al. (2023) Table 1 layout: MAD per emotion on {corpus}",
                            MAD_NOTE, _four_decimals(malik2023_table01(quality, corpus, result.labels))))
    has_generated = bool(generating(summary))
    clarity_ran = any(generated_arm(summary, g) for g in generating(summary))
    if clarity_ran:
        tables.append(Table("kim2024_table05", f"Kim & Lee (2024) Table 5 layout: WA/UA on original vs generated "
                            f"{corpus} test utterances (real-only judge)", KIM05_NOTE,
                            kim_table05(summary, corpus, comparisons)))
    else:
        skipped.append("kim2024_table05, 07/09, 10/11: need --protocol clarity and a generator other than none")
    tables += kim_confusions(confusions, summary, corpus, config.baseline_generator)
    if clarity_ran and not any(t.name in ("kim2024_table10", "kim2024_table11") for t in tables):
        skipped.append(f"kim2024_table10/11: need the baseline generator ({config.baseline_generator or 'off'}) "
                       "and another generator in --gen")
    if has_generated:
        tables.append(Table("kim2024_table12", f"Kim & Lee (2024) Table 12 layout: classifier trained on {corpus} "
                            "(+ generated), tested on held-out real speakers", KIM12_NOTE + with_classic,
                            kim_table12(summary, corpus, classic)))
    if has_generated and "augment" in protocols:
        tables.append(Table("malik2023_table02", f"Malik et al. (2023) Table 2 layout: UA of real / synthetic / "
                            f"real+synthetic training on {corpus}", MALIK_NOTE + with_classic,
                            malik_table02(summary, corpus, comparisons, classic)))
    else:
        skipped.append("malik2023_table02: needs --protocol augment and a generator other than none")
    if has_generated and config.test_corpus:
        tables.append(Table("malik2023_table03", f"Malik et al. (2023) Table 3 layout: cross-corpus UA, trained "
                            f"on {corpus}, tested on {config.test_corpus}", MALIK03_NOTE,
                            malik_table03(summary, corpus, config.test_corpus, comparisons)))
    else:
        skipped.append("malik2023_table03: needs --test-corpus (cross-corpus protocol)")
    return tables, skipped


KIM05_NOTE = ("The judge is the real-only classifier of each fold and seed. original = its WA/UA on the held-out "
              "real test utterances; generated = its WA/UA on generated versions of them, made by a generator fit "
              "on the training speakers only, scored against the true emotion. Cells: mean ± std over (seed, "
              "fold) cells; Δ = ours (mean) minus paper. Paired ΔUA: the same judge's UA on generated minus "
              "original utterances per (seed, fold) cell, bootstrap 95 % CI, Wilcoxon p, Holm across generators. "
              + MDE_NOTE + " "
              "Kim & Lee enhanced under the true emotion, which passes the label into the input the judge scores; "
              "the predicted-label rows do not. The paper's numbers come from a random 8:2 split (speakers in "
              "both train and test); compare with --split paper before reading Δ as a protocol effect.")
KIM12_NOTE = ("accuracy = WA; precision, recall and F1 are support-weighted averages over the label set (so "
              "recall = accuracy, as in the paper); mean over (seed, fold) cells. Paper: Kim & Lee's "
              "EmoDB/RAVDESS + generated data, evaluated on an 8:2 split of their data.")
