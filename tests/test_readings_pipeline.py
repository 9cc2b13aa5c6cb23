"""The optional `readings` family end to end in the smoke profile, through Snakemake and through DVC.

Its smoke slice is the authors' reading (the run Tables 1-3 train) and nutszebra's, one new tiny run. The
numbers are synthetic; what is tested is that each tool trains the family and writes the table's summary,
and that neither tool redoes the other's work. (The report's table is tested on fixture results, in
Chromium too: tests/test_report_readings.py.) A fresh copy, not the shared smoke pipeline: `snakemake
readings` needs only the family's own runs.
"""

import json
import shutil
import sys

import pytest
from pipeline import fresh_copy, sh

from rir.config import expand_runs, load_params

pytestmark = pytest.mark.slow


def _summary(repo):
    summary = json.loads((repo / "results/smoke/readings/summary.json").read_text())
    assert summary["synthetic"] is True and summary["completed"] == summary["runs"] == 2
    assert [r["model"] for r in summary["readings"]] == ["rir_18_wide", "rir_18_wide_nutszebra"]
    assert all(r["cells"]["cifar10"]["mean"] is not None for r in summary["readings"])
    return summary


def test_readings_through_snakemake_then_through_dvc(tmp_path):
    repo = fresh_copy(tmp_path)
    runs = expand_runs(load_params(repo / "params.yaml"), "smoke", optional=True, family="readings")
    (new,) = set(runs) - set(expand_runs(load_params(repo / "params.yaml"), "smoke"))
    assert runs[new].model == "rir_18_wide_nutszebra"

    # Snakemake: the family's two runs (one of them Table 3's, under the same run id) and the summary.
    smk = [sys.executable, "-m", "snakemake", "readings", "--cores", "2", "--config", "profile=smoke"]
    sh(repo, *smk)
    first = _summary(repo)
    assert "SYNTHETIC" in (repo / "results/smoke/readings/summary.md").read_text()
    readings = "workflow/dvc/smoke/readings/dvc.yaml:"
    proc = sh(repo, "dvc", "status", "--with-deps", f"{readings}readings")
    assert "changed" not in proc.stdout and "modified" not in proc.stdout, proc.stdout

    # DVC: the new run and the summary gone, DVC trains and summarizes them again (forced: its cache and
    # dvc.lock, filled by Snakemake's onsuccess commit, would otherwise restore them without running).
    shutil.rmtree(repo / f"results/smoke/runs/{new}")
    shutil.rmtree(repo / f"results/smoke/state/{new}", ignore_errors=True)
    shutil.rmtree(repo / "results/smoke/readings")
    proc = sh(repo, "dvc", "repro", "--force", "--single-item", f"{readings}train@{new}")
    assert f"Running stage '{readings}train@{new}'" in proc.stdout, proc.stdout[-3000:]
    proc = sh(repo, "dvc", "repro", "--force", "--single-item", f"{readings}readings")
    assert f"Running stage '{readings}readings'" in proc.stdout, proc.stdout[-3000:]
    again = _summary(repo)
    assert [r["cells"]["cifar10"]["mean"] for r in again["readings"]] == \
        [r["cells"]["cifar10"]["mean"] for r in first["readings"]]  # deterministic smoke runs
    proc = sh(repo, *smk[:-2], "--dry-run", *smk[-2:])
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-2000:]
