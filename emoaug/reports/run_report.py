"""Write a finished run's tables and figures into its folder and return the terminal text."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import storage as io
from . import plots, tables
from .html import write_html_report
from .paper_tables import paper_tables

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
    curve = getattr(result, "curve", pd.DataFrame())
    if not curve.empty:
        curve_table, curve_title = tables.ratio_curve_table(curve), f"{corpus}: UA vs synthetic ratio per generator"
        curve_note = f"{tables.CURVE_NOTE} {definitions}"
        index.append(write_table(out, "ratio_curve", curve_table, curve_title, curve_note))
        text.append(tables.to_text(curve_table, f"[ratio_curve] {curve_title}", curve_note))
        for arm, part in curve.groupby("arm", sort=False):
            suffix = "" if arm == "main" else f"_{arm}"
            plots.ratio_curve(part, f"{corpus} ({arm}): UA vs synthetic ratio",
                              Path(run_dir) / "figures" / f"ratio_curve{suffix}.png")
    io.write_json(out / tables.TABLE_INDEX, index)
    if result.confusions:
        plots.recall_bars(result.confusions, f"{corpus}: per-emotion recall per generator (pooled over folds)",
                          Path(run_dir) / "figures" / "recall_per_emotion.png")
    for generator, confusion in result.confusions.items():
        name = io.safe_name(generator)
        plots.confusion_heatmap(confusion, f"{corpus} / {generator}: confusion (% of true class)",
                                Path(run_dir) / "figures" / f"confusion_{name}.png")
    for (generator, arm), confusion in result.arm_confusions.items():  # e.g. the judge on enhanced utterances
        plots.confusion_heatmap(confusion, f"{corpus} / {generator} / {arm}: confusion (% of true class)",
                                Path(run_dir) / "figures" / f"confusion_{io.safe_name(generator)}_{arm}.png")
    render_examples(Path(run_dir), config)
    write_html_report(Path(run_dir))  # last: it embeds the tables, figures and audio written above
    return "\n".join(text)


def render_examples(run_dir: Path, config) -> None:
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
        export_audio(rows["generated"], normaliser, preset, run_dir / "audio" / path.stem,
                     n_per_emotion=profile.export_per_emotion, n_iter=profile.griffin_lim_iters)
        spectrogram_grid(rows["real"], rows["generated"], run_dir / "figures" / f"real_vs_{path.stem}.png",
                         n_per_emotion=1, title=f"{config.corpus}: real (train fold) vs {path.stem}")


def write_table(out: Path, name: str, table: pd.DataFrame, title: str, note: str) -> dict[str, str]:
    """Markdown, LaTeX and CSV of one table; returns its index entry."""
    io.write_text(out / f"{name}.md", tables.to_markdown(table, title, note))
    io.write_text(out / f"{name}.tex", tables.to_latex(table, title, note))
    io.write_csv(out / f"{name}.csv", table)
    return {"name": name, "title": title, "note": note}
