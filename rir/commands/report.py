"""`rir report [tables|figures|html|all|gridsearch]`: a profile's results as tables, figures, HTML report.

Outputs (each written atomically): tables into RESULTS/tables/ (CSV and JSON, plus claims.json), figures
into OUT/figures/ (PNG and index.json), the report at OUT/index.html. Defaults: RESULTS = results/<profile>,
OUT = reports/<profile>. A run without metrics.json is pending; a damaged file marks its run unreadable and
is named on stderr (with --strict it is an error, exit 2). `gridsearch` (not part of `all`) ranks the settings
of the optional grid search into RESULTS/gridsearch/ (rir.report.gridsearch); `readings` (not part of `all`)
lays the readings of RiR side by side into RESULTS/readings/ (rir.report.readings); the HTML report shows
each summary when it exists.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "aggregate results into tables, figures and the HTML report"
STAGES = ("tables", "figures", "html", "all", "gridsearch", "readings")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", nargs="?", default="all", choices=STAGES,
                        help="which stage to run (default: all three, in order); gridsearch: rank the "
                             "optional grid search's settings into RESULTS/gridsearch/; readings: the "
                             "readings of RiR side by side into RESULTS/readings/")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    parser.add_argument("--profile", default=None, help="profile of params.yaml (default: its `profile`)")
    parser.add_argument("--results", default=None, help="results folder (default: results/<profile>)")
    parser.add_argument("--out", default=None, help="report folder (default: reports/<profile>)")
    parser.add_argument("--reference", default=None,
                        help="paper reference file (default: the packaged rir/reference/paper.yaml)")
    parser.add_argument("--strict", action="store_true",
                        help="an unreadable result file is an error (exit 2)")


def run(args: argparse.Namespace) -> int:
    from rir.config import load_params
    from rir.errors import UserError
    from rir.report import load, write_figures, write_html, write_tables

    params = load_params(args.params)
    profile = args.profile or params.get("profile", "paper")
    results = Path(args.results) if args.results else Path("results") / profile
    out = Path(args.out) if args.out else Path("reports") / profile
    if args.stage == "gridsearch":
        return _gridsearch(params, profile, results, args.strict)
    if args.stage == "readings":
        return _readings(params, profile, results, args.reference, args.strict)
    data = load(params, profile, results, args.reference)  # refuses an unknown profile first
    if not results.is_dir():
        print(f"rir report: warning: {results}: no such folder; every run is pending", file=sys.stderr)
    for problem in data.problems:
        if args.strict:
            raise UserError(problem)
        print(f"rir report: warning: {problem}", file=sys.stderr)
    stages = ("tables", "figures", "html") if args.stage == "all" else (args.stage,)
    if "tables" in stages:
        written = write_tables(data, results / "tables", results / "metrics.json")
        print(f"rir report: {len(written)} table files in {results / 'tables'}")
    if "figures" in stages:
        manifest = write_figures(data, out / "figures")
        drawn = sum(1 for m in manifest if m["file"])
        print(f"rir report: {drawn} figures ({len(manifest) - drawn} pending) in {out / 'figures'}")
    if "html" in stages:
        print(f"rir report: {write_html(data, out)}")
    return 0


def _gridsearch(params: dict, profile: str, results: Path, strict: bool) -> int:
    from rir.config import expand_runs, resolve_profile
    from rir.errors import UserError
    from rir.report.gridsearch import SUMMARY_FOLDER, markdown, summarize_gridsearch, write_summary

    resolved = resolve_profile(params, profile)  # refuses an unknown profile
    runs = expand_runs(params, profile, optional=True, family="gridsearch")
    if not runs:
        raise UserError(f"profile {profile}: params.yaml has no optional_families to summarize")
    summary = summarize_gridsearch(resolved, runs, results)
    for problem in summary["problems"]:
        if strict:
            raise UserError(problem)
        print(f"rir report: warning: {problem}", file=sys.stderr)
    written = write_summary(summary, results / SUMMARY_FOLDER)
    print(markdown(summary))
    print(f"rir report: {summary['completed']} of {summary['runs']} grid-search runs finished; "
          f"{len(written)} files in {results / SUMMARY_FOLDER}")
    return 0


def _readings(params: dict, profile: str, results: Path, reference: str | None, strict: bool) -> int:
    from rir.config import expand_runs, resolve_profile
    from rir.errors import UserError
    from rir.report.readings import FAMILY, SUMMARY_FOLDER, markdown, summarize_readings, write_summary
    from rir.report.reference import load_reference

    resolved = resolve_profile(params, profile)  # refuses an unknown profile
    runs = expand_runs(params, profile, optional=True, family=FAMILY)
    if not runs:
        raise UserError(f"profile {profile}: params.yaml has no optional family {FAMILY!r} to summarize")
    summary = summarize_readings(resolved, runs, results, load_reference(reference))
    for problem in summary["problems"]:
        if strict:
            raise UserError(problem)
        print(f"rir report: warning: {problem}", file=sys.stderr)
    written = write_summary(summary, results / SUMMARY_FOLDER)
    print(markdown(summary), end="")
    print(f"rir report: {summary['completed']} of {summary['runs']} readings runs finished; "
          f"{len(written)} files in {results / SUMMARY_FOLDER}")
    return 0
