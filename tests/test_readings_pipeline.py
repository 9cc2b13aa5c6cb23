"""The optional `readings` family end to end in the smoke profile: Snakemake trains it, DVC versions it.

Its smoke slice is the authors' reading (the run Tables 1-3 train) and nutszebra's, one new tiny run. The
numbers are synthetic; what is tested is that Snakemake trains the family and writes the table's summary,
that DVC has it when Snakemake ends, and that nothing DVC puts back is trained again. (The report's table
is tested on fixture results, in Chromium too: tests/test_report_readings.py.) A fresh copy, not the shared
smoke pipeline: `snakemake readings` needs only the family's own runs.
"""

import json
import shutil
import sys

import pytest
from pipeline import SHOW_JOBS, fresh_copy, sh, trained

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
    # DVC has the summary and the runs (Snakemake's end added them): deleted, `dvc checkout` brings them back,
    # and Snakemake trains nothing (the summary, which compares file times, it may write again: seconds).
    assert (repo / "results/smoke/readings.dvc").is_file() and (repo / "results/smoke/runs.dvc").is_file()
    shutil.rmtree(repo / f"results/smoke/runs/{new}")
    shutil.rmtree(repo / "results/smoke/readings")
    sh(repo, "dvc", "checkout")
    again = _summary(repo)
    assert again == first
    proc = sh(repo, *smk[:-2], "--dry-run", *SHOW_JOBS, *smk[-2:])
    assert trained(proc.stdout + proc.stderr) == [], proc.stdout[-2000:]
