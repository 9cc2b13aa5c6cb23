"""The report: the paper's numbers beside the reproduced ones, every table, figure and claim, in one page.

Three stages, each a `rir report` subcommand and a pipeline rule, each writing atomically:
- tables:  results/<profile>/tables/{runs,families,table1..table5,figure4}.{csv,json} (rir.report.aggregate),
           and results/<profile>/metrics.json, each run's test accuracy (DVC's metrics)
- figures: reports/<profile>/figures/*.png and index.json (rir.report.figures)
- html:    reports/<profile>/index.html, self-contained (rir.report.html); it aggregates the runs again
           (cheap and deterministic) and embeds the figures the figures stage drew, and the grid search's
           summary (rir.report.gridsearch) when `rir report gridsearch` has written one, and the same for
           the readings of RiR (rir.report.readings, `rir report readings`).

`load` reads everything once: the profile's runs (rir.config.expand_runs), what exists of them on disk
(rir.report.collect), the reference numbers (rir/reference/paper.yaml) and the ablation CSVs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from rir.report.collect import RunRecord


@dataclass
class ReportData:
    """Everything the stages need, read once."""

    resolved: dict[str, Any]  # params.yaml with the profile applied
    reference: dict[str, Any]  # paper.yaml
    records: list[RunRecord]
    ablation: pd.DataFrame
    problems: list[str]  # one line per unreadable file, naming it
    runs: pd.DataFrame
    groups: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    gridsearch: dict[str, Any] | None = None  # RESULTS/gridsearch/summary.json, once it exists
    readings: dict[str, Any] | None = None  # RESULTS/readings/summary.json, once it exists

    @property
    def synthetic(self) -> bool:
        """True when the profile or any run's metrics say synthetic: the report must then say so."""
        return self.data["synthetic"]

    @cached_property
    def data(self) -> dict[str, Any]:
        """What the results come from (rir.report.collect.describe_data); every table, figure and page
        says it."""
        from rir.report.collect import describe_data

        return describe_data(self.resolved, self.records)

    @property
    def ablated_runs(self) -> list[str]:
        return [r.spec.run_id for r in self.records if r.spec.ablate]


def load(params: dict[str, Any], profile: str | None, results_dir: str | Path,
         reference_path: str | Path | None = None, runs: dict | None = None) -> ReportData:
    """Read a profile's results; `runs` replaces the profile's expansion (tests use it)."""
    from rir.config import reported_runs, resolve_profile
    from rir.report.aggregate import build_tables
    from rir.report.collect import read_ablation, read_runs
    from rir.report.gridsearch import read_summary
    from rir.report.readings import read_summary as read_readings
    from rir.report.reference import load_reference

    resolved = resolve_profile(params, profile)
    reference = load_reference(reference_path)
    specs = runs if runs is not None else reported_runs(params, profile, results_dir)
    records = read_runs(results_dir, specs)
    ablation, ablation_errors = read_ablation(results_dir, specs)
    gridsearch, gridsearch_errors = read_summary(results_dir)
    readings, readings_errors = read_readings(results_dir)
    problems = [e for r in records for e in r.errors] + ablation_errors + gridsearch_errors + readings_errors
    runs_frame, groups, tables = build_tables(records, reference, resolved)
    return ReportData(resolved, reference, records, ablation, problems, runs_frame, groups, tables,
                      gridsearch, readings)


def write_tables(data: ReportData, tables_dir: str | Path,
                 metrics_file: str | Path | None = None) -> list[Path]:
    """The tables stage; also writes claims.json beside the tables, and `metrics_file`: each finished run's
    test accuracy (%) by run id, numbers only, which `dvc metrics show` and `dvc exp show` list."""
    from rir.io import atomic_write_json
    from rir.report.aggregate import write_tables as write
    from rir.report.claims import judge_claims

    paths = write(tables_dir, data.runs, data.groups, data.tables, data.data["column"])
    claims = judge_claims(data.tables, data.ablation, data.ablated_runs, data.reference)
    atomic_write_json(Path(tables_dir) / "claims.json", claims)
    paths.append(Path(tables_dir) / "claims.json")
    if metrics_file is not None:
        atomic_write_json(metrics_file, {r.spec.run_id: round(r.accuracy, 2) for r in data.records
                                         if r.accuracy is not None})
        paths.append(Path(metrics_file))
    return paths


