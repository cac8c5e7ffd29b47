"""Waveform-domain baselines (emoaug.generators.waveform): what each change does to the audio, the front end's
scope, option errors, and a run with them end to end. The shared contract is in test_contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from emoaug.bench.cells import waveform_front_end
from emoaug.cli import main
from emoaug.errors import EmoaugError, LeakageError
from emoaug.features import extract_features, front_end_signal, get_preset, waveform_features
from emoaug.generators import get_generator_class
from emoaug.generators.waveform import WaveformFrontEnd
from emoaug.testing import toy_workload, toy_audio
from tests.helpers import make_emodb, only_run_dir

RATE = 16000


def changed(name: str, y: np.ndarray, seed: int = 0, **options) -> np.ndarray:
    return get_generator_class(name)(**options).change(y, RATE, np.random.default_rng(seed))


def test_speed_perturbation_divides_the_length_by_its_factor():
    y = toy_audio("a", 0, RATE)
    for factor in (0.9, 1.1):
        out = changed("speed", y, factors=[factor])
        assert abs(len(out) - len(y) / factor) <= 1
    drawn = sorted({len(changed("speed", y, seed=s)) for s in range(12)})  # both default factors are drawn
    assert len(drawn) == 2 and abs(drawn[0] - len(y) / 1.1) <= 1 and abs(drawn[1] - len(y) / 0.9) <= 1


def test_pitch_shift_moves_the_fundamental_and_keeps_the_length():
    y = toy_audio("b", 0, RATE, seconds=1.0)
    up = changed("pitch", y, min_semitones=4.0, max_semitones=4.0)
    assert len(up) == len(y)

    def peak_hz(signal: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
        return float(np.fft.rfftfreq(len(signal), 1 / RATE)[np.argmax(spectrum[: len(spectrum) // 8])])

    assert peak_hz(up) == pytest.approx(peak_hz(y) * 2 ** (4 / 12), rel=0.06)


def test_noise_is_added_at_the_asked_snr():
    y = toy_audio("c", 0, RATE)
    out = changed("noise", y, min_snr_db=10.0, max_snr_db=10.0)
    snr = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((out - y).astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)


def test_waveforms_become_the_rows_a_decoded_file_of_them_gets(tmp_path):
    import soundfile

    preset = get_preset("kim2024")
    path = tmp_path / "a.wav"
    soundfile.write(path, toy_audio("a", 1, RATE), RATE)  # decoding resamples it to the preset's rate
    items = pd.DataFrame({"item_id": ["a"], "path": [str(path)]})
    real = extract_features(items, preset)["a"]
    decoded = front_end_signal(str(path), preset)
    np.testing.assert_array_equal(waveform_features([decoded], preset)[0], real)  # one implementation
    # the front end peak-normalises what it decodes, so a change of level alone changes no row (to rounding)
    np.testing.assert_allclose(waveform_features([0.1 * decoded], preset)[0], real, atol=1e-4)


@pytest.mark.parametrize("name, options", [("speed", {}), ("pitch", {}), ("noise", {}), ("wavaug", {"p": 1.0})])
def test_each_baseline_changes_training_rows_and_keeps_their_shape(tmp_path, name, options):
    cls = get_generator_class(name)
    workload, fold = toy_workload(cls, tmp_path)  # toy recordings on disk, read back by the cell's front end
    data = workload.fold_data(fold, seed=0)

    def generated(seed: int):
        gen = cls(**options).use_front_end(waveform_front_end(workload, data)).fit(data.train)
        return gen.generate({label: 2 for label in data.train.labels}, seed=seed), gen.front_end.read_ids

    rows, read = generated(seed=0)
    assert len(rows) == 2 * len(data.train.labels) and rows.x.shape[1:] == data.train.x.shape[1:]
    train_row = {item: k for k, item in enumerate(data.train.item_ids)}
    for k, item_id in enumerate(rows.item_ids):
        source = item_id.split(":")[2]  # gen:<name>:<source item>:<copy>
        assert source in data.fold.train and source in read
        assert not np.allclose(rows.x[k].numpy(), data.train.x[train_row[source]].numpy(), atol=1e-3), item_id
    assert read <= set(data.fold.train)
    again, _ = generated(seed=0)
    other, _ = generated(seed=1)
    assert torch.equal(again.x, rows.x) and again.item_ids == rows.item_ids
    assert not torch.equal(other.x, rows.x)


def test_the_front_end_refuses_items_outside_the_training_fold():
    front = WaveformFrontEnd(sample_rate=RATE, read_audio=lambda item: np.zeros(RATE, np.float32),
                             to_rows=lambda waveforms, sources: [], allowed=frozenset({"train/1"}))
    front.read("train/1")
    with pytest.raises(LeakageError, match="test/9"):
        front.read("test/9")
    assert front.read_ids == {"train/1"}


def test_a_recording_missing_where_the_cell_runs_is_one_line_naming_it(tmp_path):
    gone, preset = tmp_path / "gone.wav", get_preset("emogen")
    front = WaveformFrontEnd(sample_rate=RATE, read_audio=lambda item: front_end_signal(str(gone), preset),
                             to_rows=lambda waveforms, sources: [], allowed=frozenset({"train/1"}))
    with pytest.raises(EmoaugError, match="gone.wav.*missing.*same path") as caught:
        front.read("train/1")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name, options, says", [
    ("pitch", {"min_semitones": 3, "max_semitones": 1}, "min_semitones"),
    ("noise", {"color": "grey"}, "color"),
    ("speed", {"factors": [3.0]}, "factors"),
    ("wavaug", {"transforms": ["Shift", "Reverb"]}, "transforms"),
    ("wavaug", {"params": '{"Shift": {"min_shfit": 0.1}}'}, "min_shfit"),
    ("wavaug", {"params": '{"Gain": {}}'}, "not in the chain"),
    ("wavaug", {"transforms": ["Gain"], "params": '{"Gain": {"min_gain_db": 6, "max_gain_db": 1}}'}, "Gain"),
    ("wavaug", {"transforms": ["Gain"], "params": '{"Gain": {"min_gain_db": "loud"}}'}, "Gain"),
])
def test_bad_options_are_one_line_errors(name, options, says):
    with pytest.raises(EmoaugError, match=says) as caught:
        get_generator_class(name)(**options)
    assert "\n" not in str(caught.value)


def test_a_run_with_waveform_baselines_tables_and_audits_them(tmp_path):
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08", "09", "10"), texts=("a01",))
    out = tmp_path / "runs"
    assert main(["--corpus", "emodb", "--data-root", str(root), "--profile", "smoke", "--gen", "none,speed,noise",
                 "--protocol", "augment", "--reference", "off", "--out", str(out), "--no-mlflow"]) == 0
    run_dir = only_run_dir(out)
    table = pd.read_csv(run_dir / "generators.csv").set_index("generator")
    assert list(table.index) == ["none", "speed", "noise"]
    assert (table.loc[["speed", "noise"], "n_synthetic_rows"] > 0).all()
    audit = json.loads((run_dir / "leakage_audit.json").read_text())
    read = [c for c in audit["checks"] if c["what"] == "generator 'speed': audio read"]
    assert read and all(c["n_items"] > 0 and c["test_speakers_seen"] == 0 for c in read)
    config = json.loads((run_dir / "config.json").read_text())["experiment"]
    assert config["generator_configs"]["speed"] == {"factors": [0.9, 1.1]}
    comparisons = pd.read_csv(run_dir / "comparisons.csv")  # paired with none like any generator
    assert {"speed", "noise"} <= set(comparisons["generator"])
    assert "speed" in (run_dir / "tables" / "generators.md").read_text()
    assert main(["leaderboard", "--out", str(out)]) == 0
    assert {"speed", "noise"} <= set(pd.read_csv(out / "leaderboard.csv")["generator"])
