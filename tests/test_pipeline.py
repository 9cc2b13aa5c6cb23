"""The smoke profile end to end through Snakemake and DVC; neither tool redoes the other's work.

These run the real tools on the real workflow in a fresh copy of the repository (tests/pipeline.py). The
smoke profile trains every family of the paper on synthetic data with tiny nets, so its numbers mean nothing
about the paper; what is tested is the pipeline.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from pipeline import dvc_changed_stages, fresh_copy, planned_jobs, sh

from rir.config import expand_runs, load_params

pytestmark = pytest.mark.slow


def test_smoke_profile_through_snakemake_makes_every_artifact(snakemade):
    runs = expand_runs(load_params(snakemade / "params.yaml"), "smoke")
    for run_id, run in runs.items():
        metrics = json.loads((snakemade / f"results/smoke/runs/{run_id}/metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["synthetic"] is True
        assert (snakemade / f"results/smoke/runs/{run_id}/eval.json").is_file()
        assert (snakemade / f"results/smoke/ablation/{run_id}.csv").is_file() == run.ablate
    assert list((snakemade / "results/smoke/tables").glob("*.csv"))
    assert list((snakemade / "reports/smoke/figures").glob("*.png"))
    html = (snakemade / "reports/smoke/index.html").read_text()
    assert "SYNTHETIC" in html
    # Resumable state stays outside the declared outputs, and profiles never mix.
    assert (snakemade / "results/smoke/state").is_dir()
    assert not (snakemade / "results/paper").exists()


def test_after_snakemake_dvc_sees_nothing_to_rerun(snakemade):
    assert dvc_changed_stages(snakemade) == set()
    assert "Running stage" not in sh(snakemade, "dvc", "repro", "--dry", "report-smoke").stdout


def test_snakemake_rerun_has_nothing_to_do(snakemade):
    assert planned_jobs(snakemade) == {}


def test_changing_one_family_reruns_only_that_family_in_both_tools(snakemade, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(snakemade, repo, symlinks=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    before = set(expand_runs(load_params(repo / "params.yaml"), "smoke"))
    params["profiles"]["smoke"]["families"]["table5"]["seeds"] = [0, 1]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(repo, "rir", "dvc")
    new = set(expand_runs(load_params(repo / "params.yaml"), "smoke")) - before
    assert new and all(r.startswith("all_cnn_c") and r.endswith("__s1") for r in new)

    jobs = planned_jobs(repo)
    assert sorted(w.removeprefix("run=") for w in jobs["train"]) == sorted(new)
    assert sorted(w.removeprefix("run=") for w in jobs["evaluate"]) == sorted(new)
    assert set(jobs) == {"train", "evaluate", "tables", "figures", "report", "all"}

    expected = {f"{kind}-smoke-{r}" for r in new for kind in ("train", "evaluate")}
    # The report itself reads only the tables and figures, which have not changed yet.
    assert dvc_changed_stages(repo) == expected | {"tables-smoke", "figures-smoke"}


def test_dvc_repro_then_snakemake_has_nothing_to_do(tmp_path):
    repo = fresh_copy(tmp_path)
    sh(repo, "dvc", "repro", "--quiet", "report-smoke")
    assert (repo / "reports/smoke/index.html").is_file()
    assert dvc_changed_stages(repo) == set()
    assert planned_jobs(repo) == {}


def test_dvc_push_and_pull_restore_finished_runs_without_retraining(snakemade, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(snakemade, repo, symlinks=True)
    sh(repo, "dvc", "remote", "add", "--local", "-d", "store", str(tmp_path / "remote"))
    sh(repo, "dvc", "push", "--quiet", "report-smoke", "--with-deps")
    shutil.rmtree(repo / "results/smoke/runs")
    shutil.rmtree(repo / ".dvc/cache")
    sh(repo, "dvc", "pull", "--quiet", "report-smoke", "--with-deps")
    run_id = next(iter(expand_runs(load_params(repo / "params.yaml"), "smoke")))
    assert (repo / f"results/smoke/runs/{run_id}/model.pt").is_file()
    assert dvc_changed_stages(repo) == set()
    assert "train" not in planned_jobs(repo)
