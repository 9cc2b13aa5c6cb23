"""The paper's hyperparameter search, run as an optional family: which setting wins on held-out data.

Section 3: "hyperparameters were chosen by a grid search over learning rate, L2 penalty, initialization,
optimizer and shortcut type" (docs/paper.md). `snakemake gridsearch` trains params.yaml's `optional_families`;
each run holds out the last N training images (`holdout`) and reports its accuracy on them, never on the test
set. This module ranks the settings of each (family, model, dataset) by their mean held-out accuracy over
finished seeds and says whether the recipe every table trains with is the winner. The optimizer is not
searched: `rir train` has SGD with momentum alone, the paper's stated optimizer.

Ranking rule: among settings with at least one finished seed, by mean held-out accuracy, ties broken by the
setting's order in the grid. Pending, diverged and unreadable seeds are counted, never ranked; while any run
is unfinished the winner is provisional (`complete: false`) and every output says so. A single seed per
setting gives no interval, so a winner by less than a point or two is within seed noise: the summary gives
the margin to the runner-up.

Outputs (`rir report gridsearch`, atomic): RESULTS/gridsearch/summary.json (what the HTML report reads and
shows), summary.csv (one row per setting) and summary.md (the tables as Markdown, also printed).
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from rir.catalog import known_defaults
from rir.report.aggregate import grid_key, runs_frame
from rir.report.collect import (
    COMPLETED,
    describe_data,
    read_runs,
    read_summary_file,
    summary_label,
    write_summary_files,
)
from rir.report.stats import summarize

SUMMARY_FOLDER = "gridsearch"


def recipe_setting(model: str, keys: list[str], resolved: dict[str, Any]) -> dict[str, Any]:
    """The value of each grid key in the runs the tables use: the profile's recipe (else the TrainConfig
    default) for a training option, the model's default for a model option."""
    from rir.recipe import TrainConfig

    train_defaults = {f.name: f.default for f in fields(TrainConfig) if f.name != "model_overrides"}
    recipe = resolved.get("recipe", {})
    defaults = known_defaults(model)
    out = {}
    for key in keys:
        if key in train_defaults:
            value = recipe.get(key, train_defaults[key])
        else:
            value = defaults.get(key)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def summarize_gridsearch(resolved: dict[str, Any], runs: dict, results_dir: str | Path) -> dict[str, Any]:
    """The summary of every optional family of a resolved profile; `runs` are its optional runs."""
    families = {k: v for k, v in resolved.get("optional_families", {}).items() if k == SUMMARY_FOLDER}
    records = read_runs(results_dir, runs)
    frame = runs_frame(records, {**resolved, "families": families})
    data = describe_data(resolved, records)
    searches = []
    for name, family in families.items():
        keys = sorted(family.get("grid", {}))
        mine = frame[frame["family"] == name]
        for (model, dataset), part in mine.groupby(["model", "dataset"], sort=False):
            recipe = recipe_setting(model, keys, resolved)
            rows = []
            for grid, seeds in part.groupby("grid", sort=False):
                done = seeds.loc[seeds["status"] == COMPLETED, "test_accuracy"].astype(float).tolist()
                stats = summarize(done)
                setting = json.loads(grid)
                rows.append({
                    **setting, "mean": stats["mean"], "std": stats["std"], "n_completed": len(done),
                    "n_runs": len(seeds), "statuses": seeds["status"].value_counts().to_dict(),
                    "recipe": grid_key(setting) == grid_key(recipe), "run_ids": seeds["run_id"].tolist(),
                })
            ranked = sorted((r for r in rows if r["mean"] is not None), key=lambda r: -r["mean"])
            for rank, row in enumerate(ranked, 1):
                row["rank"] = rank
            for row in rows:
                row.setdefault("rank", None)
            best = ranked[0] if ranked else None
            recipe_row = next((r for r in rows if r["recipe"]), None)
            searches.append({
                "family": name, "model": model, "dataset": dataset, "keys": keys,
                "holdout": family.get("holdout"), "recipe_setting": recipe,
                "complete": all(r["n_completed"] == r["n_runs"] for r in rows),
                "best": None if best is None else {k: best[k] for k in keys},
                "best_mean": None if best is None else best["mean"],
                "margin": (ranked[0]["mean"] - ranked[1]["mean"]) if len(ranked) > 1 else None,
                "recipe_rank": None if recipe_row is None else recipe_row["rank"],
                "recipe_in_grid": recipe_row is not None,
                "rows": rows,
            })
    return {"profile": resolved.get("profile"), "synthetic": data["synthetic"], "mark": data["mark"],
            "data": data["column"], "searches": searches,
            "runs": len(records), "completed": sum(r.status == COMPLETED for r in records),
            "problems": [e for r in records for e in r.errors]}


