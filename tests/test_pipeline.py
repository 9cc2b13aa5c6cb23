"""The smoke profile end to end through Snakemake and DVC; neither tool redoes the other's work.

These run the real tools on the real workflow in a fresh copy of the repository (tests/pipeline.py). The
smoke profile trains every family of the paper on synthetic data with tiny nets, so its numbers mean nothing
about the paper; what is tested is the pipeline.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys

import pytest
import yaml
from markupsafe import escape
from pipeline import SMOKE_DVC, dvc_changed, dvc_ran, planned_jobs, sh

from rir.config import expand_runs, load_params
from rir.report.gridsearch import verdict

pytestmark = pytest.mark.slow


def test_smoke_profile_through_snakemake_makes_every_artifact(snakemade):
    runs = expand_runs(load_params(snakemade / "params.yaml"), "smoke")
    for run_id, run in runs.items():
        metrics = json.loads((snakemade / f"results/smoke/runs/{run_id}/metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["synthetic"] is True
        assert (snakemade / f"results/smoke/evaluations/{run_id}.json").is_file()
        assert (snakemade / f"results/smoke/ablation/{run_id}.csv").is_file() == run.ablate
    assert list((snakemade / "results/smoke/tables").glob("*.csv"))
    assert list((snakemade / "reports/smoke/figures").glob("*.png"))
    html = (snakemade / "reports/smoke/index.html").read_text()
    assert "SYNTHETIC" in html
    # Resumable state is removed when a run ends, and profiles never mix: nothing of the paper profile.
    assert not list((snakemade / "results/smoke/state").glob("*/ckpt-*"))
    assert not (snakemade / "results/paper").exists() and not (snakemade / "data/paper").exists()
    # Each run's stamp (rir.stages), and DVC's metrics: each run's test accuracy.
    assert {p.name.split(".")[0] for p in (snakemade / "results/smoke/stamps").iterdir()} == set(runs)
    accuracy = json.loads((snakemade / "results/smoke/metrics.json").read_text())
    assert set(accuracy) == set(runs) and all(0 <= a <= 100 for a in accuracy.values())


# What "learned" means for the smoke profile's runs (issue 16): far above chance, 10 % and 1 %.
LEARNED = {10: 50.0, 100: 25.0}


def test_every_smoke_run_learns_the_synthetic_task(snakemade):
    """Every run of the smoke report is well above chance in eval mode (BatchNorm's running averages), as
    recomputed from model.pt, and Figure 3's ablation measures something: zeroing some layer's learned
    connections costs a trained net accuracy."""
    runs = expand_runs(load_params(snakemade / "params.yaml"), "smoke")
    below = {}
    for run_id, run in runs.items():
        run_dir = snakemade / f"results/smoke/runs/{run_id}"
        classes = 100 if run.dataset == "cifar100" else 10
        for path in (run_dir / "metrics.json", snakemade / f"results/smoke/evaluations/{run_id}.json"):
            accuracy = json.loads(path.read_text())["test_accuracy"]
            if accuracy < LEARNED[classes]:
                below[str(path.relative_to(snakemade))] = accuracy
    assert not below, below
    for run_id in (r for r, run in runs.items() if run.ablate):
        rows = list(csv.DictReader((snakemade / f"results/smoke/ablation/{run_id}.csv").open()))
        baseline = float(rows[0]["baseline_accuracy"])
        assert baseline >= LEARNED[10] and min(float(r["accuracy"]) for r in rows) < baseline - 10, run_id


def test_after_snakemake_dvc_sees_nothing_to_rerun(snakemade):
    """Snakemake's end wrote the profile's stage (its first run here), added what it made to DVC and recorded
    the stage in dvc.lock: bare `dvc status` is clean (the profiles never run here have no stage)."""
    assert not dvc_changed(snakemade)
    assert sh(snakemade, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    assert dvc_ran(sh(snakemade, "dvc", "repro", "--dry", SMOKE_DVC).stdout) == set()
    assert {p.name for p in (snakemade / "results/smoke").glob("*.dvc")} >= {"runs.dvc", "stamps.dvc",
                                                                             "evaluations.dvc", "tables.dvc"}


def test_dvc_exp_show_has_every_runs_accuracy_in_at_most_100_columns(snakemade):
    """Without flags: params.yaml's keys, the workflow's code, and each of the smoke profile's 21 runs' test
    accuracy as a number (params.yaml stays lean for it: docs/workflow.md)."""
    rows = list(csv.reader(io.StringIO(sh(snakemade, "dvc", "exp", "show", "--csv").stdout)))
    columns, workspace = rows[0], dict(zip(rows[0], rows[1], strict=True))
    runs = expand_runs(load_params(snakemade / "params.yaml"), "smoke")
    assert len(columns) <= 100, len(columns)
    assert all(0 <= float(workspace[run]) <= 100 for run in runs), workspace


def test_snakemake_rerun_has_nothing_to_do(snakemade):
    assert planned_jobs(snakemade) == {}


def test_changing_one_family_reruns_only_that_family(snakemade, tmp_path):
    """A seed more for Table 5 trains its new runs and nothing else (what DVC then runs is Snakemake:
    tests/test_reruns.py)."""
    repo = tmp_path / "repo"
    shutil.copytree(snakemade, repo, symlinks=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    before = set(expand_runs(load_params(repo / "params.yaml"), "smoke"))
    params["profiles"]["smoke"]["families"]["table5"] = {"seeds": [0, 1]}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    new = set(expand_runs(load_params(repo / "params.yaml"), "smoke")) - before
    assert new and all(r.startswith("all_cnn_c") and r.endswith("__s1") for r in new)

    jobs = planned_jobs(repo)
    assert sorted(w.removeprefix("run=") for w in jobs["train"]) == sorted(new)
    assert sorted(w.removeprefix("run=") for w in jobs["evaluate"]) == sorted(new)
    assert set(jobs) == {"stamp", "train", "evaluate", "tables", "figures", "report", "all"}


def test_dvc_repro_then_snakemake_has_nothing_to_do(sliced):
    # On a slice of the smoke profile with short runs, made by `dvc repro` from scratch (conftest's `sliced`).
    repo = sliced
    assert (repo / "reports/smoke/index.html").is_file()
    assert not dvc_changed(repo)
    assert planned_jobs(repo) == {}


def test_gridsearch_ranks_its_runs_then_the_report_shows_them_and_dvc_has_them(snakemade, tmp_path):
    """`snakemake gridsearch` trains the optional family on held-out data (no test-set evaluation) and ranks
    it; the default target then redoes only the report, which shows the ranking; DVC, told when Snakemake
    ends, has the summary and nothing to rerun."""
    repo = tmp_path / "repo"
    shutil.copytree(snakemade, repo, symlinks=True)
    grid = expand_runs(load_params(repo / "params.yaml"), "smoke", optional=True, family="gridsearch")
    sh(repo, sys.executable, "-m", "snakemake", "--cores", "2", "gridsearch", "--config", "profile=smoke")
    for run_id in grid:
        metrics = json.loads((repo / f"results/smoke/runs/{run_id}/metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["eval_split"] == "holdout_128"
        assert not (repo / f"results/smoke/evaluations/{run_id}.json").exists()
    summary = json.loads((repo / "results/smoke/gridsearch/summary.json").read_text())
    (search,) = summary["searches"]
    assert summary["synthetic"] is True and search["complete"] and search["recipe_in_grid"]
    assert sorted(r["rank"] for r in search["rows"]) == list(range(1, len(grid) + 1))

    assert planned_jobs(repo) == {"report": [""], "all": [""]}
    sh(repo, sys.executable, "-m", "snakemake", "--cores", "2", "--config", "profile=smoke")
    html = (repo / "reports/smoke/index.html").read_text()
    sentence = verdict(search)
    assert "Grid search (SYNTHETIC DATA)" in html and str(escape(sentence[1:])) in html
    assert planned_jobs(repo) == {}
    assert (repo / "results/smoke/gridsearch.dvc").is_file()
    assert not dvc_changed(repo)
