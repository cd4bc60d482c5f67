"""The report's one HTML page, ``OUT/index.html``: a summary of the sweep or checkpoint (its
configuration, validation and test metrics), every drawn figure embedded as base64 with its
caption, the skipped figures with the reason for each, and the notes. It opens from disk with no
server.

(Not ``html.py``: ``python analysis/report.py`` puts analysis/ first on ``sys.path``, where that
name would shadow the standard library's ``html``.)
"""

from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path
from typing import Any

from analysis.figures import Entry
from analysis.inputs import Inputs
from analysis.plotting import CLASSES
from analysis.sweep_folder import MissingInput
from sweeps.folder.layout import BEST_FILE, RESULTS_FILE

PAGE_FILE = "index.html"

CSS = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 3px 10px; text-align: left; font-size: 14px; }
th { background: #f4f4f4; font-weight: normal; }
tr.searched th, tr.searched td { background: #fff3d6; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; } .skipped { color: #8a4b00; }
"""


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(rows: dict[str, Any], highlight: set[str] = frozenset()) -> str:
    scalars = {k: v for k, v in rows.items() if not isinstance(v, list | dict)}
    if not scalars:
        return "<p>none</p>"
    body = "".join(
        f"<tr{' class=searched' if k in highlight else ''}><th>{html.escape(str(k))}</th>"
        f"<td>{html.escape(_format(v))}</td></tr>"
        for k, v in scalars.items()
    )
    return f"<table>{body}</table>"


def summary_html(inputs: Inputs) -> tuple[str, str]:
    """(page title, the summary section's HTML)."""
    parts = []
    test = inputs.test_metrics()
    if inputs.sweep:
        sweep = inputs.sweep
        best = sweep.best or {}
        title = f"{sweep.name}: {sweep.model} sweep"
        info = {
            "folder": str(sweep.root),
            "model": sweep.model,
            "metric": f"{sweep.metric} ({sweep.mode})",
            "num_samples": sweep.record.get("num_samples"),
            "max_epochs": sweep.record.get("max_epochs"),
            "study": f"{sweep.record.get('study_name')} in {sweep.record.get('study_storage')}",
            "best trial": best.get("trial_id", f"none yet (no {BEST_FILE})"),
        }
        try:
            results = sweep.results()
            info[f"trials in {RESULTS_FILE}"] = results["trial_id"].nunique()
            if "stopped_early" in results:
                stopped = results.groupby("trial_id")["stopped_early"].last()
                info["stopped early by ASHA"] = int(stopped.sum())
        except MissingInput:
            pass
        searched = set(sweep.record.get("search_space") or {})
        config, val = best.get("config") or {}, best.get("val") or {}
        if inputs.given_checkpoint:
            info["figures drawn from"] = inputs.given_checkpoint["path"]
    else:
        payload = inputs.payload
        title = f"{Path(payload['path']).parent.name}: {payload['kind']} checkpoint"
        info = {"checkpoint": payload["path"], "model": payload["kind"], "epoch": payload["epoch"]}
        searched = set()
        config = payload.get("config") or {}
        val = dict(payload["history"][-1]) if payload.get("history") else {}
    parts.append("<h2>Summary</h2>" + _table(info))
    label = "Best configuration" if inputs.sweep else "Configuration"
    note = " (searched hyperparameters highlighted)" if searched else ""
    parts.append(f"<h2>{label}{note}</h2>" + _table(config, searched))
    parts.append("<h2>Validation metrics</h2>" + _table(val))
    parts.append("<h2>Test metrics</h2>" + _table(test))
    if "per_class_acc" in test:
        rows = dict(zip(CLASSES, test["per_class_acc"], strict=False))
        parts.append("<h2>Per-class test accuracy</h2>" + _table(rows))
    return title, "\n".join(parts)


def write_html(out: Path, inputs: Inputs, entries: list[Entry]) -> Path:
    """``out/index.html`` from the summary and the figures already drawn into ``out``."""
    title, summary = summary_html(inputs)
    body = [f"<h1>{html.escape(title)}</h1>", summary]
    for section in dict.fromkeys(e.section for e in entries):
        drawn = [e for e in entries if e.section == section and not e.skipped]
        if not drawn:
            continue
        body.append(f"<h2>{html.escape(section)}</h2>")
        for e in drawn:
            data = base64.b64encode((out / e.file).read_bytes()).decode("ascii")
            body.append(
                f'<figure id="{e.file[:-4]}"><img src="data:image/png;base64,{data}" '
                f'alt="{html.escape(e.title)}"><figcaption><b>{html.escape(e.title)}.</b> '
                f'{html.escape(e.caption)} <a href="{e.file}">{e.file}</a></figcaption></figure>'
            )
    skipped = [e for e in entries if e.skipped]
    if skipped:
        body.append("<h2>Skipped figures</h2><ul>")
        body += [
            f'<li class="skipped"><b>{e.file}</b> ({html.escape(e.title)}): '
            f"{html.escape(e.skipped)}</li>"
            for e in skipped
        ]
        body.append("</ul>")
    if inputs.notes:
        body.append("<h2>Notes</h2><ul>")
        body += [f"<li>{html.escape(n)}</li>" for n in inputs.notes]
        body.append("</ul>")
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    body.append(f"<p><small>written by analysis/report.py at {stamp}</small></p>")
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    path = out / PAGE_FILE
    path.write_text(page, encoding="utf-8")
    return path