def write_figures(data: ReportData, figures_dir: str | Path) -> list[dict[str, Any]]:
    """The figures stage."""
    from rir.report.figures import write_figures as draw

    return draw(figures_dir, data.records, data.tables, data.ablation, data.reference, data.resolved,
                data.data["mark"])


def context(data: ReportData, figures_dir: str | Path) -> dict[str, Any]:
    """Everything the HTML template shows."""
    from collections import Counter

    from rir.report.aggregate import VERDICTS
    from rir.report.claims import judge_claims
    from rir.report.html import figure_views, provenance, run_views, table_views
    from rir.report.recipe import footnotes

    notes, family_notes = footnotes(data.records, data.reference, data.resolved)
    statuses = Counter(r.status for r in data.records)
    verdicts = Counter(v for t in data.tables.values() if t.attrs.get("table", {}).get("paper", True)
                       for v in t["verdict"])
    return {
        "paper": data.reference["paper"],
        "prov": provenance(data.records, data.resolved, data.data),
        "status_counts": {"total": len(data.records), "by_status": sorted(statuses.items())},
        "verdict_counts": [(v, verdicts[v]) for v in VERDICTS if verdicts.get(v)],
        "claims": judge_claims(data.tables, data.ablation, data.ablated_runs, data.reference),
        "tables": table_views(data.tables, data.reference, family_notes,
                              {r.spec.run_id: r.spec.seed for r in data.records}),
        "figures": figure_views(Path(figures_dir)),
        "notes": notes,
        "problems": data.problems,
        "gridsearch": data.gridsearch,
        "readings": data.readings,
        "runs": run_views(data.records, data.reference),
        "overview": overview(data),
        "commands": commands(data.resolved["profile"]),
    }


def commands(profile: str) -> dict[str, str]:
    """The commands the report tells its reader to run, for this profile, as they run from the clone's root
    (tests/test_report_html.py runs each one)."""
    config = "" if profile == "paper" else f" --config profile={profile}"
    return {"gridsearch": f"snakemake --cores all gridsearch{config}",
            "readings": f"snakemake --cores all readings{config}",
            "figures": f"rir report figures --profile {profile}"}


def overview(data: ReportData) -> dict[str, Any]:
    """Every model at its default options (no family grid point) against the datasets: mean test accuracy
    over its finished seeds, for the top of the report."""
    from rir.catalog import label
    from rir.report.stats import summarize

    runs = data.runs[(data.runs["grid"] == "{}") & (data.runs["status"] == "completed")]
    runs = runs.drop_duplicates("run_id")
    datasets = [d for d in data.reference["datasets"] if d in set(runs["dataset"])]
    rows = []
    for model in dict.fromkeys(runs["model"]):
        cells = []
        for dataset in datasets:
            done = runs[(runs["model"] == model) & (runs["dataset"] == dataset)]["test_accuracy"]
            cells.append({**summarize([float(a) for a in done]), "n": len(done)} if len(done) else None)
        rows.append({"model": label(model), "cells": cells})
    return {"datasets": [data.reference["datasets"][d] for d in datasets], "rows": rows}


def write_html(data: ReportData, report_dir: str | Path) -> Path:
    """The html stage: reports/<profile>/index.html, embedding reports/<profile>/figures/."""
    from rir.io import atomic_write_text
    from rir.report.html import render

    report_dir = Path(report_dir)
    target = report_dir / "index.html"
    atomic_write_text(target, render(context(data, report_dir / "figures")))
    return target
