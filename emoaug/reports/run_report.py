"""Write a finished run's tables and figures into its folder and return the terminal text."""

from __future__ import annotations

from pathlib import Path

from ..bench import io
from . import plots, tables


def render_run(run_dir: Path, result, *, split: str, n_folds: int, n_seeds: int, corpus: str) -> str:
    """Render from the result frames only (``result``: emoaug.bench.runner.RunResult)."""
    note = tables.definitions_note(result.labels, split, n_folds, n_seeds) + " " + tables.QUALITY_NOTE
    table = tables.generator_table(result.generators)
    title = f"SER on {corpus}: real vs real+synthetic per generator"
    out = Path(run_dir) / "tables"
    io.write_text(out / "generators.md", tables.to_markdown(table, title, note))
    io.write_text(out / "generators.tex", tables.to_latex(table, title, note))
    io.write_csv(out / "generators.csv", table)
    for generator, confusion in result.confusions.items():
        name = io.safe_name(generator)
        plots.confusion_heatmap(confusion, f"{corpus} / {generator}: confusion (% of true class)",
                                Path(run_dir) / "figures" / f"confusion_{name}.png")
    return tables.to_text(table, title, note)
