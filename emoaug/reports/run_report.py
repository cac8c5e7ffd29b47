"""Write a finished run's tables and figures into its folder and return the terminal text."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .. import storage as io
from . import plots, tables
from .html import write_html_report
from .paper_tables import paper_tables

#: bump when a figure or the audio would come out differently from the same inputs (plots.py, listen.py)
RENDER_VERSION = 1


class RenderLog:
    """Figures and audio are drawn again only when what they are drawn from changed.

    ``render_keys.json`` in the run folder maps each output (a file, or an audio folder) to a key of its inputs
    and the size and SHA-256 of what was written. A re-run of a stored run, or ``report``, skips an output whose key is the
    same and whose bytes are still those written; anything else (new inputs, a newer renderer, a deleted or
    edited file) is drawn again. Griffin-Lim audio at the paper profile's 64 iterations made a stored re-run
    spend most of its time re-rendering."""

    FILE = "render_keys.json"

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        try:
            entries = io.read_json(self.run_dir / self.FILE)
        except (OSError, ValueError):
            entries = {}
        self.entries = entries if isinstance(entries, dict) else {}

    def render(self, output: Path, inputs, draw: Callable[[], object]) -> None:
        """Call ``draw`` (which writes ``output``) unless ``output`` was written from the same ``inputs``."""
        import matplotlib

        name = Path(output).relative_to(self.run_dir).as_posix()
        key = io.stable_hash({"renderer": RENDER_VERSION, "matplotlib": matplotlib.__version__, "inputs": inputs})
        entry = self.entries.get(name)
        if isinstance(entry, dict) and entry.get("key") == key and entry.get("written") == _written(Path(output)):
            return
        draw()
        self.entries[name] = {"key": key, "written": _written(Path(output))}

    def save(self) -> None:
        io.write_json(self.run_dir / self.FILE, self.entries)


def _written(path: Path) -> dict | None:
    """What is at ``path`` now: the size and SHA-256 (:func:`emoaug.storage.file_record`) of the file, or of each
    file of the folder by name; ``None`` when there is nothing."""
    if path.is_file():
        return io.file_record(path)
    if path.is_dir():
        return {item.relative_to(path).as_posix(): io.file_record(item)
                for item in sorted(path.rglob("*")) if item.is_file()}
    return None


def _frame_key(frame: pd.DataFrame) -> str:
    return frame.to_csv()


def allowed_near_duplicates(run_dir: Path) -> int:
    """How many test items ran with near-copies in training (--allow-near-duplicates), from the split audit."""
    try:
        section = io.read_json(run_dir / "split_audit.json").get("near_duplicates") or {}
    except (OSError, ValueError, AttributeError):
        return 0
    return int(section.get("test_items_with_copies", 0)) if section.get("allowed") else 0


def render_run(run_dir: Path, result) -> str:
    """Tables, figures and ``report.html`` from the result frames only (``result``:
    emoaug.bench.results.RunResult, fresh or loaded from disk); returns the terminal text."""
    config, out = result.experiment, Path(run_dir) / "tables"
    corpus = config.corpus
    # the folds that ran (LOSO: one per speaker; the paper split: one), not --folds
    n_folds, n_seeds = result.fold_metrics["fold"].nunique(), result.fold_metrics["seed"].nunique()
    flags = {"speaker_norm": getattr(config, "speaker_norm", False),
             "near_duplicates": allowed_near_duplicates(Path(run_dir))}
    definitions = tables.definitions_note(result.labels, config.split, n_folds, n_seeds, cells=False, **flags)
    note = f"{tables.definitions_note(result.labels, config.split, n_folds, n_seeds, **flags)} {tables.QUALITY_NOTE}"
    reference = getattr(result, "reference", pd.DataFrame())
    if not reference.empty:
        note += " " + tables.reference_note(config)
    table = tables.generator_table(result.generators, reference)
    title = f"SER on {corpus}: real vs real+synthetic per generator"
    index = [write_table(out, "generators", table, title, note)]
    text = [tables.to_text(table, title, note)]
    paper, skipped = paper_tables(result)
    for extra in paper:
        extra_note = f"{extra.note} {definitions}"  # every table states WA/UA and the split
        index.append(write_table(out, extra.name, extra.frame, extra.title, extra_note))
        text.append(tables.to_text(extra.frame, f"[{extra.name}] {extra.title}", extra_note))
    text += [f"not written: {line}" for line in skipped]
    figures, log = Path(run_dir) / "figures", RenderLog(Path(run_dir))

    def figure(name: str, plot, data, title: str, *key_frames: pd.DataFrame) -> None:
        """``plot(data, title, path)`` into figures/``name``, unless drawn before from the same frames and title."""
        log.render(figures / name, {"title": title, "frames": [_frame_key(f) for f in key_frames]},
                   lambda: plot(data, title, figures / name))

    curve = getattr(result, "curve", pd.DataFrame())
    if not curve.empty:
        curve_table, curve_title = tables.ratio_curve_table(curve), f"{corpus}: UA vs synthetic ratio per generator"
        curve_note = f"{tables.CURVE_NOTE} {definitions}"
        index.append(write_table(out, "ratio_curve", curve_table, curve_title, curve_note))
        text.append(tables.to_text(curve_table, f"[ratio_curve] {curve_title}", curve_note))
        for arm, part in curve.groupby("arm", sort=False):
            suffix = "" if arm == "main" else f"_{arm}"
            figure(f"ratio_curve{suffix}.png", plots.ratio_curve, part, f"{corpus} ({arm}): UA vs synthetic ratio",
                   part)
    io.write_json(out / tables.TABLE_INDEX, index)
    if result.confusions:
        figure("recall_per_emotion.png", plots.recall_bars, result.confusions,
               f"{corpus}: per-emotion recall per generator (pooled over folds)",
               pd.DataFrame({"generator": list(result.confusions)}), *result.confusions.values())
    for generator, confusion in result.confusions.items():
        figure(f"confusion_{io.safe_name(generator)}.png", plots.confusion_heatmap, confusion,
               f"{corpus} / {generator}: confusion (% of true class)", confusion)
    for (generator, arm), confusion in result.arm_confusions.items():  # e.g. the judge on enhanced utterances
        figure(f"confusion_{io.safe_name(generator)}_{arm}.png", plots.confusion_heatmap, confusion,
               f"{corpus} / {generator} / {arm}: confusion (% of true class)", confusion)
    render_examples(Path(run_dir), config, log)
    log.save()
    write_html_report(Path(run_dir))  # last: it embeds the tables, figures and audio written above
    return "\n".join(text)


def render_examples(run_dir: Path, config, log: RenderLog) -> None:
    """Listenable wavs and a real-vs-generated grid per generator, from the example rows the run kept of
    its first fold and seed (``examples/<generator>.pt``: normalised rows and that fold's normaliser)."""
    import torch

    from ..config import get_profile
    from ..features import Normaliser, get_preset
    from ..featureset import FeatureSet
    from .listen import export_audio, spectrogram_grid

    profile, preset = get_profile(config.profile), get_preset(config.preset)
    for path in sorted((run_dir / "examples").glob("*.pt")):
        stored = torch.load(path, map_location="cpu", weights_only=True)
        rows = {side: FeatureSet(stored[side]["x"], stored[side]["y"], tuple(stored[side]["labels"]),
                                 list(stored[side]["item_ids"])) for side in ("generated", "real")}
        if len(rows["generated"]) == 0:
            continue
        normaliser = Normaliser.from_dict(stored["normaliser"])
        examples = {side: _rows_key(fs) for side, fs in rows.items()}
        audio = {"rows": examples["generated"], "normaliser": stored["normaliser"], "preset": repr(preset),
                 "per_emotion": profile.export_per_emotion, "iterations": profile.griffin_lim_iters}
        log.render(run_dir / "audio" / path.stem, audio, lambda: export_audio(
            rows["generated"], normaliser, preset, run_dir / "audio" / path.stem,
            n_per_emotion=profile.export_per_emotion, n_iter=profile.griffin_lim_iters))
        grid = run_dir / "figures" / f"real_vs_{path.stem}.png"
        title = f"{config.corpus}: real (train fold) vs {path.stem}"
        log.render(grid, {"rows": examples, "title": title}, lambda: spectrogram_grid(
            rows["real"], rows["generated"], grid, n_per_emotion=1, title=title))


def _rows_key(rows) -> dict:
    """What identifies example rows: their values, labels and items (SHA-1 of the float32 bytes)."""
    import numpy as np

    values = np.ascontiguousarray(rows.x.detach().cpu().numpy(), dtype=np.float32)
    return {"x": hashlib.sha1(values.tobytes()).hexdigest(), "shape": list(values.shape), "y": rows.y.tolist(),
            "labels": list(rows.labels), "items": list(rows.item_ids)}


def write_table(out: Path, name: str, table: pd.DataFrame, title: str, note: str) -> dict[str, str]:
    """Markdown, LaTeX and CSV of one table; returns its index entry."""
    io.write_text(out / f"{name}.md", tables.to_markdown(table, title, note))
    io.write_text(out / f"{name}.tex", tables.to_latex(table, title, note))
    io.write_csv(out / f"{name}.csv", table)
    return {"name": name, "title": title, "note": note}
