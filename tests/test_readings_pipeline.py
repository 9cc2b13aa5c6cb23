"""The optional `readings` family end to end in the smoke profile, through Snakemake and through DVC.

Its smoke slice is the authors' reading (the run Tables 1-3 train, so the smoke pipeline has it already) and
nutszebra's, one new tiny run. The numbers are synthetic; what is tested is that each tool trains the
family and writes the table's summary, that the report then shows it, and that neither tool redoes the
other's work.
"""

import json
import shutil
import sys

import pytest
from pipeline import planned_jobs, sh

from rir.config import expand_runs, load_params

pytestmark = pytest.mark.slow


def _summary(repo):
    summary = json.loads((repo / "results/smoke/readings/summary.json").read_text())
    assert summary["synthetic"] is True and summary["completed"] == summary["runs"] == 2
    assert [r["model"] for r in summary["readings"]] == ["rir_18_wide", "rir_18_wide_nutszebra"]
    assert all(r["cells"]["cifar10"]["mean"] is not None for r in summary["readings"])
    return summary


def test_readings_through_snakemake_then_dvc_and_the_report_shows_them(snakemade, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(snakemade, repo, symlinks=True)
    runs = expand_runs(load_params(repo / "params.yaml"), "smoke", optional=True, family="readings")
    (new,) = set(runs) - set(expand_runs(load_params(repo / "params.yaml"), "smoke"))
    assert runs[new].model == "rir_18_wide_nutszebra"

    # Snakemake: only the new run and the summary; the authors' run is Table 3's, trained once.
    smk = [sys.executable, "-m", "snakemake", "--cores", "2", "--config", "profile=smoke"]
    proc = sh(repo, *smk, "readings")
    assert proc.stderr.count("rule train:") == 1, proc.stderr[-3000:]
    first = _summary(repo)
    assert "SYNTHETIC" in (repo / "results/smoke/readings/summary.md").read_text()
    assert planned_jobs(repo) == {"report": [""], "all": [""]}  # the report now shows the table
    sh(repo, *smk)
    html = (repo / "reports/smoke/index.html").read_text()
    assert "Readings of RiR (SYNTHETIC DATA)" in html and "rir_18_wide_nutszebra" in html
    proc = sh(repo, "dvc", "status", "--with-deps", "readings-smoke")
    assert "changed" not in proc.stdout and "modified" not in proc.stdout, proc.stdout

    # DVC: the new run and the summary gone, `dvc repro` trains and summarizes them again by itself.
    shutil.rmtree(repo / f"results/smoke/runs/{new}")
    shutil.rmtree(repo / f"results/smoke/state/{new}", ignore_errors=True)
    shutil.rmtree(repo / "results/smoke/readings")
    proc = sh(repo, "dvc", "repro", "--no-run-cache", "readings-smoke")
    assert f"train-smoke-{new}" in proc.stdout and "readings-smoke" in proc.stdout, proc.stdout[-3000:]
    assert "train-smoke-rir_18_wide__" not in proc.stdout.replace(f"train-smoke-{new}", "")
    again = _summary(repo)
    assert [r["cells"]["cifar10"]["mean"] for r in again["readings"]] == \
        [r["cells"]["cifar10"]["mean"] for r in first["readings"]]  # deterministic smoke runs
    assert "train" not in planned_jobs(repo)
