"""Generator summary and comparison table from hand-built result frames (no run needed)."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from emoaug import metrics
from emoaug.bench.aggregate import generator_summary
from emoaug.errors import EmoaugError
from emoaug.reports.reference import available_reference_tables, malik2023_table01, reference_table
from emoaug.reports.tables import MDE_HEADER, QUALITY_NOTE, generator_table, to_latex, to_markdown, to_text

LABELS = ("neutral", "angry")
# per (fold) UA of each generator, chosen so that every fold's predictions give exactly these values
UA = {"none": [0.5, 0.5, 1.0, 0.5, 0.5], "vae": [1.0, 0.5, 1.0, 1.0, 1.0], "noise": [0.5, 0.5, 0.5, 0.5, 0.5]}


def predictions() -> pd.DataFrame:
    """Two test items per fold (one per class): UA 1.0 = both right, 0.5 = the angry one wrong."""
    rows = []
    for generator, values in UA.items():
        for fold, ua in enumerate(values):
            rows.append({"generator": generator, "seed": 0, "fold": fold, "item_id": f"n{fold}",
                         "y_true": "neutral", "y_pred": "neutral"})
            rows.append({"generator": generator, "seed": 0, "fold": fold, "item_id": f"a{fold}",
                         "y_true": "angry", "y_pred": "angry" if ua == 1.0 else "neutral"})
    return pd.DataFrame(rows)


def frames():
    preds = predictions()
    fold_metrics = pd.DataFrame([
        {"generator": g, "seed": s, "fold": f, "metric": k, "value": v}
        for (g, s, f), part in preds.groupby(["generator", "seed", "fold"], sort=False)
        for k, v in metrics.classification_metrics(part["y_true"], part["y_pred"], LABELS).items()])
    summary = metrics.summarise(preds, LABELS, by=("generator",))
    quality = pd.DataFrame([{"generator": "vae", "seed": 0, "fold": f, "emotion": "overall", "measure": m,
                             "value": v} for f in range(5) for m, v in (("mad", 0.02), ("fd", 6.0 + f))])
    timings = pd.DataFrame([{"generator": g, "seed": 0, "fold": f, "generator_fit_s": 10.0 if g == "vae" else 0.0,
                             "generate_s": 2.0 if g != "none" else 0.0, "classifier_s": 5.0,
                             "n_synthetic_rows": 100 if g != "none" else 0} for g in UA for f in range(5)])
    return summary, quality, timings, fold_metrics


def test_generator_summary_pairs_each_generator_with_none_by_fold():
    table = generator_summary(*frames()).set_index("generator")
    assert list(table.index) == ["none", "vae", "noise"]
    vae = table.loc["vae"]
    assert vae["ua_paired_diff"] == pytest.approx(0.3)  # (0.5 + 0 + 0 + 0.5 + 0.5) / 5
    assert vae["ua_pairs"] == 5 and vae["ua_ci_low"] <= 0.3 <= vae["ua_ci_high"]
    diffs = [g - b for g, b in zip(UA["vae"], UA["none"])]
    assert vae["ua_p"] == pytest.approx(scipy_stats.wilcoxon(diffs).pvalue)
    assert vae["delta_ua_vs_none"] == pytest.approx(vae["ua"] - table.loc["none", "ua"])  # pooled
    assert table.loc["noise", "ua_paired_diff"] == pytest.approx(-0.1)
    assert vae["ua_p_holm"] >= vae["ua_p"]
    assert vae["mad"] == pytest.approx(0.02) and vae["fd"] == pytest.approx(8.0)
    assert vae["items_per_s"] == pytest.approx(50.0) and pd.isna(table.loc["none", "ua_paired_diff"])


def test_generator_table_renders_the_paired_comparison():
    table = generator_table(generator_summary(*frames())).set_index("generator")
    cell = table.loc["vae", "paired ΔUA pp [95% CI]"]
    assert cell.startswith("+30.0 [") and cell.endswith("]")
    assert table.loc["none", "paired ΔUA pp [95% CI]"] == "" and table.loc["none", "p / p_Holm"] == ""
    p, p_holm = (float(v) for v in table.loc["vae", "p / p_Holm"].split(" / "))
    assert 0 < p <= p_holm <= 1
    assert table.loc["vae", "MAD"] == "0.0200" and table.loc["vae", "items/s"] == "50"


def test_generator_summary_without_fold_metrics_has_no_paired_columns():
    summary, quality, timings, _ = frames()
    assert "ua_paired_diff" not in generator_summary(summary, quality, timings).columns


def test_renderers_keep_signs_and_formatting_of_the_cells():
    table = generator_table(generator_summary(*frames()))
    for render in (to_text, to_markdown, to_latex):
        text = render(table, "title", "WA/UA definitions")
        assert "+30.0 [" in text and "-10.0 [" in text and "0.0200" in text  # not re-parsed as numbers
        assert "WA/UA definitions" in text


def quality_frame() -> pd.DataFrame:
    rows = []
    for fold, scale in ((0, 1.0), (1, 3.0)):  # fold means: 2x the fold-0 values
        for k, emotion in enumerate(("neutral", "happy", "sad", "angry")):
            rows.append({"generator": "diffusion", "seed": 0, "fold": fold, "emotion": emotion, "measure": "mad",
                         "value": scale * 0.01 * (k + 1)})
        rows.append({"generator": "diffusion", "seed": 0, "fold": fold, "emotion": "overall", "measure": "mad_sum",
                     "value": scale * 0.1})
        rows.append({"generator": "diffusion", "seed": 0, "fold": fold, "emotion": "overall", "measure": "fd",
                     "value": 5.0})
    return pd.DataFrame(rows)


def test_malik_table01_means_over_cells_and_paper_columns_only_on_the_papers_corpus():
    emotions = ("happy", "sad", "angry", "neutral")  # Malik's order
    ours = malik2023_table01(quality_frame(), "emodb", emotions).set_index("emotion")
    assert list(ours.index) == [*emotions, "total"] and list(ours.columns) == ["MAD diffusion"]
    assert ours.loc["happy", "MAD diffusion"] == pytest.approx(0.04)  # mean of 0.02 and 0.06
    assert ours.loc["total", "MAD diffusion"] == pytest.approx(0.2)

    paired = malik2023_table01(quality_frame(), "iemocap", emotions).set_index("emotion")
    paper = reference_table("malik2023_table01_mad").set_index("emotion")["mad"]
    assert paired.loc["happy", "MAD paper (Malik et al. 2023)"] == paper["happy"] == pytest.approx(0.0141)
    assert paired.loc["total", "MAD diffusion - paper"] == pytest.approx(0.2 - paper["total"])


def test_reference_tables_are_shipped_and_unknown_names_are_one_line_errors():
    names = available_reference_tables()
    assert {"kim2024_table05_wa_ua", "malik2023_table01_mad", "malik2023_table02_iemocap_uar"} <= set(names)
    table5 = reference_table("kim2024_table05_wa_ua").set_index(["dataset", "condition"])
    assert table5.loc[("EmoDB", "generated"), "wa_pct"] == pytest.approx(94.3)
    with pytest.raises(EmoaugError, match="not shipped"):
        reference_table("kim2024_table99")


def test_recall_bars_render_the_confusion_diagonals(tmp_path):
    from emoaug.reports.plots import recall_bars

    labels = list(LABELS)
    good = pd.DataFrame([[80.0, 20.0], [10.0, 90.0]], index=labels, columns=labels)
    path = recall_bars({"none": good, "vae": good * 0.5}, "recall", tmp_path / "bars.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    other = pd.DataFrame([[1.0]], index=["sad"], columns=["sad"])
    with pytest.raises(ValueError, match="other labels"):
        recall_bars({"none": good, "odd": other}, "recall", tmp_path / "bad.png")


def test_five_pairs_have_no_reachable_mde_and_the_table_says_so():
    # 5 folds x 1 seed: the exact two-sided Wilcoxon p is at least 2 / 2**5 = 0.0625 > 0.05
    summary = generator_summary(*frames()).set_index("generator")
    assert summary.loc["vae", "ua_mde"] == float("inf") and pd.isna(summary.loc["none", "ua_mde"])
    table = generator_table(summary.reset_index())
    assert MDE_HEADER == "MDE pp (80 % power, α 0.05)"
    assert table.set_index("generator").loc["vae", MDE_HEADER] == "not reachable"
    assert table.set_index("generator").loc["none", MDE_HEADER] == ""  # no comparison, no MDE
    markdown = to_markdown(table, "title", QUALITY_NOTE)
    assert MDE_HEADER in markdown and "not reachable" in markdown and "rules out effects larger than" in markdown


def paired_rows(**extra) -> list[dict]:
    """A generators.csv-like row of a run with 15 pairs, with ``extra`` columns."""
    return [{"generator": "vae", "ua": 0.7, "ua_paired_diff": 0.012, "ua_ci_low": -0.01, "ua_ci_high": 0.034,
             "ua_p": 0.3, "ua_p_holm": 0.6, "ua_pairs": 15, **extra}]


def test_the_generator_table_shows_the_stored_mde_and_a_dash_for_runs_without_it():
    assert generator_table(pd.DataFrame(paired_rows(ua_mde=0.0312))).loc[0, MDE_HEADER] == "3.1"
    assert generator_table(pd.DataFrame(paired_rows())).loc[0, MDE_HEADER] == "—"  # written before the MDE


def test_the_ratio_curve_table_shows_the_mde_of_each_point():
    from emoaug.reports.tables import ratio_curve_table

    point = {"arm": "main", "n_synthetic_rows": 100.0, "n_cells": 15, "ua_fold_mean": 0.7, "ua_fold_std": 0.05,
             "wa_fold_mean": 0.71, "ua_ci_low": -0.01, "ua_ci_high": 0.03, "ua_p": 0.2, "ua_p_holm": 0.4}
    curve = pd.DataFrame([{**point, "generator": "none", "synthetic_ratio": 0.0, "ua_paired_diff": float("nan"),
                           "ua_mde": float("nan")},
                          {**point, "generator": "vae", "synthetic_ratio": 1.0, "ua_paired_diff": 0.01,
                           "ua_mde": 0.0275},
                          {**point, "generator": "vae", "synthetic_ratio": 2.0, "ua_paired_diff": 0.02,
                           "ua_mde": float("inf")}])
    assert ratio_curve_table(curve)[MDE_HEADER].tolist() == ["", "2.8", "not reachable"]
    assert ratio_curve_table(curve.drop(columns="ua_mde"))[MDE_HEADER].tolist() == ["", "—", "—"]  # an old curve


def test_the_leaderboard_reads_the_runs_mde_and_shows_a_dash_for_older_runs(tmp_path):
    from emoaug.reports.leaderboard import display_table, order_rows, run_rows

    rows = []
    for name, extra in (("new", {"ua_mde": 0.0312}), ("old", {})):
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text(f'{{"corpus": "emodb", "seed": {len(rows)}}}')  # two protocols
        pd.DataFrame([{"item_id": "a", "sha1": "0", "emotion": "angry", "speaker": "03"}]).to_csv(
            run / "manifest.csv", index=False)
        pd.DataFrame([{"generator": "none", "ua": 0.69}, *paired_rows(**extra)]).to_csv(run / "generators.csv",
                                                                                      index=False)
        rows += run_rows(run)
    frame = order_rows(pd.DataFrame(rows, columns=leaderboard_columns()).assign(also_in_runs=0))
    table = display_table(frame).assign(run=frame["run"].tolist())
    cells = table.set_index(["run", "generator"])[MDE_HEADER]
    assert cells[("new", "vae")] == "3.1" and cells[("old", "vae")] == "—" and cells[("new", "none")] == ""


def leaderboard_columns() -> list[str]:
    from emoaug.reports.leaderboard import COLUMNS

    assert "ua_mde" in COLUMNS  # written to leaderboard.csv
    return COLUMNS
