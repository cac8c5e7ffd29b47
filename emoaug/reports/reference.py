"""Published numbers shipped with the package (``emoaug/reference/*.csv``) and "paper vs ours" tables.

The CSVs are copies of the reference tables of the papers we reproduce (Kim & Lee 2024; Malik et al.
2023; the EmoGen README). Renderers here only join our stored results with them: no metric is
recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import pandas as pd

from ..errors import EmoaugError

#: the corpus each paper table was measured on (paper columns are shown only when ours matches)
PAPER_CORPUS = {"malik2023_table01_mad": "iemocap"}


def available_reference_tables() -> list[str]:
    folder = resources.files("emoaug") / "reference"
    return sorted(p.name.removesuffix(".csv") for p in folder.iterdir() if p.name.endswith(".csv"))


def reference_table(name: str) -> pd.DataFrame:
    """One shipped reference table by name (file name without ``.csv``)."""
    path = resources.files("emoaug") / "reference" / f"{name}.csv"
    if not path.is_file():
        raise EmoaugError(f"reference table {name!r} is not shipped (have: {', '.join(available_reference_tables())})")
    with path.open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle)


def malik2023_table01(quality: pd.DataFrame, corpus: str, emotions: Sequence[str]) -> pd.DataFrame:
    """MAD per emotion and in total (the sum over emotions, as Malik et al. Table 1 adds them up).

    ``quality``: the runner's tidy quality frame; each value is the mean over (seed, fold) cells. One
    column per generator; the paper's column and ours minus the paper's (for each generator) are added
    only when ``corpus`` is the paper's (IEMOCAP), since MAD depends on the corpus.
    """
    mad = quality[quality["measure"].isin(["mad", "mad_sum"])]
    per_emotion = mad[(mad["measure"] == "mad") & mad["emotion"].isin(emotions)]
    total = mad[(mad["measure"] == "mad_sum") & (mad["emotion"] == "overall")].assign(emotion="total")
    cells = pd.concat([per_emotion, total]).groupby(["emotion", "generator"], sort=False)["value"].mean()
    table = cells.unstack("generator").reindex([*emotions, "total"])
    table.columns = [f"MAD {g}" for g in table.columns]
    if corpus == PAPER_CORPUS["malik2023_table01_mad"]:
        paper = reference_table("malik2023_table01_mad").set_index("emotion")["mad"]
        generators = list(table.columns)
        table["MAD paper (Malik et al. 2023)"] = paper.reindex(table.index)
        for column in generators:
            table[f"{column} - paper"] = table[column] - table["MAD paper (Malik et al. 2023)"]
    return table.reset_index(names="emotion")
