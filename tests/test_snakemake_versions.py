"""The workflow on the oldest Snakemake 9 that pyproject.toml admits, beside the newest that CI installs.

pyproject.toml admits every Snakemake 9 release from the Snakefile's `min_version`, since the workflow uses
documented features only. CI's environment holds the newest release; this test runs a slice of the smoke
profile end to end with another one, in an environment of its own named by RIR_OLDEST_SNAKEMAKE (its bin
folder), made as DEVELOPING.md says. It skips without one (CI's allow-list says why).
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from pipeline import ROOT, SMOKE_DVC, cut_smoke_profile, fresh_copy

pytestmark = pytest.mark.slow


def test_a_smoke_slice_runs_and_reruns_nothing_on_the_oldest_snakemake(tmp_path):
    bin_dir = os.environ.get("RIR_OLDEST_SNAKEMAKE")
    if not bin_dir:
        pytest.skip("RIR_OLDEST_SNAKEMAKE names no environment with the oldest Snakemake 9 (DEVELOPING.md)")
    floor = re.search(r'min_version\("([\d.]+)"\)', (ROOT / "Snakefile").read_text()).group(1)
    assert f'"snakemake>={floor},<10"' in (ROOT / "pyproject.toml").read_text()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["snakemake", "--version"], env=env, capture_output=True, text=True)
    version = proc.stdout.strip()
    assert version == floor, f"{bin_dir} holds Snakemake {version}, the floor is {floor}"

    repo = fresh_copy(tmp_path / "repo")
    cut_smoke_profile(repo)
    env["PYTHONPATH"] = str(repo)

    def run(*cmd: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    run("snakemake", "--cores", "2", "--config", "profile=smoke")
    assert (repo / "reports/smoke/index.html").is_file()
    dry = run("snakemake", "-n", "--config", "profile=smoke")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    assert "up to date" in run("dvc", "status", SMOKE_DVC).stdout
