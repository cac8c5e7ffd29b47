"""One self-contained ``report.html`` per run, assembled from the files the run already wrote.

Nothing is computed here: tables come from ``tables/*.csv`` (with titles and notes from
``tables/index.json``), figures from ``figures/*.png`` and audio from ``audio/<generator>/*.wav``, all
inlined as data URIs so the page can be mailed or archived as one file. The resolved config, the split
audit and the leakage audit are shown as they were stored.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from .. import storage as io
from ..config import flat_record
from .tables import SPEAKER_NORM_NOTE, TABLE_INDEX

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { font-size: 0.85em; color: #555; max-width: 70em; }
.warning { background: #fee; border: 1px solid #c00; padding: 0.5em; font-weight: bold; }
img { max-width: 100%; margin: 0.5em 0; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; font-size: 0.8em; max-height: 30em; }
.clips { display: flex; flex-wrap: wrap; gap: 1em; }
.clip { font-size: 0.85em; }
"""


def write_html_report(run_dir: Path) -> Path:
    """Write ``<run_dir>/report.html`` and return its path."""
    run_dir = Path(run_dir)
    config = flat_record(io.read_json(run_dir / "config.json"))
    parts = [f"<h1>emoaug: {_esc(config.get('corpus', run_dir.name))}, profile {_esc(config.get('profile', ''))}</h1>",
             f"<p>Run folder <code>{_esc(run_dir.name)}</code>; generators: {_esc(', '.join(config.get('generators', [])))}."
             "</p>"]
    audit = _read_json(run_dir / "split_audit.json")
    if audit and not audit.get("speaker_independent", True):
        parts.append('<p class="warning">SPEAKER-DEPENDENT split: test speakers also appear in training. '
                     "Figures are not comparable with speaker-independent results.</p>")
    if config.get("speaker_norm"):
        parts.append(f"<p class=\"warning\">{_esc(SPEAKER_NORM_NOTE)}</p>")
    parts += _tables(run_dir) + _figures(run_dir) + _audio(run_dir)
    parts.append("<h2>Resolved configuration</h2>" + _pre(config))
    if audit:
        parts.append("<h2>Split audit</h2>" + _pre(audit))
    leakage = _read_json(run_dir / "leakage_audit.json")
    if leakage:
        parts.append("<h2>Leakage audit</h2>" + _pre(leakage))
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>emoaug report: "
            f"{_esc(run_dir.name)}</title><style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    return io.write_text(run_dir / "report.html", page)


def _tables(run_dir: Path) -> list[str]:
    index = _read_json(run_dir / "tables" / TABLE_INDEX) or []
    out = ["<h2>Tables</h2>"] if index else []
    for entry in index:
        frame = pd.read_csv(run_dir / "tables" / f"{entry['name']}.csv", dtype=str, keep_default_na=False)
        out.append(f"<h3>{_esc(entry['title'])}</h3>" + frame.to_html(index=False, border=0, escape=True)
                   + f"<p class=\"note\">{_esc(entry['note'])}</p>")
    return out


def _figures(run_dir: Path) -> list[str]:
    pngs = sorted((run_dir / "figures").glob("*.png"))
    out = ["<h2>Figures</h2>"] if pngs else []
    for png in pngs:
        out.append(f"<figure><img alt=\"{_esc(png.stem)}\" src=\"{_data_uri(png, 'image/png')}\">"
                   f"<figcaption>{_esc(png.stem)}</figcaption></figure>")
    return out


def _audio(run_dir: Path) -> list[str]:
    folders = sorted(p for p in (run_dir / "audio").glob("*") if p.is_dir())
    out = ["<h2>Generated audio (Griffin-Lim from the generated log-mel; first fold and seed)</h2>"] if folders else []
    for folder in folders:
        clips = [f"<div class=\"clip\">{_esc(wav.stem)}<br><audio controls preload=\"none\" "
                 f"src=\"{_data_uri(wav, 'audio/wav')}\"></audio></div>" for wav in sorted(folder.glob("*.wav"))]
        out.append(f"<h3>{_esc(folder.name)}</h3><div class=\"clips\">{''.join(clips)}</div>")
    return out


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _read_json(path: Path):
    return io.read_json(path) if path.exists() else None


def _pre(obj) -> str:
    return f"<pre>{_esc(json.dumps(obj, indent=2, default=str))}</pre>"


def _esc(text) -> str:
    return html.escape(str(text))
