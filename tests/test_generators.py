"""Generator registry, the real-only baseline and SpecAugment."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from emoaug.errors import EmoaugError
from emoaug.featureset import FeatureSet, RowFile
from emoaug.generators import available_generators, get_generator_class, make_generator
from emoaug.generators.base import Generator
from emoaug.generators.none import NoneGenerator
from emoaug.generators.specaugment import SpecAugment, mask_grid, mask_limits, sample_masks, spec_augment

LABELS = ("neutral", "happy", "angry")
N_MELS, N_FRAMES = 40, 100  # F = min(27, floor(40 * 27/80)) = 13, T = min(40, floor(0.2 * 100)) = 20


class TinyGen(Generator):
    """A plugin defined outside emoaug, resolved through ``module:Class``."""

    name = "tiny"

    def _fit(self, train):
        pass


class NotAGenerator:
    pass


def make_train(counts=(3, 2, 4), seed: int = 0) -> FeatureSet:
    """Strictly positive rows (so a 0.0 fill is unambiguous), 3 classes, one speaker per item."""
    y = torch.tensor([c for c, n in enumerate(counts) for _ in range(n)], dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((len(y), N_MELS, N_FRAMES), generator=generator) + 1.0
    return FeatureSet(
        x=x,
        y=y,
        labels=LABELS,
        item_ids=[f"c/item{i}" for i in range(len(y))],
        speakers=[f"c/spk{i % 2}" for i in range(len(y))],
    )


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, width) of each run of True."""
    out, start = [], None
    for i, flag in enumerate([*flags.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((start, i - start))
            start = None
    return out


# ----- registry ------------------------------------------------------------------------------------


def test_registry_lists_and_builds_builtins():
    assert {"none", "specaugment"} <= set(available_generators())
    assert get_generator_class("none") is NoneGenerator
    assert get_generator_class("specaugment") is SpecAugment
    generator = make_generator("specaugment", time_masks=1)
    assert isinstance(generator, SpecAugment) and generator.get_config()["time_masks"] == 1


def test_registry_resolves_import_path_and_rejects_bad_names():
    assert get_generator_class(f"{__name__}:TinyGen") is TinyGen
    with pytest.raises(EmoaugError, match="--gen.*not an emoaug.generators.Generator"):
        get_generator_class(f"{__name__}:NotAGenerator")
    with pytest.raises(EmoaugError, match="--gen: unknown generator 'no-such-gen'"):
        get_generator_class("no-such-gen")
    with pytest.raises(EmoaugError, match="--gen: cannot import"):
        get_generator_class("no_such_module_xyz:Gen")


# ----- none ----------------------------------------------------------------------------------------


def test_none_generates_nothing():
    train = make_train()
    generator = make_generator("none").fit(train)
    assert generator.produces_nothing and generator.fitted_item_ids == sorted(train.item_ids)
    synthetic = generator.generate({"happy": 5, "angry": 2}, seed=0)
    assert tuple(synthetic.x.shape) == (0, N_MELS, N_FRAMES) and len(synthetic.y) == 0
    assert synthetic.labels == LABELS
    combined = FeatureSet.concat([train, synthetic])
    assert torch.equal(combined.x, train.x) and combined.item_ids == train.item_ids
    with pytest.raises(EmoaugError, match="'none'"):
        NoneGenerator(strength=2)


# ----- spec_augment / masks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_mels, n_frames, expected",
    [(80, 300, (27, 40)), (128, 300, (27, 40)), (64, 100, (21, 20)), (40, 100, (13, 20)), (40, 4, (13, 0))],
)
def test_mask_limits(n_mels, n_frames, expected):
    limits = mask_limits(
        n_mels, n_frames, max_freq_width=27, max_freq_fraction=27 / 80, max_time_width=40, max_time_fraction=0.2
    )
    assert limits == expected


def test_single_masks_are_contiguous_bands_within_limits():
    x = torch.rand((200, N_MELS, N_FRAMES), generator=torch.Generator().manual_seed(1)) + 1.0
    out = spec_augment(x, np.random.default_rng(0), freq_masks=1, time_masks=1, mask_value=0.0)
    masked = (out == 0).numpy()
    assert np.array_equal(out.numpy()[~masked], x.numpy()[~masked])  # everything else untouched
    freq_widths, time_widths = [], []
    for grid in masked:
        full_rows, full_cols = grid.all(axis=1), grid.all(axis=0)
        # every masked cell lies in a fully masked mel band or a fully masked frame band
        assert np.array_equal(grid, full_rows[:, None] | full_cols[None, :])
        freq_runs, time_runs = runs(full_rows), runs(full_cols)
        assert len(freq_runs) <= 1 and len(time_runs) <= 1
        freq_widths.append(freq_runs[0][1] if freq_runs else 0)
        time_widths.append(time_runs[0][1] if time_runs else 0)
    assert max(freq_widths) == 13 and max(time_widths) == 20  # limits reached, never exceeded
    assert min(freq_widths) == 0 and min(time_widths) == 0  # U{0..F} includes no mask


def test_spec_augment_matches_its_sampled_masks_and_fills_row_mean():
    x = torch.rand((5, N_MELS, N_FRAMES), generator=torch.Generator().manual_seed(2))
    out = spec_augment(x, np.random.default_rng(4))  # defaults: 2 + 2 masks, mean fill
    draw = sample_masks(5, N_MELS, N_FRAMES, np.random.default_rng(4))
    grid = mask_grid(draw, N_MELS, N_FRAMES)
    assert grid.any()
    assert (draw.freq_width <= 13).all() and (draw.time_width <= 20).all()
    for row in range(5):
        mean = x[row].mean()
        assert torch.allclose(out[row][grid[row]], mean.expand(int(grid[row].sum())))
        assert torch.equal(out[row][~grid[row]], x[row][~grid[row]])
    into = torch.empty_like(x)
    assert spec_augment(x, np.random.default_rng(4), out=into) is into and torch.equal(into, out)
    single = spec_augment(x[0], np.random.default_rng(4))  # a 2-D row is a batch of one
    assert single.shape == x[0].shape and torch.equal(single, spec_augment(x[:1], np.random.default_rng(4))[0])
    assert not torch.equal(single, x[0])


# ----- SpecAugment generator -----------------------------------------------------------------------


def test_specaugment_counts_shapes_labels_and_provenance():
    train = make_train()
    generator = SpecAugment(mask_value="zero").fit(train)
    synthetic = generator.generate({"neutral": 7, "angry": 2}, seed=0)
    assert tuple(synthetic.x.shape) == (9, N_MELS, N_FRAMES) and synthetic.x.dtype == torch.float32
    assert synthetic.class_counts() == {"neutral": 7, "happy": 0, "angry": 2}
    assert synthetic.labels == LABELS
    assert len(set(synthetic.item_ids)) == 9
    source_row = {item: row for row, item in enumerate(train.item_ids)}
    for row, item_id in enumerate(synthetic.item_ids):
        prefix, name, source_id, k = item_id.split(":")
        assert (prefix, name) == ("gen", "specaugment") and int(k) >= 0
        src = source_row[source_id]
        assert train.y[src] == synthetic.y[row]
        assert synthetic.speakers[row] == train.speakers[src]
        kept = synthetic.x[row] != 0  # unmasked cells are the source's cells
        assert torch.equal(synthetic.x[row][kept], train.x[src][kept])
    # balanced cycling: 3 neutral sources for 7 rows -> used 3, 2, 2 times
    uses = Counter(i.split(":")[2] for i, y in zip(synthetic.item_ids, synthetic.y.tolist()) if y == 0)
    assert sorted(uses.values()) == [2, 2, 3]
    most_used = uses.most_common(1)[0][0]
    assert sorted(int(i.split(":")[3]) for i in synthetic.item_ids if i.split(":")[2] == most_used) == [0, 1, 2]


def test_specaugment_is_deterministic_pure_and_seed_dependent():
    train = make_train()
    before = train.x.clone()
    generator = SpecAugment().fit(train)
    request = {"neutral": 4, "happy": 4, "angry": 4}
    first = generator.generate(request, seed=11)
    again = generator.generate(request, seed=11)
    other = generator.generate(request, seed=12)
    assert torch.equal(first.x, again.x) and first.item_ids == again.item_ids
    assert not torch.equal(first.x, other.x)
    assert torch.equal(train.x, before)  # source rows untouched
    # a worker's training rows are in a file (x unused: NaN): the same rows are generated
    stored = RowFile.write([train.x.numpy()], train.x.shape[1:])
    from_file = FeatureSet(x=torch.full(train.x.shape, float("nan")), y=train.y, labels=train.labels,
                           item_ids=train.item_ids, speakers=train.speakers, stored=stored)
    assert torch.equal(SpecAugment().fit(from_file).generate(request, seed=11).x, first.x)
    # one random stream per class: a class's rows do not depend on what else was requested
    alone = generator.generate({"happy": 4}, seed=11)
    assert torch.equal(alone.x, first.x[first.y == 1]) and alone.item_ids == [
        i for i, y in zip(first.item_ids, first.y.tolist()) if y == 1
    ]


def test_specaugment_without_speakers_and_empty_request():
    train = make_train()
    train.speakers = []
    generator = SpecAugment().fit(train)
    assert generator.generate({"happy": 2}, seed=0).speakers == []
    empty = generator.generate({}, seed=0)
    assert tuple(empty.x.shape) == (0, N_MELS, N_FRAMES)


def test_specaugment_errors():
    with pytest.raises(EmoaugError, match="unknown option.*strength"):
        SpecAugment(strength=2)
    with pytest.raises(EmoaugError, match="freq_masks"):
        SpecAugment(freq_masks=-1)
    with pytest.raises(EmoaugError, match="mask_value"):
        SpecAugment(mask_value="median")
    with pytest.raises(EmoaugError, match="before fit"):
        SpecAugment().generate({"happy": 1})
    generator = SpecAugment().fit(make_train(counts=(3, 0, 2)))
    with pytest.raises(EmoaugError, match="no training rows of class 'happy'"):
        generator.generate({"happy": 1})
    with pytest.raises(EmoaugError, match="n_per_class"):
        generator.generate({"neutral": -1})
    with pytest.raises(EmoaugError, match="unknown labels"):
        generator.generate({"surprise": 1})


def test_specaugment_transform_masks_given_rows_and_sampling_generators_refuse():
    from emoaug.generators import make_generator

    train = make_train()
    gen = make_generator("specaugment").fit(train)
    rows = make_train(seed=1)
    out = gen.transform(rows, rows.label_names(), seed=0)
    assert out.x.shape == rows.x.shape and out.speakers == rows.speakers
    changed = (out.x != rows.x)
    assert bool(changed.any()) and bool((out.x[~changed] == rows.x[~changed]).all())  # masks only
    assert gen.transforms_rows and not make_generator("none").transforms_rows
    with pytest.raises(EmoaugError, match="cannot transform"):
        make_generator("none").fit(train).transform(rows, rows.label_names())


def test_transform_of_no_rows_is_an_empty_set_of_the_same_shape():
    from emoaug.generators import make_generator

    gen = make_generator("specaugment").fit(make_train())
    empty = make_train().subset([])
    out = gen.transform(empty, [], seed=0)
    assert out.x.shape == (0, N_MELS, N_FRAMES) and len(out.y) == 0 and out.item_ids == []
