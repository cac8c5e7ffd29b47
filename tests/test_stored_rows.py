"""A worker's fold rows kept in files (RowFile): what is read equals the in-memory rows, and the rows are not
held in the process."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from emoaug.bench.plan import Workload
from emoaug.classifiers import SERClassifier, TrainConfig
from emoaug.features import CachedFeatures, Normaliser, build_featureset
from emoaug.featureset import FeatureSet, RowFile, StackedFeatureSet
from emoaug.presets import get_preset
from emoaug.quality import MelScale
from emoaug.splits import Fold

LABELS = ("angry", "sad")
SMALL = {"channels": 8, "kernel_size": 3, "lstm_hidden": 4, "lstm_layers": 1}


def random_items(n_items: int, n_mels: int = 6, n_frames: int = 9, seed: int = 0):
    """item_id -> dB array of 1 or 2 segments, and the manifest (two speakers, two emotions)."""
    rng = np.random.default_rng(seed)
    features = {f"i{k}": rng.normal(-40, 10, size=(1 + k % 2, n_mels, n_frames)).astype(np.float32)
                for k in range(n_items)}
    items = pd.DataFrame({"item_id": list(features), "emotion": [LABELS[k % 2] for k in range(n_items)],
                          "speaker": [f"s{k % 3}" for k in range(n_items)]})
    return features, items


def both_ways(n_items: int = 12, **shape) -> tuple[FeatureSet, FeatureSet]:
    features, items = random_items(n_items, **shape)
    normaliser = Normaliser("zscore").fit(list(features.values()))
    return (build_featureset(features, items, LABELS, normaliser),
            build_featureset(features, items, LABELS, normaliser, stored=True))


def test_a_row_file_reads_what_numpy_indexing_reads():
    rows = np.random.default_rng(1).normal(size=(11, 3, 4)).astype(np.float32)
    stored = RowFile.write([rows[:4], rows[4:5], rows[5:]], (3, 4))
    assert stored.shape == rows.shape and len(stored) == 11
    for index in ([7, 0, 0, 10, 3], [2, 3, 4, 5], [9, 10, 4, 5, 6], [], list(range(11))):
        np.testing.assert_array_equal(stored.read(index), rows[index])
    np.testing.assert_array_equal(stored.read(torch.tensor([5, 1])), rows[[5, 1]])
    np.testing.assert_array_equal(stored[2:9:3], rows[2:9:3])
    mask = rows[:, 0, 0] > 0
    np.testing.assert_array_equal(stored[mask], rows[mask])
    np.testing.assert_array_equal(stored[np.int64(4)], rows[4])
    with pytest.raises(IndexError):
        stored.read([11])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(stored)).read(range(11)), rows)
    tensor = stored.as_tensor()
    assert torch.equal(tensor, torch.from_numpy(rows))
    tensor[0] = 0.0  # a private map: the file keeps its rows
    np.testing.assert_array_equal(stored.read([0]), rows[:1])


def test_stored_sets_hold_the_in_memory_rows_and_read_them_in_every_way():
    memory, stored = both_ways()
    assert memory.stored is None and stored.stored is not None
    assert torch.equal(memory.x, stored.x) and torch.equal(memory.y, stored.y)
    assert (memory.item_ids, memory.speakers) == (stored.item_ids, stored.speakers)
    batch = torch.tensor([17, 2, 3, 4, 0, 9])
    assert torch.equal(stored.rows(batch), memory.rows(batch)) and torch.equal(stored.block(5, 12), memory.x[5:12])
    np.testing.assert_array_equal(stored.row_source()[batch.numpy()], memory.row_source()[batch.numpy()])
    stacked = StackedFeatureSet([stored, memory.subset([3, 1])])
    assert torch.equal(stacked.rows(torch.tensor([len(stored) + 1, 0, 6])), FeatureSet.concat(
        [memory, memory.subset([3, 1])]).x[[len(stored) + 1, 0, 6]])
    scale = MelScale.fit(memory, Normaliser("none").fit([memory.x.numpy()]))
    identity = Normaliser("none").fit([memory.x.numpy()])
    np.testing.assert_array_equal(scale.view(stored, identity)[2:7], scale.view(memory, identity)[2:7])
    assert MelScale.fit(stored, identity) == scale


def without_x(fs: FeatureSet) -> FeatureSet:
    """The stored set with NaN in ``x``: anything that read x instead of the file would train on NaN."""
    return FeatureSet(x=torch.full(fs.x.shape, float("nan")), y=fs.y, labels=fs.labels, item_ids=fs.item_ids,
                      speakers=fs.speakers, stored=fs.stored)


def test_training_reads_its_batches_from_the_file_and_learns_what_it_learns_in_memory():
    memory, stored = both_ways(n_items=40, n_mels=8, n_frames=12)
    val_memory, val_stored = both_ways(n_items=10, n_mels=8, n_frames=12)
    extra = memory.subset(list(range(0, 40, 3)))  # in memory, like generated rows
    config = TrainConfig(epochs=2, batch_size=8, patience=None, seed=3, input_norm="utterance_mean")
    runs = [SERClassifier("cnn_blstm", config, **SMALL).fit(StackedFeatureSet([train, extra]), val)
            for train, val in ((memory, val_memory), (without_x(stored), without_x(val_stored)))]
    first, second = (run.state_dict() for run in runs)
    assert all(torch.equal(first["model"][k], second["model"][k]) for k in first["model"])
    # the same losses and validation scores, epoch by epoch
    assert [{**r, "seconds": 0} for r in first["history"]] == [{**r, "seconds": 0} for r in second["history"]]
    np.testing.assert_array_equal(runs[0].predict_proba(memory), runs[1].predict_proba(without_x(stored)))
    np.testing.assert_array_equal(runs[0].embed(memory), runs[1].embed(without_x(stored)))


def resident_mib() -> float:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return (int(fields["RssAnon"].split()[0]) + int(fields["RssFile"].split()[0])) / 1024


def cached_workload(tmp_path, n_items: int) -> Workload:
    """A workload whose features are files of a cache, as a worker receives it (pickled), with one fold."""
    features, items = random_items(n_items, n_mels=64, n_frames=200)
    paths = {}
    for item_id, array in features.items():
        paths[item_id] = str(tmp_path / f"{item_id}.npy")
        np.save(paths[item_id], array)
    ids = list(features)
    fold = Fold(0, train=ids[: n_items * 3 // 5], val=ids[n_items * 3 // 5: n_items * 4 // 5],
                test=ids[n_items * 4 // 5:])
    workload = Workload(preset=get_preset("emogen"), labels=LABELS, items=items, folds=[fold],
                        features=CachedFeatures(paths))
    workload.normaliser(fold)  # fit in the driver and shipped, as the runner does
    return pickle.loads(pickle.dumps(workload))


def test_a_worker_keeps_its_fold_in_files_not_in_memory(tmp_path):
    workload = cached_workload(tmp_path, n_items=300)  # 450 rows of 64 x 200: 22 MiB of float32
    fold_mib = 450 * 64 * 200 * 4 / 2**20
    before = resident_mib()
    data = workload.fold_data(0, seed=0)
    sets = (data.train, data.val, data.test)
    assert all(part.stored is not None for part in sets) and sum(map(len, sets)) == 450
    config = TrainConfig(epochs=1, batch_size=16, patience=None, input_norm="utterance_mean")
    SERClassifier("cnn_blstm", config, **SMALL).fit(data.train, data.val).predict_items(data.test)
    assert resident_mib() - before < fold_mib / 2  # an epoch over every row did not make them resident
    memory = Workload(preset=workload.preset, labels=LABELS, items=workload.items, folds=workload.folds,
                      features={k: np.load(v) for k, v in workload.features.paths.items()})
    memory._normalisers = workload._normalisers
    in_memory = memory.fold_data(0, seed=0)
    assert in_memory.train.stored is None  # features held in memory (no cache): the rows stay in tensors
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(in_memory, part).x, getattr(data, part).x)
