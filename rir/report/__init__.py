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
    from rir.config import expand_runs, resolve_profile
    from rir.report.aggregate import build_tables
    from rir.report.collect import read_ablation, read_runs
    from rir.report.gridsearch import read_summary
    from rir.report.readings import read_summary as read_readings
    from rir.report.reference import load_reference

    resolved = resolve_profile(params, profile)
    reference = load_reference(reference_path)
    specs = runs if runs is not None else expand_runs(params, profile)
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
    verdicts = Counter(v for t in data.tables.values() for v in t["verdict"])
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
    }


def write_html(data: ReportData, report_dir: str | Path) -> Path:
    """The html stage: reports/<profile>/index.html, embedding reports/<profile>/figures/."""
    from rir.io import atomic_write_text
    from rir.report.html import render

    report_dir = Path(report_dir)
    target = report_dir / "index.html"
    atomic_write_text(target, render(context(data, report_dir / "figures")))
    return target