def verdict(search: dict[str, Any]) -> str:
    """One sentence: does the recipe win, and how sure is that."""
    if search["best"] is None:
        return "no finished run yet"
    provisional = "" if search["complete"] else " (provisional: some runs are unfinished)"
    if not search["recipe_in_grid"]:
        return f"the recipe's setting is not in this grid; the best setting is {_setting(search['best'])}" \
               + provisional
    if search["recipe_rank"] == 1:
        margin = search["margin"]
        by = f" by {margin:.2f} points" if margin is not None else ""
        return f"the recipe's setting wins{by}" + provisional
    if search["recipe_rank"] is None:
        return "the recipe's setting has no finished run" + provisional
    return (f"the recipe's setting ranks {search['recipe_rank']}; the best is {_setting(search['best'])}, "
            f"{search['best_mean']:.2f} %" + provisional)


def _setting(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items())


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(map(str, value))
    return str(value)


def markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown tables, one per search; labelled SYNTHETIC when it is."""
    label = summary_label(summary)
    lines = [f"# Grid search, profile {summary['profile']}{label}", ""]
    if not summary["searches"]:
        lines.append("This profile has no optional families (params.yaml `optional_families`).")
    for s in summary["searches"]:
        lines += [f"## {s['family']}: {s['model']} on {s['dataset']}, held-out accuracy on the last "
                  f"{s['holdout']} training images{label}", "", f"Verdict: {verdict(s)}.", ""]
        lines.append("| rank | " + " | ".join(s["keys"]) + " | held-out accuracy (%) | seeds | recipe |")
        lines.append("|---" * (len(s["keys"]) + 4) + "|")
        for r in sorted(s["rows"], key=lambda r: (r["rank"] is None, r["rank"] or 0)):
            acc = "—" if r["mean"] is None else f"{r['mean']:.2f}"
            lines.append(f"| {r['rank'] or '—'} | " + " | ".join(_cell(r[k]) for k in s["keys"])
                         + f" | {acc} | {r['n_completed']}/{r['n_runs']} | {'yes' if r['recipe'] else ''} |")
        lines.append("")
    return "\n".join(lines)


def write_summary(summary: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """summary.json, summary.csv and summary.md under `out_dir`, each atomically."""
    rows = [{"family": s["family"], "model": s["model"], "dataset": s["dataset"], "holdout": s["holdout"],
             **{k: _cell(r[k]) for k in s["keys"]}, "rank": r["rank"], "holdout_accuracy": r["mean"],
             "std": r["std"], "n_completed": r["n_completed"], "n_runs": r["n_runs"], "recipe": r["recipe"],
             "synthetic": summary["synthetic"], "data": summary.get("data")}
            for s in summary["searches"] for r in s["rows"]]
    return write_summary_files(out_dir, summary, rows, markdown(summary))


def read_summary(results_dir: str | Path) -> tuple[dict[str, Any] | None, list[str]]:
    """(the summary the grid-search stage wrote, or None when it has not run; problems, one line each)."""

    def verdicts(summary: dict[str, Any]) -> None:
        for search in summary["searches"]:
            search["verdict"] = verdict(search)

    return read_summary_file(Path(results_dir) / SUMMARY_FOLDER, "grid-search", "searches", verdicts)
