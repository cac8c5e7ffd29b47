"""Kim & Lee Tables 5-12 and Malik et al. Tables 2-3 from hand-built result frames (no run needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from emoaug import metrics
from emoaug.config import Experiment
from emoaug.reports.paper_tables import (chosen_generator, confusion_table, kim_confusions, kim_table05,
                                         kim_table12, malik_table02, malik_table03, paper_tables)
from emoaug.reports.reference import reference_table
from emoaug.reports.tables import MDE_HEADER

LABELS = ("neutral", "happy", "sad", "angry", "fear", "disgust")


def summary_rows(generator: str, arm: str, values: dict[str, tuple[float, float]]) -> list[dict]:
    """One summary row per metric: (fold mean, fold std); pooled set to the mean."""
    return [{"generator": generator, "arm": arm, "metric": m, "pooled": mean, "fold_mean": mean, "fold_std": std,
             "n_folds": 5} for m, (mean, std) in values.items()]


def hand_summary() -> pd.DataFrame:
    rows = summary_rows("none", "main", {"wa": (0.60, 0.05), "ua": (0.55, 0.04), "weighted_precision": (0.61, 0.0),
                                         "weighted_recall": (0.60, 0.0), "weighted_f1": (0.59, 0.0)})
    rows += summary_rows("dcgan", "main", {"wa": (0.62, 0.03), "ua": (0.58, 0.02), "weighted_precision": (0.63, 0.0),
                                           "weighted_recall": (0.62, 0.0), "weighted_f1": (0.60, 0.0)})
    rows += summary_rows("dcgan", "synthetic_only", {"ua": (0.30, 0.06)})
    rows += summary_rows("dcgan", "clarity_sampled", {"wa": (0.20, 0.01), "ua": (0.21, 0.01)})
    rows += summary_rows("diffusion", "main", {"wa": (0.65, 0.02), "ua": (0.60, 0.03),
                                               "weighted_precision": (0.66, 0.0), "weighted_recall": (0.65, 0.0),
                                               "weighted_f1": (0.64, 0.0)})
    rows += summary_rows("diffusion", "synthetic_only", {"ua": (0.40, 0.05)})
    rows += summary_rows("diffusion", "clarity_true_label", {"wa": (0.90, 0.02), "ua": (0.88, 0.03)})
    rows += summary_rows("diffusion", "clarity_predicted_label", {"wa": (0.58, 0.02), "ua": (0.52, 0.03)})
    return pd.DataFrame(rows)


def test_table05_puts_the_paper_beside_ours_only_for_its_corpus():
    table = kim_table05(hand_summary(), "emodb").set_index(["condition", "generator", "judge scores"])
    original = table.xs("original", level="condition").iloc[0]
    assert original["WA %"] == "60.0 ± 5.0" and original["UA %"] == "55.0 ± 4.0"
    assert original["paper WA %"] == "82.1" and original["Δ WA pp"] == "-22.1"  # 60.0 - 82.1
    generated = table.xs("generated", level="condition")
    assert len(generated) == 3  # dcgan samples; diffusion true-label and predicted-label enhancement
    enhanced = generated.loc[("diffusion", generated.index[1][1])]
    assert "true emotion" in generated.index[1][1] and enhanced["UA %"] == "88.0 ± 3.0"
    assert enhanced["Δ UA pp"] == "-3.6"  # 88.0 - 91.6 (EmoDB, generated)
    ravdess = kim_table05(hand_summary(), "ravdess")
    assert ravdess.iloc[0]["paper UA %"] == "65.1"
    assert "paper WA %" not in kim_table05(hand_summary(), "synthetic").columns


def test_confusion_table_cells_show_ours_paper_and_difference():
    ours = pd.DataFrame([[90.0, 10.0], [25.0, 75.0]], index=pd.Index(["neutral", "happy"], name="true"),
                        columns=["neutral", "happy"])
    paper = pd.DataFrame([[96.9, 8.4], [0.4, 78.8]], index=pd.Index(["neutral", "happy"], name="true"),
                         columns=["neutral", "happy"])
    table = confusion_table(ours, paper).set_index("true \\ predicted")
    assert table.loc["neutral", "neutral"] == "90.0 vs 96.9 (-6.9)"
    assert table.loc["happy", "neutral"] == "25.0 vs 0.4 (+24.6)"
    assert confusion_table(ours, None).set_index("true \\ predicted").loc["happy", "happy"] == "75.0"


def confusion_of(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    true, pred = zip(*pairs)
    return metrics.confusion_percent(list(true), list(pred), LABELS)


def test_tables_08_to_10_on_emodb_use_the_emodb_paper_tables_and_subtract_the_baseline():
    every_label_right = [(label, label) for label in LABELS]
    confusions = {("none", "main"): confusion_of(every_label_right),
                  ("diffusion", "clarity_true_label"): confusion_of(every_label_right),
                  ("diffusion", "clarity_predicted_label"): confusion_of(every_label_right),
                  ("dcgan", "clarity_sampled"): confusion_of([(label, "sad") for label in LABELS])}
    tables = {t.name: t for t in kim_confusions(confusions, hand_summary(), "emodb", "dcgan")}
    assert set(tables) == {"kim2024_table08", "kim2024_table09", "kim2024_table09_leakfree", "kim2024_table10"}
    t08 = tables["kim2024_table08"].frame.set_index("true \\ predicted")
    assert t08.loc["neutral", "neutral"] == "100.0 vs 96.9 (+3.1)"
    t10 = tables["kim2024_table10"].frame.set_index("true \\ predicted")
    paper10 = reference_table("kim2024_table10_delta_vs_dcgan_emodb").set_index("true")
    # diffusion 100 on the diagonal, dcgan 100 in the sad column: +100 / -100 / 0 against the paper's deltas
    assert t10.loc["happy", "happy"] == f"+100.0 vs {paper10.loc['happy', 'happy']:.1f} (+94.5)"
    assert t10.loc["happy", "sad"] == "-100.0 vs 0.0 (-100.0)"
    assert t10.loc["sad", "sad"] == f"+0.0 vs {paper10.loc['sad', 'sad']:.1f} (-6.7)"
    ravdess = {t.name for t in kim_confusions(confusions, hand_summary(), "ravdess", "dcgan")}
    assert ravdess == {"kim2024_table06", "kim2024_table07", "kim2024_table07_leakfree", "kim2024_table11"}
    synthetic = {t.name: t for t in kim_confusions(confusions, hand_summary(), "synthetic", "dcgan")}
    assert " vs " not in synthetic["kim2024_table08"].frame.to_string()  # no paper values off their corpus
    assert "kim2024_table10" not in {t.name for t in kim_confusions(confusions, hand_summary(), "emodb", None)}


def test_chosen_generator_is_the_first_one_other_than_none_and_the_baseline():
    summary = hand_summary()
    assert chosen_generator(summary, "dcgan") == "diffusion"
    assert chosen_generator(summary[summary["generator"] != "diffusion"], "dcgan") == "dcgan"
    assert chosen_generator(summary[summary["generator"] == "none"], "dcgan") is None


def test_table12_reports_weighted_metrics_and_the_paper_for_generated_rows():
    table = kim_table12(hand_summary(), "emodb").set_index("trained on")
    assert list(table.index) == ["emodb", "emodb+dcgan", "emodb+diffusion"]
    assert table.loc["emodb+diffusion", "accuracy"] == "0.6500"
    assert table.loc["emodb+diffusion", "paper f1"] == "0.9831"
    assert table.loc["emodb+diffusion", "Δ f1"] == "-0.3431"  # 0.64 - 0.9831
    assert table.loc["emodb", "paper f1"] in ("", None) or pd.isna(table.loc["emodb", "paper f1"])


def test_malik_table02_real_syn_and_improvement_with_paper_rows_only_on_iemocap():
    table = malik_table02(hand_summary(), "emodb").set_index("generator / study")
    assert list(table.index) == ["dcgan", "diffusion"]
    diffusion = table.loc["diffusion"]
    assert (diffusion["real"], diffusion["syn"], diffusion["real+syn"]) == ("55.0", "40.0", "60.0")
    assert diffusion["real std"] == "4.0" and diffusion["improvement pp"] == "+5.0"
    iemocap = malik_table02(hand_summary(), "iemocap").set_index("generator / study")
    paper_rows = iemocap[iemocap["source"] == "paper"]
    assert len(paper_rows) == len(reference_table("malik2023_table02_iemocap_uar"))
    assert paper_rows.loc["Malik et al. (IDDPM+BERT)", "real+syn"] == "61.22"
    assert iemocap.loc["diffusion", "Δ real+syn vs paper pp"] == "-1.2"  # 60.0 - 61.22


def test_malik_table03_reads_the_cross_corpus_arms():
    rows = hand_summary().to_dict("records")
    rows += summary_rows("none", "cross", {"ua": (0.35, 0.02)})
    rows += summary_rows("diffusion", "cross", {"ua": (0.38, 0.02)})
    rows += summary_rows("diffusion", "cross_synthetic_only", {"ua": (0.25, 0.03)})
    table = malik_table03(pd.DataFrame(rows), "emodb", "ravdess").set_index("generator / study")
    assert list(table.index) == ["diffusion"]  # dcgan has no cross arm here
    assert (table.loc["diffusion", "real"], table.loc["diffusion", "syn"]) == ("35.0", "25.0")
    assert table.loc["diffusion", "improvement pp"] == "+3.0"


def hand_result(corpus: str, **config) -> SimpleNamespace:
    """A RunResult stand-in whose confusions match the arms of ``hand_summary``."""
    right = confusion_of([(label, label) for label in LABELS])
    arm_confusions = {("diffusion", "clarity_true_label"): right, ("diffusion", "clarity_predicted_label"): right,
                      ("dcgan", "clarity_sampled"): right}
    return SimpleNamespace(experiment=Experiment(corpus=corpus, **config), summary=hand_summary(),
                           confusions={"none": right, "dcgan": right, "diffusion": right},
                           arm_confusions=arm_confusions, quality=pd.DataFrame(), labels=LABELS)


def test_paper_tables_lists_what_applies_and_says_why_the_rest_does_not():
    tables, skipped = paper_tables(hand_result("emodb", protocols=["augment", "clarity"]))
    names = [t.name for t in tables]
    assert names == ["kim2024_table05", "kim2024_table08", "kim2024_table09", "kim2024_table09_leakfree",
                     "kim2024_table10", "kim2024_table12", "malik2023_table02"]
    assert any("malik2023_table03" in line and "--test-corpus" in line for line in skipped)
    _, without_augment = paper_tables(hand_result("emodb", protocols=["clarity"]))
    assert any(line.startswith("malik2023_table02") for line in without_augment)


@pytest.mark.parametrize("corpus", ["emodb", "synthetic"])
def test_every_table_states_its_definitions(corpus):
    tables, _ = paper_tables(hand_result(corpus))
    for table in tables:
        assert any(word in table.note for word in ("UA", "accuracy", "Rows = true"))


def fold_values(generator: str, arm: str, values: list[float], name: str = "ua") -> list[dict]:
    return [{"generator": generator, "arm": arm, "seed": 0, "fold": fold, "metric": name, "value": value}
            for fold, value in enumerate(values)]


def test_arm_comparisons_pair_each_arm_with_nones_reference_arm():
    from scipy import stats as scipy_stats

    from emoaug.bench.aggregate import arm_comparisons

    none_main, none_cross = [0.5, 0.6, 0.55, 0.7, 0.65, 0.6], [0.3, 0.35, 0.3, 0.4, 0.32, 0.3]
    enhanced = [0.45, 0.5, 0.5, 0.6, 0.55, 0.58]
    crossed = [0.33, 0.36, 0.35, 0.38, 0.35, 0.36]
    frame = pd.DataFrame(fold_values("none", "main", none_main) + fold_values("none", "cross", none_cross)
                         + fold_values("diffusion", "clarity_true_label", enhanced)
                         + fold_values("diffusion", "cross", crossed))
    table = arm_comparisons(frame, metrics=("ua",)).set_index("arm")
    assert table.loc["clarity_true_label", "reference_arm"] == "main"
    assert table.loc["cross", "reference_arm"] == "cross"  # cross arms are paired with none's cross arm
    diffs = [a - b for a, b in zip(enhanced, none_main)]
    assert table.loc["clarity_true_label", "mean_diff"] == pytest.approx(sum(diffs) / len(diffs))
    assert table.loc["clarity_true_label", "p_value"] == pytest.approx(scipy_stats.wilcoxon(diffs).pvalue)
    cross_diffs = [a - b for a, b in zip(crossed, none_cross)]
    assert table.loc["cross", "mean_diff"] == pytest.approx(sum(cross_diffs) / len(cross_diffs))
    assert table.loc["cross", "n_pairs"] == 6


def test_table05_and_malik02_show_the_stored_paired_comparisons():
    comparisons = pd.DataFrame([
        {"generator": "diffusion", "arm": "clarity_true_label", "metric": "ua", "mean_diff": -0.121,
         "ci_low": -0.178, "ci_high": -0.075, "p_value": 0.0625, "p_holm": 0.125, "mde": float("inf")},
        {"generator": "diffusion", "arm": "main", "metric": "ua", "mean_diff": 0.05, "ci_low": -0.01,
         "ci_high": 0.11, "p_value": 0.3, "p_holm": 0.6, "mde": 0.0463}])
    t05 = kim_table05(hand_summary(), "emodb", comparisons)
    enhanced = t05[t05["judge scores"].str.contains("true emotion")].iloc[0]
    assert enhanced["paired ΔUA pp vs original [95% CI]"] == "-12.1 [-17.8, -7.5]"
    assert enhanced["p / p_Holm"] == "0.0625 / 0.125"
    assert t05.iloc[0]["paired ΔUA pp vs original [95% CI]"] == ""  # the original row is the reference
    assert enhanced[MDE_HEADER] == "not reachable" and t05.iloc[0][MDE_HEADER] == ""
    t02 = malik_table02(hand_summary(), "emodb", comparisons).set_index("generator / study")
    assert t02.loc["diffusion", "paired improvement [95% CI]"] == "+5.0 [-1.0, +11.0]"
    assert t02.loc["diffusion", MDE_HEADER] == "4.6"
    assert t02.loc["dcgan", "paired improvement [95% CI]"] == ""  # not computed for it here
    older = malik_table02(hand_summary(), "emodb", comparisons.drop(columns="mde")).set_index("generator / study")
    assert older.loc["diffusion", MDE_HEADER] == "—"  # comparisons.csv written before the MDE existed


def test_mlflow_child_runs_share_metric_names_across_generators_and_arms():
    from emoaug.bench.tracking import arm_metrics

    summary = hand_summary()
    main = arm_metrics(summary, "diffusion", "main")
    clarity = arm_metrics(summary, "diffusion", "clarity_true_label")
    assert main["ua_fold_mean"] == pytest.approx(0.60)
    assert clarity["ua_fold_mean"] == pytest.approx(0.88)
    assert arm_metrics(summary, "diffusion", "synthetic_only")["ua_fold_std"] == pytest.approx(0.05)
    # the same names in every child run (no generator or arm in them): MLflow compares them side by side
    assert {"ua", "ua_fold_mean", "ua_fold_std", "wa", "wa_fold_mean"} <= set(main) & set(clarity)
    assert arm_metrics(summary, "diffusion", "no such arm") == {}


def test_mlflow_metrics_carry_the_mde_next_to_the_ci():
    from emoaug.bench.tracking import curve_metrics, paired_metrics

    comparisons = pd.DataFrame([{"generator": "diffusion", "arm": "main", "metric": "ua", "mean_diff": 0.05,
                                 "ci_low": -0.01, "ci_high": 0.11, "p_value": 0.3, "p_holm": 0.6, "mde": 0.0463}])
    logged = paired_metrics(comparisons, "diffusion", "main")
    assert logged["ua_diff_mde"] == pytest.approx(0.0463) and logged["ua_diff_ci_low"] == pytest.approx(-0.01)
    point = {"generator": "diffusion", "arm": "main", "synthetic_ratio": 2.0, "ua_fold_mean": 0.7,
             "ua_paired_diff": 0.02, "ua_ci_low": -0.01, "ua_ci_high": 0.05, "ua_p_holm": 0.5,
             "n_synthetic_rows": 200.0}
    assert curve_metrics(pd.DataFrame([{**point, "ua_mde": 0.03}]), "diffusion", "main")["ratio_2/ua_diff_mde"] == 0.03
    assert "ratio_2/ua_diff_mde" not in curve_metrics(pd.DataFrame([point]), "diffusion", "main")  # an old curve
