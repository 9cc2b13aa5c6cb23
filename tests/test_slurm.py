"""Scale-out on SLURM: a real one-node cluster started on this machine by .ci/slurm-up, no mocks.

The `slurm` fixture starts (or finds) the cluster with two stand-in GPUs declared as generic resources, so
the workflow's `gpu=1` jobs go through the same `sbatch --gpus=1` path as on a GPU cluster. The tests skip,
saying why, where Debian's slurm-wlm and munge are not installed or the tests do not run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SLURM_UP = REPO / ".ci" / "slurm-up"
FAKE_GPUS = "2"
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}
# Only a hung cluster or workflow reaches these limits; they measure nothing.
JOB_TIMEOUT_S = 180
WORKFLOW_TIMEOUT_S = 1800


@pytest.fixture(scope="module")
def slurm():
    """A running one-node SLURM cluster (started by .ci/slurm-up if it is not up yet)."""
    missing = [cmd for cmd in ("sbatch", "slurmctld", "slurmd", "munged") if shutil.which(cmd) is None]
    if missing:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip(".ci/slurm-up starts the SLURM daemons and must run as root")
    proc = subprocess.run(
        ["bash", str(SLURM_UP)],
        env={**os.environ, "RIR_SLURM_GPUS": FAKE_GPUS},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f".ci/slurm-up failed:\n{proc.stdout}{proc.stderr}"


def job_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "--states=all", "-j", job_id, "-o", "%T"], capture_output=True, text=True
    ).stdout
    return out.strip()


def wait_for_job(job_id: str) -> str:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        state = job_state(job_id)
        if state in FINISHED:
            return state
        time.sleep(1)
    pytest.fail(f"SLURM job {job_id} not finished after {JOB_TIMEOUT_S} s (state {job_state(job_id)!r})")


def test_sbatch_job_runs_on_the_node(slurm, tmp_path):
    out = tmp_path / "job.out"
    job_id = (
        subprocess.run(
            [
                "sbatch",
                "--parsable",
                "-D",
                str(tmp_path),
                "-o",
                str(out),
                "--gpus=1",
                "--wrap",
                'echo "ran on $(hostname -s) with $SLURM_GPUS_ON_NODE GPU"',
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .split(";")[0]
    )
    assert wait_for_job(job_id) == "COMPLETED", out.read_text() if out.exists() else "no job output"
    assert out.read_text().strip() == f"ran on {os.uname().nodename.split('.')[0]} with 1 GPU"


def copy_tracked_files(dest: Path) -> None:
    """A fresh copy of the repository: the files git tracks, as they are in the working tree."""
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, names):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


# The profile polls job states every 20 s or more, gentle on a real controller; this cluster is ours, and
# polling every 5 s lets the many short jobs of the tests follow each other quickly.
FAST_POLLING = ("--slurm-init-seconds-before-status-checks", "5")


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--workflow-profile",
            "workflow/profiles/slurm",
            *FAST_POLLING,
            *args,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=WORKFLOW_TIMEOUT_S,
    )


# A two-job workflow: the profile and the plugin on their own, whatever state the real pipeline is in.
PROBE_SNAKEFILE = """
rule all:
    input:
        "probe/help.txt",
        "probe/gpu.txt",


rule cpu_job:
    output:
        "probe/help.txt",
    resources:
        gpu=0,
    shell:
        "python -m rir --help > {output}"


rule gpu_job:
    output:
        "probe/gpu.txt",
    resources:
        gpu=1,
    shell:
        "echo $SLURM_JOB_ID $SLURM_GPUS_ON_NODE > {output}"
"""


@pytest.mark.slow
def test_slurm_profile_submits_jobs_through_the_plugin(slurm, tmp_path):
    copy_tracked_files(tmp_path)
    (tmp_path / "Snakefile.probe").write_text(PROBE_SNAKEFILE)
    proc = run_snakemake(tmp_path, "--snakefile", "Snakefile.probe")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    assert "SLURM run ID" in log  # submitted by the plugin, not run locally
    assert "usage: rir" in (tmp_path / "probe" / "help.txt").read_text()
    job_id, gpus = (tmp_path / "probe" / "gpu.txt").read_text().split()
    assert job_id.isdigit() and gpus == "1"  # a SLURM job, granted the GPU its `gpu` resource asked for


@pytest.mark.slow
def test_smoke_pipeline_through_the_slurm_profile(slurm, tmp_path):
    copy_tracked_files(tmp_path)
    # Successful jobs' SLURM logs are kept: one per job proves each ran as a SLURM job, not locally.
    proc = run_snakemake(tmp_path, "--config", "profile=smoke", "--slurm-keep-successful-logs")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    assert (tmp_path / "reports" / "smoke" / "index.html").is_file()
    assert "SLURM run ID" in log
    trained = {p.parent.name for p in (tmp_path / "results" / "smoke" / "runs").glob("*/metrics.json")}
    slurm_logs = tmp_path / ".snakemake" / "slurm_logs" / "rule_train"
    assert trained and {p.parent.name for p in slurm_logs.glob("*/*.log")} == trained
    # Nothing left to do: the finished DAG is complete as Snakemake sees it.
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--config", "profile=smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "Nothing to be done" in dry.stdout + dry.stderr
