"""The HTML report: one self-contained page (figures inlined as base64 PNG), rendered with Jinja2.

Autoescaping is on for every value, and a Content-Security-Policy forbids scripts and any outside resource,
so a run id or model name with markup in it shows as text. The page needs no JavaScript: per-run details
are <details> elements, reached from the tables through anchors.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from rir.catalog import label
from rir.report.aggregate import VERDICT_RULE, VERDICTS, records
from rir.report.collect import RunRecord, mark_of
from rir.report.figures import read_manifest

TEMPLATE = "report.html"
HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                   "images_per_s")


def run_anchor(run_id: str) -> str:
    """A safe, unique HTML id for a run (ids from params.yaml are already safe; others are not trusted)."""
    digest = hashlib.sha1(run_id.encode("utf-8")).hexdigest()[:8]
    return f"run-{re.sub(r'[^A-Za-z0-9_-]', '_', run_id)[:80]}-{digest}"


def _distinct(values) -> list[str]:
    return sorted({str(v) for v in values if v not in (None, "")})


def provenance(records_: list[RunRecord], resolved: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The header: data source, hardware, software, git commit and total device time of the finished runs."""
    envs = [r.env for r in records_ if r.env]
    commits = _distinct(f"{(e.get('git_commit') or '?')[:12]}{' (dirty)' * bool(e.get('git_dirty'))}"
                        for e in envs)
    software = {key: _distinct(e.get(key) for e in envs) for key in ("python", "torch", "cuda", "cudnn")}
    devices = _distinct([e.get("device_name") or e.get("device") for e in envs]
                        + [r.metrics.get("device_name") for r in records_])
    seconds = sum(r.wall_time_s for r in records_)
    return {
        "profile": resolved.get("profile"), "synthetic": data["synthetic"], "data_kind": data["kind"],
        "data": data["text"], "data_md5s": data["md5s"], "mark": data["mark"],
        "devices": devices or ["unknown (no finished run yet)"],
        "software": {k: v or ["n/a"] for k, v in software.items()}, "commits": commits or ["unknown"],
        "device_hours": seconds / 3600.0, "device_seconds": seconds,
    }


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


def _history_rows(rec: RunRecord) -> list[dict[str, Any]]:
    if rec.history is None:
        return []
    frame = rec.history[[c for c in HISTORY_COLUMNS if c in rec.history.columns]]
    return records(frame)


def run_views(records_: list[RunRecord], reference: dict[str, Any]) -> list[dict[str, Any]]:
    """What the per-run <details> sections show."""
    views = []
    for rec in records_:
        metrics = {k: v for k, v in rec.metrics.items() if not isinstance(v, (dict, list))}
        views.append({
            "run_id": rec.spec.run_id, "anchor": run_anchor(rec.spec.run_id), "status": rec.status,
            "model": rec.spec.model, "model_name": label(rec.spec.model),
            "dataset": rec.spec.dataset, "seed": rec.spec.seed, "families": list(rec.spec.families),
            "accuracy": rec.accuracy, "metrics": metrics, "errors": rec.errors,
            "evaluation": rec.evaluation,
            "config": _json(rec.config or rec.spec.train_options()),
            "config_source": "config.json" if rec.config else "params.yaml (no config.json yet)",
            "env": _json(rec.env) if rec.env else None,
            "history": _history_rows(rec),
        })
    return views


def table_views(tables: dict[str, pd.DataFrame], reference: dict[str, Any],
                family_notes: dict[str, list[int]], seeds: dict[str, int]) -> list[dict[str, Any]]:
    """Each table as a grid (rows x columns of cells) plus its sources, in paper.yaml's order."""
    views = []
    for table_id, frame in tables.items():
        meta = frame.attrs.get("table") or reference["tables"][table_id]
        cells = records(frame)
        rows = list(dict.fromkeys(c["row"] for c in cells))
        columns = list(dict.fromkeys(c["column"] for c in cells))
        grid = {(c["row"], c["column"]): c for c in cells}
        sources = []
        for cell in cells:
            cell["anchors"] = [(f"seed {seeds.get(rid, '?')}", run_anchor(rid))
                               for rid in cell.get("run_ids") or []]
            cell["source_n"] = None
            if cell.get("paper_source"):
                sources.append(cell["paper_source"])
                cell["source_n"] = len(sources)
        views.append({
            "id": table_id, "title": meta["title"], "family": meta["family"],
            "row_axis": "model" if meta["row"] == "point" else meta["row"], "column_axis": meta["column"],
            "columns": columns,
            "rows": [(r, [grid.get((r, c)) for c in columns]) for r in rows], "sources": sources,
            "notes": family_notes.get(meta["family"], []), "empty": not cells,
            "paper": meta.get("paper", True),  # a family of paper.yaml's tables: paper values and verdicts
        })
    return views


def figure_views(figures_dir: Path) -> list[dict[str, Any]]:
    """The manifest's figures with their PNG inlined; a missing file shows as pending."""
    views = []
    for entry in read_manifest(figures_dir):
        data = None
        if entry.get("file"):
            path = figures_dir / Path(entry["file"]).name  # the manifest names files inside figures/ only
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
        views.append({**entry, "mark": mark_of(entry), "data": data})
    return views


def render(context: dict[str, Any]) -> str:
    """The page for a context built by rir.report.build_report_context."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rir.report", "templates"),
        autoescape=True,  # every value is escaped, whatever its template's name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, digits=2: "—" if v is None else f"{v:.{digits}f}"
    env.filters["signed"] = lambda v: "—" if v is None else f"{v:+.2f}"
    env.filters["css"] = lambda v: re.sub(r"[^a-z0-9]+", "-", str(v).lower()).strip("-")
    return env.get_template(TEMPLATE).render(verdicts=VERDICTS, verdict_rule=VERDICT_RULE, **context)
