"""Metrics against values worked out by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from emoaug.metrics import METRIC_NAMES, classification_metrics, confusion_percent, per_class_recall, summarise

LABELS = ["a", "b", "c"]
# 10 items; confusion (rows true, cols predicted): a [3, 1, 0], b [0, 2, 1], c [0, 0, 3]
Y_TRUE = ["a"] * 4 + ["b"] * 3 + ["c"] * 3
Y_PRED = ["a", "a", "a", "b", "b", "b", "c", "c", "c", "c"]


def test_hand_computed_example():
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    recall = {"a": 3 / 4, "b": 2 / 3, "c": 3 / 3}
    precision = {"a": 3 / 3, "b": 2 / 3, "c": 3 / 4}  # predicted a: 3, b: 3, c: 4
    f1 = {k: 2 * precision[k] * recall[k] / (precision[k] + recall[k]) for k in LABELS}
    assert f1["a"] == pytest.approx(6 / 7) and f1["c"] == pytest.approx(6 / 7)
    support = {"a": 4, "b": 3, "c": 3}
    assert m["wa"] == pytest.approx(8 / 10)
    assert m["ua"] == pytest.approx(29 / 36)  # (3/4 + 2/3 + 1) / 3
    assert m["macro_recall"] == pytest.approx(m["ua"])
    assert m["macro_precision"] == pytest.approx(29 / 36)  # (1 + 2/3 + 3/4) / 3
    assert m["macro_f1"] == pytest.approx(50 / 63)  # (6/7 + 2/3 + 6/7) / 3
    assert m["weighted_precision"] == pytest.approx(33 / 40)  # (4*1 + 3*2/3 + 3*3/4) / 10
    assert m["weighted_recall"] == pytest.approx(m["wa"])
    assert m["weighted_f1"] == pytest.approx(sum(support[k] * f1[k] for k in LABELS) / 10)
    assert m["n"] == 10
    assert list(m) == list(METRIC_NAMES)


def test_class_indices_work_like_strings():
    as_index = {label: i for i, label in enumerate(LABELS)}
    by_index = classification_metrics([as_index[v] for v in Y_TRUE], [as_index[v] for v in Y_PRED], [0, 1, 2])
    assert by_index == pytest.approx(classification_metrics(Y_TRUE, Y_PRED, LABELS))


def test_ua_averages_over_classes_present_in_y_true():
    labels = ["a", "b", "c", "d"]
    # c and d are absent from y_true; a wrong prediction of d still costs class a its recall
    m = classification_metrics(["a", "a", "b", "b"], ["a", "d", "b", "b"], labels)
    assert m["ua"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["wa"] == pytest.approx(3 / 4)
    # a present class that is never predicted has precision 0, which lowers macro precision
    m = classification_metrics(["a", "b"], ["a", "a"], ["a", "b"])
    assert m["macro_precision"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["ua"] == pytest.approx(1 / 2)


def test_values_lie_in_unit_interval():
    rng = np.random.default_rng(3)
    true = rng.choice(LABELS, size=50)
    pred = rng.choice(LABELS, size=50)
    m = classification_metrics(true, pred, LABELS)
    assert all(0.0 <= v <= 1.0 for k, v in m.items() if k != "n")


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="not in labels"):
        classification_metrics(["a", "z"], ["a", "a"], LABELS)
    with pytest.raises(ValueError, match="length"):
        classification_metrics(["a"], ["a", "b"], LABELS)
    with pytest.raises(ValueError):
        classification_metrics([], [], LABELS)


def test_per_class_recall():
    recall = per_class_recall(Y_TRUE, Y_PRED, [*LABELS, "d"])
    assert recall["a"] == pytest.approx(3 / 4)
    assert recall["b"] == pytest.approx(2 / 3)
    assert recall["c"] == pytest.approx(1.0)
    assert math.isnan(recall["d"])


def test_confusion_percent_rows_and_absent_classes():
    labels = [*LABELS, "d"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 RuntimeWarning for the absent row
        table = confusion_percent(Y_TRUE, Y_PRED, labels)
    assert list(table.index) == labels and list(table.columns) == labels
    assert table.index.name == "true" and table.columns.name == "predicted"
    np.testing.assert_allclose(table.loc[LABELS].sum(axis=1), 100.0)
    assert table.loc["a", "b"] == pytest.approx(25.0)
    assert table.loc["b", "c"] == pytest.approx(100 / 3)
    assert table.loc["d"].isna().all()


def _run(generator: str, fold: int, seed: int, true: list[str], pred: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "generator": generator,
            "fold": fold,
            "seed": seed,
            "item_id": [f"{generator}-{fold}-{i}" for i in range(len(true))],
            "y_true": true,
            "y_pred": pred,
        }
    )


def test_summarise_pooled_versus_fold_mean():
    predictions = pd.concat(
        [
            _run("none", 0, 0, ["a", "a", "b", "b"], ["a", "b", "b", "b"]),  # WA 3/4
            _run("none", 1, 0, ["a", "b"], ["a", "b"]),  # WA 1
            _run("noise", 0, 0, ["a", "b"], ["b", "b"]),  # one run only
        ],
        ignore_index=True,
    )
    table = summarise(predictions, ["a", "b"], by=("generator",))
    assert list(table.columns) == ["generator", "metric", "pooled", "fold_mean", "fold_std", "n_folds"]
    assert len(table) == 2 * len(METRIC_NAMES)
    wa = table[(table.generator == "none") & (table.metric == "wa")].iloc[0]
    assert wa.pooled == pytest.approx(5 / 6)
    assert wa.fold_mean == pytest.approx((3 / 4 + 1) / 2)
    assert wa.fold_std == pytest.approx(np.std([3 / 4, 1.0], ddof=1))
    assert wa.n_folds == 2
    ua = table[(table.generator == "none") & (table.metric == "ua")].iloc[0]
    assert ua.pooled == pytest.approx((2 / 3 + 1) / 2)  # a: 2 of 3, b: 3 of 3
    assert ua.fold_mean == pytest.approx(((1 / 2 + 1) / 2 + 1) / 2)
    single = table[(table.generator == "noise") & (table.metric == "wa")].iloc[0]
    assert single.pooled == pytest.approx(1 / 2) and single.n_folds == 1
    assert math.isnan(single.fold_std)


def test_summarise_counts_each_fold_and_seed_as_a_run():
    predictions = pd.concat(
        [_run("none", 0, 0, ["a", "b"], ["a", "b"]), _run("none", 0, 1, ["a", "b"], ["a", "a"])],
        ignore_index=True,
    )
    table = summarise(predictions, ["a", "b"], by=())
    wa = table[table.metric == "wa"].iloc[0]
    assert wa.n_folds == 2
    assert wa.fold_mean == pytest.approx(3 / 4)
    assert list(table.columns) == ["metric", "pooled", "fold_mean", "fold_std", "n_folds"]


def test_summarise_missing_columns():
    with pytest.raises(ValueError, match="generator"):
        summarise(pd.DataFrame({"fold": [0], "seed": [0], "y_true": ["a"], "y_pred": ["a"]}), ["a"])
