"""The classic reference (openSMILE functionals + SVM): fit on training speakers only, cached, and a real-only
row in the generator table, Kim & Lee Table 12 and Malik et al. Table 2 of every run (``--reference off`` skips)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import emoaug.classifiers.classic as classic
from emoaug.cli import main
from tests.helpers import make_emodb


@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return make_emodb(tmp_path_factory.mktemp("data") / "emodb", speakers=("03", "08", "09", "10"),
                      letters="WEAFTN", texts=("a01", "a02"), seconds=0.6)


def test_scaler_and_svm_see_training_rows_only_and_validation_picks_c():
    rng = np.random.default_rng(0)
    labels = ("angry", "sad")
    train_x = rng.normal(size=(40, 5)) + np.repeat([[0.0], [3.0]], 20, axis=0)
    train_y = np.repeat(labels, 20)
    val_x = rng.normal(size=(10, 5)) * 100 + 50  # far off: would move a scaler fit on it
    val_y = np.repeat(labels, 5)
    scaler, model, chosen = classic.fit_reference((train_x, train_y), (val_x, val_y), labels,
                                                  classic.ClassicSettings())
    np.testing.assert_allclose(scaler.mean_, train_x.mean(axis=0))
    assert model.mapping.train.shape == (40, 5) and model.classifier.shape_fit_ == (40, 40)  # kernel on 40 rows
    assert chosen["c"] in classic.C_GRID
    assert chosen["chosen_by"] == "validation speakers"
    _, _, without_val = classic.fit_reference((train_x, train_y), (val_x[:0], val_y[:0]), labels,
                                              classic.ClassicSettings())
    assert without_val["c"] == 1.0 and without_val["chosen_by"].startswith("default")
    speakers = np.repeat(["s1", "s2", "s3", "s4"], 10)
    _, _, by_cv = classic.fit_reference((train_x, train_y), (val_x[:0], val_y[:0]), labels,
                                        classic.ClassicSettings(), groups=speakers)
    assert by_cv["chosen_by"] == "3-fold CV grouped by training speaker" and by_cv["c"] in classic.C_GRID


def separable(n_per_class: int, seed: int, width: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three emotions apart in a few of ``width`` dimensions, eight speakers (rows, labels, speakers)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["angry", "sad", "happy"], n_per_class)
    x = rng.normal(size=(len(labels), width))
    x[:, :3] += 1.5 * (labels[:, None] == np.array(["angry", "sad", "happy"])[None, :])
    return x, labels, np.resize([f"s{k}" for k in range(8)], len(labels))


def test_the_exact_model_is_libsvms_rbf_svm_with_gamma_scale_on_a_precomputed_kernel():
    from sklearn.svm import SVC

    (train_x, train_y, _), (test_x, _, _) = separable(60, 2, width=40), separable(30, 3, width=40)
    train_x[:, 5] = 0.0  # a constant functional, as openSMILE gives for some descriptors of short files
    for c in (0.01, 1.0, 100.0):
        [fitted] = classic._fit(train_x, train_y, classic.ClassicSettings(), classic.RBF_EXACT, [c])
        plain = SVC(C=c, kernel="rbf", gamma="scale", class_weight="balanced")
        plain.fit(np.nan_to_num(fitted.scaler.transform(train_x)), train_y)
        z = np.nan_to_num(fitted.scaler.transform(test_x))
        assert fitted.mapping.gamma == pytest.approx(1 / (z.shape[1] * fitted.mapping.train.var()))
        assert np.array_equal(fitted.predict(test_x), plain.predict(z)), c
        np.testing.assert_allclose(fitted.classifier.decision_function(fitted.rows(test_x)),
                                   plain.decision_function(z), rtol=1e-6, atol=1e-8)


def test_above_the_size_rule_the_kernel_is_approximated_and_agrees_with_the_exact_svm():
    labels = ("angry", "sad", "happy")
    (train_x, train_y, groups), (test_x, test_y, _) = separable(200, 0), separable(100, 1)
    exact = classic.ClassicSettings()
    approximate = classic.ClassicSettings(exact_max_train_rows=100, nystroem_components=300)
    assert exact.model_for(len(train_y)) == classic.RBF_EXACT
    assert approximate.model_for(len(train_y)) == classic.RBF_NYSTROEM and "Nystroem" in approximate.rule()
    results = {}
    for name, settings in (("exact", exact), ("approximate", approximate)):
        predicted, chosen = classic.fit_predict((train_x, train_y), (train_x[:0], train_y[:0]), test_x, labels,
                                                settings, groups=groups)
        assert chosen["model"] == settings.model_for(len(train_y))
        assert chosen["chosen_by"] == "3-fold CV grouped by training speaker"
        results[name] = classic._unweighted_recall(test_y, predicted, labels)
        again, _ = classic.fit_predict((train_x, train_y), (train_x[:0], train_y[:0]), test_x, labels, settings,
                                       groups=groups)
        assert np.array_equal(predicted, again)  # deterministic: every seed of a fold gets the same predictions
    assert results["exact"] > 0.7 and abs(results["exact"] - results["approximate"]) < 0.05, results


def test_functionals_in_worker_processes_equal_those_in_the_driver(emodb_root, tmp_path, monkeypatch):
    from emoaug.datasets import load_corpus

    items = load_corpus("emodb", emodb_root).items.head(6)
    serial = classic.extract_functionals(items, "eGeMAPSv02", cache_root=None)
    monkeypatch.setattr(classic, "PARALLEL_FROM", 2)
    monkeypatch.setattr(classic, "CHUNK_FILES", 2)
    parallel = classic.extract_functionals(items, "eGeMAPSv02", cache_root=tmp_path, jobs=2)
    assert list(parallel) == list(serial) and all(np.array_equal(serial[i], parallel[i]) for i in serial)
    cached = classic.FunctionalsCache(tmp_path, "eGeMAPSv02")
    assert all(cached.get(sha1) is not None for sha1 in items["sha1"])


def test_functionals_are_cached_per_content(emodb_root, tmp_path, monkeypatch):
    from emoaug.datasets import load_corpus

    items = load_corpus("emodb", emodb_root).items.head(4)
    first = classic.extract_functionals(items, "eGeMAPSv02", cache_root=tmp_path)
    assert {v.shape for v in first.values()} == {(88,)}
    monkeypatch.setattr(classic, "_smile", lambda name: pytest.fail("openSMILE ran although every item is cached"))
    again = classic.extract_functionals(items, "eGeMAPSv02", cache_root=tmp_path)
    assert all(np.array_equal(first[i], again[i]) for i in first)


def run(emodb_root, tmp_path, *extra: str) -> tuple[int, object]:
    args = ["--corpus", "emodb", "--data-root", str(emodb_root), "--profile", "smoke", "--gen", "none,specaugment",
            "--protocol", "augment", "--seeds", "2", "--reference", "egemaps", "--out", str(tmp_path / "runs"),
            "--store", str(tmp_path / "store"), "--cache-dir", str(tmp_path / "cache"), "--no-mlflow", *extra]
    code = main(args)
    return code, next((tmp_path / "runs").iterdir())


def test_every_run_has_the_reference_row_in_its_tables(emodb_root, tmp_path, capsys):
    code, run_dir = run(emodb_root, tmp_path)
    out = capsys.readouterr().out
    assert code == 0
    predictions = pd.read_csv(run_dir / "reference_predictions.csv")
    manifest = pd.read_csv(run_dir / "manifest.csv")
    split = json.loads((run_dir / "split.json").read_text())["folds"]
    assert sorted(predictions["seed"].unique()) == [0, 1]
    for fold in split:  # every test item of every fold, the same predictions for each seed (a deterministic SVM)
        part = predictions[predictions["fold"] == fold["index"]]
        assert sorted(part[part["seed"] == 0]["item_id"]) == sorted(fold["test"])
        by_seed = [p.sort_values("item_id")["y_pred"].tolist() for _, p in part.groupby("seed")]
        assert by_seed[0] == by_seed[1]
    assert set(predictions["item_id"]) <= set(manifest["item_id"])
    reference = pd.read_csv(run_dir / "reference.csv")
    assert reference["generator"].tolist() == ["classic"] and reference["ua_pairs"].tolist() == [4]
    for table in ("generators", "kim2024_table12", "malik2023_table02"):
        text = (run_dir / "tables" / f"{table}.md").read_text()
        assert "classic (reference, real only)" in text and "openSMILE eGeMAPSv02" in text, table
    assert "classic (reference, real only)" in out
    summary = pd.read_csv(run_dir / "reference_summary.csv").set_index("metric")
    generators = pd.read_csv(run_dir / "tables" / "generators.csv")
    row = generators[generators["generator"] == "classic (reference, real only)"].iloc[0]
    assert row["UA %"].startswith(f"{100 * summary.loc['ua', 'pooled']:.1f}")

    folds = json.loads((run_dir / "reference_folds.json").read_text())
    assert [f["model"] for f in folds["folds"]] == [classic.RBF_EXACT] * 2 and "Nystroem" in folds["rule"]
    assert all(f["computed_by_this_run"] for f in folds["folds"])

    capsys.readouterr()
    assert main(["report", "--out", str(tmp_path / "runs")]) == 0  # re-rendered from the folder alone
    assert "classic (reference, real only)" in capsys.readouterr().out


def test_the_reference_is_stored_per_fold_and_reused(emodb_root, tmp_path, monkeypatch, caplog):
    assert run(emodb_root, tmp_path, "--gen", "none", "--seeds", "1")[0] == 0
    run_dir = next((tmp_path / "runs").iterdir())
    first = pd.read_csv(run_dir / "reference_predictions.csv")
    stored = sorted((tmp_path / "store" / "references").rglob("*.json"))
    assert len(stored) == 2

    import emoaug.bench.reference as reference

    def no_fit(*args, **kwargs):
        raise AssertionError("the reference was fit again although every fold is stored")

    monkeypatch.setattr(reference, "fit_predict", no_fit)
    assert run(emodb_root, tmp_path, "--gen", "none", "--seeds", "1")[0] == 0
    pd.testing.assert_frame_equal(first, pd.read_csv(run_dir / "reference_predictions.csv"))
    folds = json.loads((run_dir / "reference_folds.json").read_text())["folds"]
    assert not any(f["computed_by_this_run"] for f in folds)

    monkeypatch.undo()
    stored[0].write_text("{not json")  # damaged on disk: recomputed with a warning, not trusted
    assert run(emodb_root, tmp_path, "--gen", "none", "--seeds", "1")[0] == 0
    assert "stored reference" in caplog.text and "recomputing" in caplog.text
    pd.testing.assert_frame_equal(first, pd.read_csv(run_dir / "reference_predictions.csv"))


def test_reference_off_leaves_it_out(emodb_root, tmp_path, capsys):
    code, run_dir = run(emodb_root, tmp_path, "--reference", "off")
    assert code == 0
    assert not (run_dir / "reference.csv").exists()
    assert "classic" not in (run_dir / "tables" / "generators.md").read_text()


def test_an_unknown_reference_is_an_option_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--reference", "mfcc", "--out", str(tmp_path)])
    assert stopped.value.code == 2
    assert "argument --reference: invalid choice: 'mfcc'" in capsys.readouterr().err


def test_no_generator_can_take_the_reference_name(capsys):
    from emoaug.generators import RESERVED_NAMES, available_generators

    assert classic.REFERENCE_NAME in RESERVED_NAMES and classic.REFERENCE_NAME not in available_generators()
    assert main(["--gen", "none,classic", "--no-mlflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'classic' names the real-only reference row" in err
