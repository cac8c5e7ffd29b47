"""The paper protocols end to end on fixture corpora (smoke profile): augment, clarity, cross, paper tables."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from emoaug.cli import main
from tests.helpers import make_emodb, make_ravdess, only_run_dir

KIM_EMODB = ("kim2024_table05", "kim2024_table08", "kim2024_table09", "kim2024_table09_leakfree", "kim2024_table10",
             "kim2024_table12")
MALIK = ("malik2023_table01", "malik2023_table02")


@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return make_emodb(tmp_path_factory.mktemp("data") / "emodb", speakers=("03", "08", "09", "10"))


@pytest.fixture(scope="module")
def ravdess_root(tmp_path_factory):
    return make_ravdess(tmp_path_factory.mktemp("data") / "ravdess", actors=(1, 2, 3))


def written_tables(run_dir: Path) -> set[str]:
    names = {p.stem for p in (run_dir / "tables").glob("*.md")}
    for name in names:  # every table in all three formats
        assert (run_dir / "tables" / f"{name}.csv").exists() and (run_dir / "tables" / f"{name}.tex").exists()
    return names


def test_diffusion_on_emodb_writes_every_applicable_paper_table_with_paper_columns(emodb_root, tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["--gen", "diffusion", "--corpus", "emodb", "--data-root", str(emodb_root), "--profile", "smoke",
                 "--out", str(out), "--no-mlflow"])
    assert code == 0
    printed = capsys.readouterr().out
    run_dir = only_run_dir(out)
    names = written_tables(run_dir)
    assert set(KIM_EMODB) | set(MALIK) | {"generators"} <= names
    assert "malik2023_table03" not in names and "not written: malik2023_table03" in printed
    assert "[kim2024_table05]" in printed and "[malik2023_table02]" in printed  # printed to the terminal too

    # dcgan was added as Table 10's baseline, none as everyone's reference
    summary = pd.read_csv(run_dir / "summary.csv")
    assert list(dict.fromkeys(summary["generator"])) == ["none", "dcgan", "diffusion"]
    arms = set(zip(summary["generator"], summary["arm"]))
    assert {("diffusion", "clarity_true_label"), ("diffusion", "clarity_predicted_label"),
            ("diffusion", "synthetic_only"), ("dcgan", "clarity_sampled"), ("dcgan", "synthetic_only")} <= arms

    t05 = pd.read_csv(run_dir / "tables" / "kim2024_table05.csv", dtype=str)
    assert set(t05["condition"]) == {"original", "generated"}
    assert (t05["paper WA %"].iloc[0], t05["paper UA %"].iloc[0]) == ("82.1", "81.7")  # EmoDB original
    ua_none = summary.query("generator == 'none' and arm == 'main' and metric == 'ua'")["fold_mean"].item()
    assert t05["Δ UA pp"].iloc[0] == f"{100 * ua_none - 81.7:+.1f}"
    t09 = pd.read_csv(run_dir / "tables" / "kim2024_table09.csv", dtype=str).set_index("true \\ predicted")
    assert " vs 100.0 (" in t09.loc["neutral", "neutral"]  # the paper's Table 9: neutral 100 % recognised
    assert " vs " in pd.read_csv(run_dir / "tables" / "kim2024_table10.csv").to_string()
    t12 = pd.read_csv(run_dir / "tables" / "kim2024_table12.csv", dtype=str)
    assert t12["paper accuracy"].dropna().eq("0.9831").all() and len(t12) == 4
    assert t12["trained on"].iloc[0] == "emodb: classic (reference, real only)"  # no paper counterpart
    for name in (*KIM_EMODB, *MALIK, "generators"):  # each names WA/UA and the split
        text = (run_dir / "tables" / f"{name}.md").read_text()
        assert "WA = overall accuracy" in text and "UA = unweighted mean of per-class recall" in text, name
        assert "speaker-independent" in text, name
    html = (run_dir / "report.html").read_text()
    assert "Kim &amp; Lee (2024) Table 5" in html and "Malik et al. (2023) Table 2" in html


def test_synthetic_corpus_writes_the_same_tables_without_paper_columns(tmp_path, capsys):
    out = tmp_path / "runs"
    # --reference off: the classic row has its own tests; openSMILE over the embedded corpus would double the time
    assert main(["--gen", "diffusion", "--profile", "smoke", "--reference", "off", "--out", str(out), "--no-mlflow",
                 "--seeds", "1"]) == 0
    run_dir = only_run_dir(out)
    names = written_tables(run_dir)
    assert set(KIM_EMODB) | set(MALIK) <= names
    for name in (*KIM_EMODB, "malik2023_table02"):
        table = pd.read_csv(run_dir / "tables" / f"{name}.csv", dtype=str)
        assert not [c for c in table.columns if "paper" in c or c.startswith("Δ")], name
        cells = " ".join(table.fillna("").to_numpy().ravel())
        assert " vs " not in cells and "paper" not in set(table.get("source", [])), name  # no "ours vs paper"


def run_cross(emodb_root: Path, ravdess_root: Path, out: Path, protocol: str) -> Path:
    """specaugment trained on the EmoDB fixture and tested on the RAVDESS one too; returns the run folder."""
    code = main(["--gen", "specaugment", "--corpus", "emodb", "--data-root", str(emodb_root), "--test-corpus",
                 "ravdess", "--test-data-root", str(ravdess_root), "--protocol", protocol, "--profile", "smoke",
                 "--out", str(out), "--no-mlflow"])
    assert code == 0
    return only_run_dir(out)


def test_cross_corpus_protocol_tests_every_classifier_on_the_other_corpus(emodb_root, ravdess_root, tmp_path,
                                                                         capsys):
    run_dir = run_cross(emodb_root, ravdess_root, tmp_path / "runs", "augment")
    predictions = pd.read_csv(run_dir / "predictions.csv")
    test_items = set(pd.read_csv(run_dir / "test_manifest.csv")["item_id"])
    cross = predictions[predictions["arm"].isin(["cross", "cross_synthetic_only"])]
    assert set(cross["arm"]) == {"cross", "cross_synthetic_only"}
    for _, part in cross.groupby(["generator", "arm", "fold"]):
        assert set(part["item_id"]) == test_items  # every fold's classifier scores the whole test corpus
    assert not test_items & set(pd.read_csv(run_dir / "manifest.csv")["item_id"])
    assert "clarity_true_label" not in set(predictions["arm"])  # --protocol augment only
    t03 = pd.read_csv(run_dir / "tables" / "malik2023_table03.csv", dtype=str)
    assert list(t03["generator / study"]) == ["specaugment"] and t03["syn"].notna().all()
    assert "malik2023_table03" in written_tables(run_dir)


def test_cross_protocol_without_a_test_corpus_is_a_one_line_error(tmp_path, capsys):
    assert main(["--protocol", "cross", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--test-corpus" in err
    assert main(["--protocol", "augment,nonsense", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    assert "'nonsense'" in capsys.readouterr().err


def test_protocol_parsing_and_generator_completion():
    from emoaug.bench.resolve import complete_generators, parse_protocols

    assert parse_protocols("none", None) == []
    assert parse_protocols("augment", "ravdess") == ["augment", "cross"]  # --test-corpus implies cross
    assert complete_generators(["diffusion"], ["clarity"], "dcgan") == ["none", "dcgan", "diffusion"]
    assert complete_generators(["diffusion"], ["augment"], "dcgan") == ["none", "diffusion"]  # no clarity tables
    assert complete_generators(["specaugment"], ["clarity"], "dcgan") == ["none", "specaugment"]  # nothing trained
    assert complete_generators(["diffusion", "none"], ["clarity"], None) == ["none", "diffusion"]


def test_cross_corpus_uses_only_the_emotions_both_corpora_have(emodb_root, tmp_path, capsys):
    four = make_ravdess(tmp_path / "ravdess4", actors=(1, 2), emotion_codes=("01", "03", "04", "05"))
    run_dir = run_cross(emodb_root, four, tmp_path / "runs", "none")
    shared = {"neutral", "happy", "sad", "angry"}
    assert set(pd.read_csv(run_dir / "manifest.csv")["emotion"]) == shared  # training corpus cut too
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert set(predictions["y_true"]) == shared and set(predictions["y_pred"]) <= shared
    assert set(predictions["arm"]) == {"main", "cross"}  # --protocol none: no synthetic-only or clarity arms
    assert "fear" not in (run_dir / "tables" / "generators.md").read_text().split("label set")[1].split("]")[0]


def test_synthetic_only_set_mirrors_the_real_training_fold_and_generates_only_the_shortfall():
    import torch

    from emoaug.bench.cells import allocate_synthetic, synthetic_only_set
    from emoaug.featureset import FeatureSet

    labels = ("neutral", "angry", "sad")

    def rows(counts: dict[str, int], prefix: str) -> FeatureSet:
        y = torch.tensor([labels.index(label) for label, n in counts.items() for _ in range(n)])
        return FeatureSet(x=torch.zeros(len(y), 4, 5), y=y, labels=labels,
                          item_ids=[f"{prefix}{k}" for k in range(len(y))])

    class Recorder:
        asked: list[dict] = []

        def generate(self, n_per_class, seed):
            self.asked.append(dict(n_per_class))
            return rows(n_per_class, "extra")

    train = rows({"neutral": 6, "angry": 10, "sad": 2}, "real")
    # the augmentation set fills the smallest classes first: angry (the largest) gets none
    augmentation = rows(allocate_synthetic(train.class_counts(), len(train)), "aug")
    assert augmentation.class_counts()["angry"] < 10
    data = SimpleNamespace(train=train, seed=0)
    recorder = Recorder()
    only = synthetic_only_set(recorder, augmentation, data)
    assert only.class_counts() == train.class_counts() and len(only) == len(train)
    assert recorder.asked == [{"neutral": 0, "angry": 10 - augmentation.class_counts()["angry"], "sad": 0}]


def test_the_training_corpus_as_test_corpus_is_refused(emodb_root, tmp_path, capsys):
    code = main(["--gen", "none", "--corpus", "emodb", "--data-root", str(emodb_root), "--test-corpus", "emodb",
                 "--test-data-root", str(emodb_root), "--profile", "smoke", "--out", str(tmp_path), "--no-mlflow"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--test-corpus emodb" in err and "also in --corpus" in err
