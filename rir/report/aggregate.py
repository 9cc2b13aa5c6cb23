"""Aggregation with pandas: per run, per family group over seeds, and the paper's tables with verdicts.

A *group* is one point of a family: (model, dataset, grid point), aggregated over its seeds (n, mean, std,
min, max and the 95 % t-interval of the mean; diverged, pending and unreadable seeds are counted, not
averaged). A *table* (from rir/reference/paper.yaml) lays a family's groups out like the paper does and
puts each paper value beside the reproduced one.

Verdict rule of a cell (VERDICT_RULE says it in the report): the cell is *reproduced* when the paper value
lies within the 95 % t-interval of the reproduced mean widened by TOLERANCE_PP percentage points on each
side, that is |mean - paper| <= half_width + TOLERANCE_PP; with one seed there is no interval and the
rule is |value - paper| <= TOLERANCE_PP. Otherwise it is *not reproduced*. A cell without a paper value is
*no paper value*; one with no finished seed is *pending* (some seed still to come), *diverged* (every
finished seed diverged) or *unreadable*; a published comparator row is *comparator* (not re-run here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from rir.catalog import known_defaults, label
from rir.recipe import RECIPE_DEFAULTS
from rir.report.collect import COMPLETED, DIVERGED, PENDING, UNREADABLE, RunRecord
from rir.report.stats import summarize

TOLERANCE_PP = 1.0  # percentage points added to the interval: seeds, data order and GPUs differ from 2016
REPRODUCED, NOT_REPRODUCED, NO_PAPER_VALUE = "reproduced", "not reproduced", "no paper value"
COMPARATOR, NOT_RUN = "comparator", "not run"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NO_PAPER_VALUE, PENDING, DIVERGED, UNREADABLE, COMPARATOR, NOT_RUN)
VERDICT_RULE = (
    f"A cell is reproduced when the paper value lies within the 95 % t-interval of the mean over seeds, "
    f"widened by {TOLERANCE_PP:g} percentage point on each side (|mean − paper| ≤ half-width + "
    f"{TOLERANCE_PP:g}); with a single seed, when |value − paper| ≤ {TOLERANCE_PP:g}. Diverged, pending and "
    f"unreadable seeds are excluded from the statistics and counted in the cell's note; a cell whose "
    f"finished seeds all diverged is 'diverged'."
)


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def grid_point(spec, family: dict[str, Any]) -> dict[str, Any]:
    """The family grid's values of a run, e.g. {'layers_per_block': 3}.

    rir.config leaves a grid value equal to the default out of the run (Figure 4's 2-layer blocks are Table
    3's nets, trained once), so a key the run does not set takes the model's default, or TrainConfig's.
    """
    point, defaults = {}, None
    for key in family.get("grid", {}):
        if key in spec.model_overrides:
            point[key] = _plain(spec.model_overrides[key])
        elif key in spec.recipe or key in RECIPE_DEFAULTS:
            point[key] = _plain(spec.recipe.get(key, RECIPE_DEFAULTS.get(key)))
        else:
            defaults = known_defaults(spec.model) if defaults is None else defaults
            point[key] = _plain(defaults.get(key))
    return point


def grid_key(grid: dict[str, Any] | None) -> str:
    return json.dumps(grid or {}, sort_keys=True)


def runs_frame(records: list[RunRecord], resolved: dict[str, Any]) -> pd.DataFrame:
    """One row per (run, family it belongs to)."""
    families = resolved.get("families", {})
    rows = []
    for rec in records:
        m = rec.metrics
        for family in rec.spec.families:
            rows.append({
                "run_id": rec.spec.run_id, "family": family, "model": rec.spec.model,
                "dataset": rec.spec.dataset, "seed": rec.spec.seed,
                "grid": grid_key(grid_point(rec.spec, families.get(family, {}))),
                "status": rec.status, "test_accuracy": rec.accuracy,
                "test_error": None if rec.accuracy is None else 100.0 - rec.accuracy,
                "epoch": m.get("epoch", m.get("epochs_completed")), "params": m.get("params"),
                "flops_per_image": m.get("flops_per_image"), "wall_time_s": rec.wall_time_s,
                "device": m.get("device_name", m.get("device")), "synthetic": rec.synthetic,
                "data": rec.data_kind, "data_md5": rec.data_md5,
            })
    columns = ["run_id", "family", "model", "dataset", "seed", "grid", "status", "test_accuracy",
               "test_error", "epoch", "params", "flops_per_image", "wall_time_s", "device", "synthetic",
               "data", "data_md5"]
    return pd.DataFrame(rows, columns=columns)


def _group_stats(frame: pd.DataFrame) -> dict[str, Any]:
    done = frame.loc[frame["status"] == COMPLETED, "test_accuracy"].astype(float).tolist()
    counts = frame["status"].value_counts()
    return {
        **summarize(done),
        "n_runs": len(frame), "n_completed": int(counts.get(COMPLETED, 0)),
        "n_diverged": int(counts.get(DIVERGED, 0)), "n_pending": int(counts.get(PENDING, 0)),
        "n_unreadable": int(counts.get(UNREADABLE, 0)), "run_ids": frame["run_id"].tolist(),
    }


def family_groups(runs: pd.DataFrame) -> pd.DataFrame:
    """Per family, per (model, dataset, grid point): statistics over seeds and status counts."""
    rows = [
        {"family": fam, "model": model, "dataset": ds, "grid": grid, **_group_stats(part)}
        for (fam, model, ds, grid), part in runs.groupby(["family", "model", "dataset", "grid"], sort=False)
    ]
    return pd.DataFrame(rows)


def verdict(cell: dict[str, Any]) -> str:
    """The verdict of one table cell by the rule in the module docstring."""
    if cell.get("model") is None:
        return COMPARATOR
    if not cell.get("n_runs"):
        return NOT_RUN
    if not cell.get("n_completed"):
        if cell.get("n_pending"):
            return PENDING
        return DIVERGED if cell.get("n_diverged") else UNREADABLE
    paper = cell.get("paper_value")
    if paper is None:
        return NO_PAPER_VALUE
    slack = (cell.get("half_width") or 0.0) + TOLERANCE_PP
    return REPRODUCED if abs(cell["mean"] - paper) <= slack + 1e-9 else NOT_REPRODUCED


def _note(cell: dict[str, Any]) -> str:
    parts = []
    for key, word in (("n_diverged", "diverged"), ("n_pending", "pending"), ("n_unreadable", "unreadable")):
        if cell.get(key):
            parts.append(f"{cell[key]} of {cell['n_runs']} seed{'s' * (cell['n_runs'] > 1)} {word}")
    return "; ".join(parts)


def _label(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "×".join(_label(v) for v in value)
    return str(value)


def _axis_label(axis: str, cell: dict[str, Any], reference: dict[str, Any]) -> str:
    if axis == "model":
        if cell.get("model") is None:
            return cell.get("label", "?")
        return label(cell["model"])
    if axis == "dataset":
        return reference["datasets"].get(cell["dataset"], cell["dataset"])
    if axis == "point":  # a family's model at one point of its grid
        grid = cell.get("grid") or {}
        return label(cell["model"]) + "".join(f", {k} {_label(v)}" for k, v in sorted(grid.items()))
    return _label((cell.get("grid") or {}).get(axis, "—"))


def build_table(table_id: str, table: dict[str, Any], groups: pd.DataFrame,
                reference: dict[str, Any]) -> pd.DataFrame:
    """The long form of one paper table: one row per cell, paper cells first in the paper's order."""
    mine = groups[(groups["family"] == table["family"]) & groups["dataset"].isin(table["datasets"])] \
        if len(groups) else groups
    by_key = {(g["model"], g["dataset"], g["grid"]): g for g in records(mine)}
    cells, used = [], set()
    for paper in table["cells"]:
        key = (paper["model"], paper["dataset"], grid_key(paper.get("grid")))
        group = by_key.get(key, {}) if paper["model"] is not None else {}
        used.add(key)
        cells.append({
            **group, "model": paper["model"], "dataset": paper["dataset"], "grid": paper.get("grid") or {},
            "label": paper.get("label"), "paper_value": paper["value"], "paper_statistic": paper["statistic"],
            "paper_source": paper["source"], "paper_origin": paper["origin"],
            "paper_approximate": bool(paper.get("approximate", False)),
        })
    for key, group in by_key.items():
        if key not in used:
            cells.append({**group, "grid": json.loads(group["grid"]), "label": None, "paper_value": None,
                          "paper_statistic": None, "paper_source": None, "paper_origin": None,
                          "paper_approximate": False})
    # A placeholder cell (no paper value) outside this profile's grid says nothing: leave it out.
    cells = [c for c in cells if c["model"] is None or c.get("n_runs") or c["paper_value"] is not None]
    several = len({c["dataset"] for c in cells}) > 1 and "dataset" not in (table["row"], table["column"])
    for cell in cells:
        for key in ("n", "n_runs", "n_completed", "n_diverged", "n_pending", "n_unreadable"):
            cell.setdefault(key, 0)
        cell.setdefault("run_ids", [])
        cell["table"] = table_id
        cell["row"] = _axis_label(table["row"], cell, reference)
        cell["column"] = _axis_label(table["column"], cell, reference)
        if several:
            cell["column"] += " · " + _axis_label("dataset", cell, reference)
        mean, paper = cell.get("mean"), cell["paper_value"]
        cell["diff"] = None if mean is None or paper is None or cell["model"] is None else mean - paper
        cell["verdict"] = verdict(cell)
        cell["note"] = _note(cell)
    columns = ["table", "row", "column", "model", "dataset", "grid", "label", "n", "n_runs", "n_completed",
               "n_diverged", "n_pending", "n_unreadable", "mean", "std", "min", "max", "ci_low", "ci_high",
               "half_width", "paper_value", "paper_statistic", "paper_source", "paper_origin",
               "paper_approximate", "diff", "verdict", "note", "run_ids"]
    return pd.DataFrame(cells).reindex(columns=columns)


def family_table(family: str, datasets: list[str]) -> dict[str, Any]:
    """The table of a family that no table of paper.yaml shows (a user's, or a figure's runs): its models
    (at each point of its grid) by display name against the datasets, with no paper column."""
    return {"title": f"Family {family}: test accuracy (%)", "family": family, "datasets": datasets,
            "row": "point", "column": "dataset", "cells": [], "paper": False}


def build_tables(records: list[RunRecord], reference: dict[str, Any], resolved: dict[str, Any]):
    """(runs frame, family groups, {table id: cells}): every table of paper.yaml, then a table `family_<name>`
    for every other family that has runs here. Each frame's attrs["table"] is its definition."""
    runs = runs_frame(records, resolved)
    groups = family_groups(runs)
    definitions = {tid: {**t, "paper": True} for tid, t in reference["tables"].items()}
    shown = {t["family"] for t in definitions.values()}
    ran = set(groups["family"]) if len(groups) else set()
    for family in [*resolved.get("families", {}), *resolved.get("optional_families", {})]:
        if family in ran and family not in shown:
            definitions[f"family_{family}"] = family_table(family, list(reference["datasets"]))
    tables = {}
    for tid, definition in definitions.items():
        tables[tid] = build_table(tid, definition, groups, reference)
        tables[tid].attrs["table"] = definition
    return runs, groups, tables


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a frame as dicts, with pandas' NaN for a missing value turned back into None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # JSON has no NaN: missing numbers become null.
    return json.loads(frame.to_json(orient="records"))


def write_tables(out_dir: str | Path, runs: pd.DataFrame, groups: pd.DataFrame,
                 tables: dict[str, pd.DataFrame], data: str | None = None) -> list[Path]:
    """Each frame as <name>.csv and <name>.json under `out_dir`, atomically; returns the paths written.
    `data` (rir.report.collect.describe_data's column) becomes a `data` column of every aggregate table, so
    that no table read alone passes synthetic or unofficial numbers for official ones."""
    from rir.io import atomic_write_json, atomic_write_text

    out_dir = Path(out_dir)
    written = []
    for name, frame in {"runs": runs, "families": groups, **tables}.items():
        if data is not None and name != "runs":  # the runs table has each run's own data kind
            frame = frame.assign(data=data)
        flat = frame.copy()
        for column in ("grid", "run_ids"):
            if column in flat.columns:
                flat[column] = flat[column].map(lambda v: v if isinstance(v, str) else json.dumps(v))
        atomic_write_text(out_dir / f"{name}.csv", flat.to_csv(index=False))
        atomic_write_json(out_dir / f"{name}.json", _records(frame))
        written += [out_dir / f"{name}.csv", out_dir / f"{name}.json"]
    return written
