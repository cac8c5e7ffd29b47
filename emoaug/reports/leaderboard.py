"""One leaderboard across finished runs: corpus x generator, grouped by identical protocol settings.

Each finished run folder already holds its per-generator results (``generators.csv``: UA, the paired comparison
with ``none`` of the same cells, MAD, FD, cost) and the classic reference (``reference.csv``). The leaderboard
only reads them: nothing is recomputed. Rows are comparable only when everything that fixes the real-only
classifier's numbers is the same -- profile, front end, classifier settings, label set, split, folds, seeds,
base seed, synthetic ratio, clip-length bounds and speaker normalisation -- so rows are grouped by those
settings ("protocols"), and the page says which settings tell the groups apart. Within a group, one corpus
copy (its manifest's content) and one generator config make one row; when several runs hold the same row
(content-keyed cells make their numbers the same), the most recent is shown and the others are counted.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import pandas as pd

from .. import storage as io
from ..config import flat_record
from ..bench.plan import content_of
from ..bench.results import run_folders, unfinished_reason
from ..storage import stable_hash
from .run_report import allowed_near_duplicates
from .tables import (MDE_HEADER, MDE_NOTE, REFERENCE_LABEL, mde_cell, number_cell, p_cell, paired_cell, rate_cell,
                     to_markdown)

log = logging.getLogger("emoaug")

#: config.json fields that fix a run's numbers for every generator (what makes two runs' rows comparable)
PROTOCOL_FIELDS = ("profile", "preset", "preset_settings", "classifier", "labels_resolved", "split", "n_folds",
                   "n_seeds", "seed", "synthetic_ratio", "min_duration", "max_duration", "speaker_norm")
BASELINE = "none"
COLUMNS = ["protocol", "corpus", "data", "generator", "generator_config", "real_ua", "real_ua_fold_mean", "ua",
           "ua_fold_mean", "ua_fold_std", "ua_paired_diff", "ua_ci_low", "ua_ci_high", "ua_p", "ua_p_holm",
           "ua_pairs", "ua_mde", "mad", "fd", "generator_fit_s", "generate_s", "device", "run", "finished",
           "also_in_runs", "protocol_settings"]


def finished_runs(out: Path) -> tuple[list[Path], list[str]]:
    """(run folders under ``out`` -- or ``out`` itself -- whose results are complete, one line per folder left
    out). A folder is a run folder when it holds ``config.json``; it is finished when it holds ``finished.json``
    and its recorded files are unchanged, or -- written before that marker existed -- when its report.html is
    no older than its results (:func:`emoaug.bench.results.unfinished_reason`)."""
    done, left_out = [], []
    for run_dir in run_folders(out):
        reason = unfinished_reason(run_dir, ("generators.csv", "manifest.csv"))
        if reason:
            left_out.append(f"{run_dir.name}: {reason}")
        else:
            done.append(run_dir)
    return done, left_out


def protocol_settings(config: dict) -> dict:
    settings = {name: config.get(name) for name in PROTOCOL_FIELDS}
    if not settings["speaker_norm"]:  # runs without it keep the protocol ids they had before it existed
        settings.pop("speaker_norm")
    return settings


def data_content(run_dir: Path) -> str:
    """Short hash of the items a run used: ids, audio content, labels and speakers (as the cells' keys)."""
    return content_of(pd.read_csv(run_dir / "manifest.csv", dtype=str))[:10]


def run_rows(run_dir: Path) -> list[dict]:
    """One row per generator of a finished run (and one for its classic reference)."""
    config = flat_record(io.read_json(run_dir / "config.json"))
    generators = pd.read_csv(run_dir / "generators.csv")
    none = generators[generators["generator"] == BASELINE]
    real = none.iloc[0] if not none.empty else pd.Series(dtype=float)
    settings = protocol_settings(config)
    near_copies = allowed_near_duplicates(run_dir)
    if near_copies:  # inflated scores: never side by side with clean runs, and flagged
        settings["near_duplicates_allowed"] = near_copies
    common = {"protocol": stable_hash(settings)[:8], "corpus": config["corpus"], "data": data_content(run_dir),
              "real_ua": real.get("ua"), "real_ua_fold_mean": real.get("ua_fold_mean"),
              "device": config.get("device", ""), "run": run_dir.name,
              "finished": (run_dir / "generators.csv").stat().st_mtime,
              "protocol_settings": json.dumps(settings, sort_keys=True, default=str)}
    rows = []
    for record in generators.to_dict("records"):
        generator = record["generator"]
        own_config = config.get("generator_configs", {}).get(generator, {})
        rows.append({**common, **{k: record.get(k) for k in COLUMNS if k in record},
                     "generator": generator, "generator_config": stable_hash(own_config)[:8]})
    reference_path = run_dir / "reference.csv"
    if reference_path.is_file():
        reference = pd.read_csv(reference_path)
        if not reference.empty:
            record = reference.iloc[0].to_dict()
            rows.append({**common, **{k: record.get(k) for k in COLUMNS if k in record},
                         "generator": REFERENCE_LABEL, "generator_config": config.get("reference", "")})
    return rows


def collect(out: Path) -> tuple[pd.DataFrame, list[str]]:
    """Every row of every finished run under ``out``, one per (protocol, corpus copy, generator and config)."""
    runs, left_out = finished_runs(out)
    rows = []
    for run_dir in runs:
        try:
            rows += run_rows(run_dir)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            left_out.append(f"{run_dir.name}: unreadable results ({type(err).__name__}: {err})")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if frame.empty:
        return frame, left_out
    identity = ["protocol", "corpus", "data", "generator", "generator_config"]
    frame = frame.sort_values("finished", kind="stable")
    frame["also_in_runs"] = frame.groupby(identity)["run"].transform("count") - 1
    frame = frame.drop_duplicates(identity, keep="last")
    return order_rows(frame), left_out


def order_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Per protocol and corpus: real only first, then the classic reference, then generators by paired ΔUA."""
    rank = frame["generator"].map({BASELINE: 0, REFERENCE_LABEL: 1}).fillna(2)
    return (frame.assign(_rank=rank, _gain=-frame["ua_paired_diff"].fillna(-1e9))
            .sort_values(["protocol", "corpus", "data", "_rank", "_gain", "generator"], kind="stable")
            .drop(columns=["_rank", "_gain"]).reset_index(drop=True))


# ------------------------------------------------------------------------------------------------ rendering
def describe_protocol(settings: dict) -> str:
    classifier = settings.get("classifier") or {}
    arch = classifier.get("arch", "?")
    return (f"profile {settings.get('profile')}, preset {settings.get('preset')}, classifier {arch} "
            f"({classifier.get('epochs')} epochs), labels [{', '.join(settings.get('labels_resolved') or [])}], "
            f"split {settings.get('split')} ({settings.get('n_folds')} folds x {settings.get('n_seeds')} seeds, base "
            f"seed {settings.get('seed')}), synthetic ratio {settings.get('synthetic_ratio')}"
            + (", SPEAKER-NORMALISED (uses test speakers' unlabelled audio)" if settings.get("speaker_norm") else "")
            + (f", NEAR-DUPLICATES ALLOWED ({settings['near_duplicates_allowed']} test items with near-copies in "
               "training)" if settings.get("near_duplicates_allowed") else ""))


def differing_settings(frame: pd.DataFrame) -> list[str]:
    settings = [json.loads(text) for text in dict.fromkeys(frame["protocol_settings"])]
    names = (*PROTOCOL_FIELDS, "near_duplicates_allowed")
    return [name for name in names if len({json.dumps(s.get(name), sort_keys=True) for s in settings}) > 1]


def display_table(group: pd.DataFrame) -> pd.DataFrame:
    several_copies = group.groupby("corpus")["data"].nunique().max() > 1
    rows = []
    for _, row in group.iterrows():
        corpus = f"{row.corpus} ({row.data})" if several_copies else row.corpus
        configs = group[(group["generator"] == row.generator) & (group["corpus"] == row.corpus)]
        name = row.generator if configs["generator_config"].nunique() < 2 else f"{row.generator} [{row.generator_config}]"
        rows.append({"corpus": corpus, "generator": name, "real-only UA %": rate_cell(row, "real_ua"),
                     "UA %": rate_cell(row, "ua"),
                     "paired ΔUA pp [95% CI]": paired_cell(row.ua_paired_diff, row.ua_ci_low, row.ua_ci_high),
                     "p / p_Holm": p_cell(row.ua_p, row.ua_p_holm),
                     MDE_HEADER: mde_cell(row.ua_mde, row.ua_paired_diff), "MAD": number_cell(row.mad, ".4f"),
                     "FD": number_cell(row.fd, ".3g"), "fit s": number_cell(row.generator_fit_s, ".1f"),
                     "sample s": number_cell(row.generate_s, ".1f"), "device": row.device,
                     "run": row.run + (f" (+{int(row.also_in_runs)})" if row.also_in_runs else "")})
    return pd.DataFrame(rows)


NOTE = ("UA = unweighted mean of per-class recall, pooled over the run's test folds (fold mean ± std over (seed, "
        "fold) cells); real-only UA = `none`, the same classifier without synthetic rows, on the same cells. "
        "Paired ΔUA = mean over cells of UA minus `none`'s UA in the same cell, bootstrap 95 % CI; p = two-sided "
        "Wilcoxon, p_Holm corrected across the generators of the run that produced the row. " + MDE_NOTE + " "
        "— = a run written before the MDE was stored. MAD, FD and seconds "
        "(generator fit and sampling, mean per fold) as in each run's generator table; seconds depend on the "
        "device. A corpus's content hash is shown when the group holds two copies of it. run: the run folder "
        "(+N: other runs with the same row).")


def groups(frame: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(title, protocol description, rows) per protocol group, most rows first."""
    out = []
    by_size = frame.groupby("protocol", sort=False).size().sort_values(ascending=False, kind="stable")
    for k, protocol in enumerate(by_size.index):
        group = frame[frame["protocol"] == protocol]
        settings = json.loads(group["protocol_settings"].iloc[0])
        out.append((f"Protocol {chr(ord('A') + k) if k < 26 else k + 1} ({protocol})",
                    describe_protocol(settings), group))
    return out


def render_markdown(frame: pd.DataFrame, left_out: list[str]) -> str:
    parts = ["# emoaug leaderboard\n"]
    differing = differing_settings(frame)
    if differing:
        parts.append(f"Rows of different protocols are not comparable; the protocols differ in: "
                     f"{', '.join(differing)}.\n")
    for title, description, group in groups(frame):
        parts.append(to_markdown(display_table(group), title, f"Settings: {description}. {NOTE}"))
    parts += [f"- left out: {line}" for line in left_out]
    return "\n".join(parts) + "\n"


def render_html(frame: pd.DataFrame, left_out: list[str]) -> str:
    from .html import STYLE

    parts = ["<h1>emoaug leaderboard</h1>"]
    differing = differing_settings(frame)
    if differing:
        parts.append(f"<p class=\"warning\">Rows of different protocols are not comparable; the protocols differ "
                     f"in: {html.escape(', '.join(differing))}.</p>")
    for title, description, group in groups(frame):
        parts.append(f"<h2>{html.escape(title)}</h2><p>Settings: {html.escape(description)}.</p>")
        parts.append(display_table(group).to_html(index=False, escape=True, na_rep=""))
        parts.append(f"<p class=\"note\">{html.escape(NOTE)}</p>")
    if left_out:
        parts.append("<h2>Left out</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in left_out)
                     + "</ul>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>emoaug leaderboard</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_leaderboard(out: Path, to: Path) -> tuple[pd.DataFrame, str, list[Path]]:
    """Collect ``out``'s finished runs; write leaderboard.md/.csv/.html into ``to``. Returns (the tidy rows,
    the Markdown, the files written). Raises ValueError when no finished run is found."""
    frame, left_out = collect(out)
    if frame.empty:
        reasons = f" ({'; '.join(left_out[:3])})" if left_out else ""
        raise ValueError(f"no finished runs under {out}{reasons}")
    for line in left_out:
        log.warning("leaderboard: left out %s", line)
    markdown = render_markdown(frame, left_out)
    written = [io.write_text(to / "leaderboard.md", markdown),
               io.write_csv(to / "leaderboard.csv", frame.drop(columns=["finished"])),
               io.write_text(to / "leaderboard.html", render_html(frame, left_out))]
    return frame, markdown, written
