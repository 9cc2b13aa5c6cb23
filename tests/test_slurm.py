"""Scale-out on SLURM: a real one-node cluster started on this machine by .ci/slurm-up, no mocks.

The `slurm` fixture starts (or finds) the cluster with two stand-in GPUs declared as generic resources, so
the workflow's `gpu=1` jobs go through the same `sbatch --gpus=1` path as on a GPU cluster. The tests skip,
saying why, where Debian's slurm-wlm and munge are not installed or the tests do not run as root.

The fault tests meet SLURM's own mechanisms, not stand-ins for them (docs/cluster.md, "Faults"): a job of the
`high` partition preempts a training job of `low` (preempt/partition_prio, PreemptMode=REQUEUE), a one-minute
`runtime` runs out (TIMEOUT, SIGTERM then SIGKILL after KillWait), and runs share stand-in GPUs through
`rir train`'s own slots. They wait on events (a flag file a paused run writes, lock files, job states), never
on a guessed time: `RIR_FAULT_INJECT` (tests/faults.py) pauses a run at a known step, after its first
checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from faults import FAULT_ENV, FAULT_FLAG_ENV, fault_env
from gpubox import GPUS_ENV, gpu_box_env
from pipeline import SHORT_RUNS, copy_worktree, cut_smoke_profile

from rir.gpu import LOCK_DIR, RUNS_PER_GPU

REPO = Path(__file__).resolve().parent.parent
SLURM_UP = REPO / ".ci" / "slurm-up"
FAKE_GPUS = "2"
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}
# Only a hung cluster or workflow reaches these limits; they measure nothing.
JOB_TIMEOUT_S = 180
WORKFLOW_TIMEOUT_S = 1800
SLURMCTLD_LOG = Path("/var/log/slurm/slurmctld.log")  # where .ci/slurm-up points it


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


# The profile polls job states every 20 s or more, gentle on a real controller; this cluster is ours, and
# polling every 5 s lets the many short jobs of the tests follow each other quickly.
FAST_POLLING = ("--slurm-init-seconds-before-status-checks", "5")


def run_snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
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
        env=env,
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
    copy_worktree(tmp_path)
    (tmp_path / "Snakefile.probe").write_text(PROBE_SNAKEFILE)
    proc = run_snakemake(tmp_path, "--snakefile", "Snakefile.probe")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    assert "SLURM run ID" in log  # submitted by the plugin, not run locally
    assert "usage: rir" in (tmp_path / "probe" / "help.txt").read_text()
    job_id, gpus = (tmp_path / "probe" / "gpu.txt").read_text().split()
    assert job_id.isdigit() and gpus == "1"  # a SLURM job, granted the GPU its `gpu` resource asked for


# The smoke runs' nets are tiny: at the shipped margin every limit would be the floor. This margin makes the
# estimate itself show in the limits, so a wide and a base run must differ as their FLOPs do.
PRICED = {"card": "A100", "margin": 1000000, "startup_minutes": 1, "floor_minutes": 1}
# A planted fault on PATH, before the real `rir`: every ablation of one run fails, as a bug in it or a node
# lost while ablating would fail it, after the run's training finished in a job of its own.
FAILING_ABLATION = """#!/bin/sh
if [ "$1" = ablate ] && [ "${{2##*/}}" = "{run}" ]; then
    echo failed >> "{count}"; echo "planted failure of the ablation of {run}" >&2; exit 1
fi
exec "{python}" -m rir "$@"
"""
ATTEMPTS = 3  # the profile's `retries: 2`
# The jobs a Snakemake submitted, by its submission lines; SLURM's own record of each judges it.
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) ")
# The plugin's SLURM logs: .snakemake/slurm_logs/rule_train/<run>/<job id>.log for a training's job,
# group_evaluation_<its rules>/<job id>.log for a run's evaluation job (the profile's group `evaluation`).
SLURM_LOG = re.compile(r"^(?:rule_(train)|group_(evaluation)_\w+)$")


def slurm_jobs_of(workdir: Path) -> dict[str, dict]:
    """Each SLURM job the plugin submitted (its log kept), as {job id: {"kind": "train" or "evaluation",
    "rules": {rule: run}, "record": ...}}: what the plugin submitted it as (its log's folder), the rules its
    own Snakemake ran, read from the job's log, and SLURM's record of it (`scontrol show job`; the test
    cluster keeps finished jobs for MinJobAge=600 s)."""
    jobs = {}
    root = workdir / ".snakemake" / "slurm_logs"
    for log in root.rglob("*.log"):
        kind = SLURM_LOG.match(log.relative_to(root).parts[0])
        assert kind, f"a SLURM job of neither a training nor an evaluation: {log}"
        ran = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: run=(\S+)", log.read_text(), flags=re.M)
        jobs[log.stem] = {"kind": kind[1] or kind[2], "rules": dict(ran), "record": show_job(log.stem)}
    return jobs


# The runs the test needs, and no more (each is two SLURM jobs on two stand-in GPUs): Figure 3's two ablated
# runs (one of them fails), and Table 3's base ResNet (RUN) beside Table 1's wide RiR, whose time limits must
# differ as their FLOPs do. Every other family is left out (the profile's `only`).
SLURM_SLICE = {"only": ["table1_2", "table3", "figure3"],
               "families": {"table1_2": {"datasets": ["cifar10"]},
                            "table3": {"models": ["resnet_init_18", "resnet_18", "rir_18"]}}}
SLURM_SLICE_RUNS = ["rir_18_wide__cifar10__s0", "resnet_init_18__cifar10__s0", "resnet_18__cifar10__s0",
                    "rir_18__cifar10__s0"]


def cut_to_slurm_slice(repo: Path) -> None:
    """The copy's smoke profile cut to SHORT_RUNS (tests/pipeline.py) and to SLURM_SLICE's four runs."""
    import yaml

    cut_smoke_profile(repo, families=False)
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["profiles"]["smoke"].update(SLURM_SLICE)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def minutes(record: dict[str, str]) -> int:
    """SLURM's TimeLimit of a job as minutes (all under a day here: HH:MM:SS)."""
    hours, mins, _ = record["TimeLimit"].split(":")
    return 60 * int(hours) + int(mins)


@pytest.mark.slow
def test_smoke_pipeline_through_the_slurm_profile_two_jobs_per_run(slurm, uninterrupted, tmp_path):
    """The whole DAG on four runs of the smoke profile, short ones (SLURM_SLICE): two stand-in GPUs run two
    jobs at a time, and each job pays SLURM's scheduling and the plugin's polling, so more runs would take
    minutes more and prove nothing more. Each run's training is one SLURM job of its own, and its
    evaluation and (Figure 3's runs) ablation one more, a group job, each on one GPU under the time limit its
    rules' estimates on the named card give; the data and report rules are the Snakefile's localrules
    (compute nodes often have no network). One run's ablation fails on every attempt: its evaluation job is
    retried alone, the workflow fails with the run's training in place, and the next `snakemake` (the
    ablation fixed) submits that one evaluation job again, never the training."""
    from rir.config import expand_runs, load_params, resolve_profile
    from rir.stages import RUN_FILES
    from rir.timelimits import cluster_settings, data_sizes, rule_minutes

    copy_worktree(tmp_path)
    cut_to_slurm_slice(tmp_path)
    params = load_params(str(tmp_path / "params.yaml"))
    runs = expand_runs(params, "smoke")
    failing = "resnet_init_18__cifar10__s0"
    assert sorted(runs) == sorted(SLURM_SLICE_RUNS) and runs[failing].ablate, sorted(runs)
    shim, count = tmp_path / "planted" / "rir", tmp_path / "planted" / "failures"
    shim.parent.mkdir()
    shim.write_text(FAILING_ABLATION.format(run=failing, count=count, python=sys.executable))
    shim.chmod(0o755)
    cluster = "cluster={" + ", ".join(f"{k}: {v}" for k, v in PRICED.items()) + "}"
    # Successful jobs' SLURM logs are kept: one per job proves each ran as a SLURM job, not locally.
    args = ("--config", "profile=smoke", cluster, "--slurm-keep-successful-logs")
    first = run_snakemake(tmp_path, *args, env={**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}"})
    log = first.stdout + first.stderr
    assert first.returncode != 0 and count.read_text().count("failed") == ATTEMPTS, log[-8000:]
    assert "SLURM run ID" in log and "no GPU card named" not in log
    # The failing run's training is in place; every other run is done (keep-going).
    run_dir = tmp_path / "results/smoke/runs" / failing
    assert all((run_dir / name).is_file() for name in RUN_FILES), log[-8000:]
    trained = {name: (run_dir / name).stat().st_mtime_ns for name in RUN_FILES}
    for run in runs:
        assert (tmp_path / "results/smoke/evaluations" / f"{run}.json").is_file() == (run != failing), run
    before = set(slurm_jobs_of(tmp_path))

    # The next invocation, the ablation fixed: only the failing run's evaluation job is submitted.
    shim.unlink()
    proc = run_snakemake(tmp_path, *args)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    assert (tmp_path / "reports" / "smoke" / "index.html").is_file()
    assert len(SUBMITTED.findall(log)) == 1, log[-8000:]
    assert {name: (run_dir / name).stat().st_mtime_ns for name in RUN_FILES} == trained  # not trained again
    jobs = slurm_jobs_of(tmp_path)
    (again,) = set(jobs) - before
    assert jobs[again]["kind"] == "evaluation" and jobs[again]["rules"] == {
        "evaluate": failing, "ablate": failing}, jobs[again]

    # Each run: one training job that ran the train rule alone, and one evaluation job (the failing run's once
    # per attempt, then once more in the second invocation) that evaluated and, for Figure 3's runs, ablated.
    by_run = {run: {kind: sorted((job for job, info in jobs.items()
                                  if info["kind"] == kind and run in info["rules"].values()), key=int)
                    for kind in ("train", "evaluation")} for run in runs}
    assert len(jobs) == sum(len(ids) for kinds in by_run.values() for ids in kinds.values()), {
        job: (info["kind"], info["rules"]) for job, info in jobs.items()}
    assert {run: {kind: len(ids) for kind, ids in kinds.items()} for run, kinds in by_run.items()} == {
        run: {"train": 1, "evaluation": 1 + ATTEMPTS * (run == failing)} for run in runs}, {
        job: (info["kind"], info["rules"]) for job, info in jobs.items()}
    settings, sizes = cluster_settings({"cluster": PRICED}), data_sizes(resolve_profile(params, "smoke"))
    train_limits = {}
    for run, kinds in by_run.items():
        (train,) = kinds["train"]
        assert jobs[train]["rules"] == {"train": run}, jobs[train]
        evaluation = ["evaluate", *(["ablate"] if runs[run].ablate else [])]
        for job in kinds["evaluation"]:
            assert jobs[job]["rules"] == dict.fromkeys(evaluation, run), (job, jobs[job]["rules"])
        # SLURM's TimeLimit of each job is its rules' runtimes: the training's alone, the evaluation job's the
        # sum of its rules' (neither changes with the attempt: only a training's retry asks for more).
        train_limits[run] = minutes(jobs[train]["record"])
        assert train_limits[run] == rule_minutes("train", runs[run], sizes, settings), jobs[train]["record"]
        attempts = [*range(1, ATTEMPTS + 1), 1] if run == failing else [1]
        for attempt, job in zip(attempts, kinds["evaluation"], strict=True):
            assert minutes(jobs[job]["record"]) == sum(
                rule_minutes(rule, runs[run], sizes, settings, attempt) for rule in evaluation), (
                job, attempt, jobs[job]["record"])
    for job, info in jobs.items():
        assert info["record"]["TresPerJob"] == "gres:gpu:1", (job, info["record"])  # one GPU, every job
    # The cap of one GPU is per job, not per cluster: different runs' jobs ran side by side on the two
    # stand-in GPUs.
    spans = {job: (info["rules"], *(datetime.fromisoformat(info["record"][key]) for key in ("StartTime",
                                                                                         "EndTime")))
             for job, info in jobs.items()}
    assert any(a[1] < b[2] and b[1] < a[2] and set(a[0].values()) != set(b[0].values())
               for i, a in enumerate(spans.values()) for b in list(spans.values())[i + 1:]), spans
    # As the estimate says: the wide net's FLOPs per image are ~9x the base net's (neither is ablated).
    wide, base = "rir_18_wide__cifar10__s0", "resnet_18__cifar10__s0"
    assert not runs[wide].ablate and not runs[base].ablate, runs
    assert train_limits[wide] > 4 * train_limits[base], train_limits
    # The run trained in its SLURM job is the run trained on this machine without SLURM, byte for byte.
    assert_same_run(tmp_path / "results/smoke/runs" / RUN, uninterrupted / "results/smoke/runs" / RUN)
    for run in runs:
        assert (tmp_path / "results/smoke/evaluations" / f"{run}.json").is_file()
        assert (tmp_path / "results/smoke/ablation" / f"{run}.csv").is_file() == runs[run].ablate
    # Nothing left to do: the finished DAG is complete as Snakemake sees it.
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--config", "profile=smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-4000:]


@pytest.mark.slow
def test_without_a_known_card_every_run_asks_for_the_ceiling_with_one_warning(slurm, tmp_path):
    copy_worktree(tmp_path)
    for given in ([], ["cluster={card: V100}"]):
        proc = run_snakemake(tmp_path, "--dry-run", "--config", "profile=smoke", *given)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-4000:]
        warnings = [line for line in log.splitlines() if line.startswith("warning:") and "card" in line]
        assert len(warnings) == 1 and "1440 minutes" in warnings[0], warnings
        # A training (a job of its own) asks for the whole ceiling; evaluate and ablate their start-up each.
        runtimes = {rule: set(re.findall(rf"^ *rule {rule}:\n(?: +.*\n)*? +resources: .*runtime=(\d+)", log,
                                         flags=re.M)) for rule in ("train", "evaluate", "ablate")}
        assert runtimes == {"train": {"1440"}, "evaluate": {"5"}, "ablate": {"5"}}, runtimes


# --- Faults as SLURM delivers them ------------------------------------------------------------------------

RUN = "resnet_18__cifar10__s0"
# The fault tests train tests/pipeline.py's SHORT_RUNS, not the smoke profile's (sized for its runs to learn):
# their step counts follow from it, and the run resumed after a time limit finishes well inside a one-minute
# limit without reaching the pause again.
STEPS_PER_EPOCH = SHORT_RUNS["synthetic"]["n_train"] // SHORT_RUNS["recipe"]["batch_size"]
# The first step of epoch 2: a run paused there has written its epoch-1 checkpoint and has steps left to lose.
AFTER_FIRST_CHECKPOINT = STEPS_PER_EPOCH + 1
# Fields of metrics.json that measure the machine or the clock, not the run; everything else must be equal.
CLOCK = {"wall_seconds", "train_seconds", "peak_memory_bytes"}


def metrics_target(run: str) -> str:
    return f"results/smoke/runs/{run}/metrics.json"


def train_resources(*extra: str) -> list[str]:
    """`--set-resources` for the train rule: a command-line value replaces the profile's whole entry, so
    runtime and memory are restated (small ones: several runs share this machine's memory)."""
    given = {item.split("=", 1)[0] for item in extra}
    defaults = [f"{key}={value}" for key, value in (("runtime", 10), ("mem_mb", 1500)) if key not in given]
    return ["--set-resources", *(f"train:{item}" for item in (*defaults, *extra))]


def start_workflow(workdir: Path, log: Path, *args: str, env: dict[str, str]) -> subprocess.Popen:
    """The SLURM profile's Snakemake in its own session; `env` reaches every job (sbatch exports it)."""
    environ = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, FAULT_FLAG_ENV, GPUS_ENV)}
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--workflow-profile", "workflow/profiles/slurm",
             *FAST_POLLING, *args],
            cwd=workdir, env={**environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


def stop_workflow(workflow: subprocess.Popen, workdir: Path) -> None:
    """After a failed test: end Snakemake and cancel the SLURM jobs it left working in `workdir`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(workflow.pid, signal.SIGKILL)
    workflow.wait()
    queue = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True).stdout
    jobs = [line.split()[0] for line in queue.splitlines() if str(workdir) in line]
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True)
    kill_processes_in(workdir)


def kill_processes_in(workdir: Path) -> None:
    """SIGKILL every process working in `workdir`: a paused run ignores SIGTERM, and proctrack/linuxproc may
    lose a process whose parent died."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(workdir):
                os.kill(int(entry.name), signal.SIGKILL)


def wait_for(condition, what: str, log: Path, *workflows: subprocess.Popen):
    """Poll `condition` until it returns something true; fail at once if a workflow ends first."""
    deadline = time.monotonic() + WORKFLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        for workflow in workflows:
            if workflow.poll() is not None:
                pytest.fail(f"the workflow ended (exit {workflow.returncode}) before {what}\n"
                            f"{log.read_text()[-6000:]}")
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {WORKFLOW_TIMEOUT_S} s\n{log.read_text()[-6000:]}")


def paused_pid(flag: Path) -> int | None:
    """The pid a run paused by RIR_FAULT_INJECT wrote to its flag file (written atomically), else None."""
    with contextlib.suppress(FileNotFoundError):
        return int(flag.read_text())
    return None


def slurm_job_of(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(item.split("=", 1) for item in environ if "=" in item)["SLURM_JOB_ID"]


def show_job(job_id: str) -> dict[str, str]:
    """SLURM's record of a job (`scontrol show job`) as {field: value}."""
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def sbatch(*args: str) -> str:
    out = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, check=True).stdout
    return out.strip().split(";")[0]


def started(controller_log: str, job: str, after: int) -> int:
    """Where slurmctld's log records `job` starting after position `after` (main scheduler or backfill)."""
    found = re.compile(rf"(?:Allocate|Started) JobId={job} ").search(controller_log, after)
    assert found, f"JobId={job} did not start again:\n{controller_log[after:]}"
    return found.start()


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """model.pt byte for byte, metrics.json field for field (the clock's fields aside)."""
    assert (run_dir / "model.pt").read_bytes() == (reference / "model.pt").read_bytes()
    metrics, expected = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference))
    assert {k: v for k, v in metrics.items() if k not in CLOCK} == {
        k: v for k, v in expected.items() if k not in CLOCK}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """A copy of the repository in which the same workflow trained RUN on this machine, without SLURM or
    any fault: the reference run, and the prepared smoke data the fault tests start from."""
    repo = tmp_path_factory.mktemp("uninterrupted")
    copy_worktree(repo)
    cut_smoke_profile(repo, families=False)
    environ = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, FAULT_FLAG_ENV, GPUS_ENV)}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", metrics_target(RUN), "--config",
                           "profile=smoke"], cwd=repo, env=environ, capture_output=True, text=True,
                          timeout=WORKFLOW_TIMEOUT_S)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return repo


def workflow_copy(dest: Path, uninterrupted: Path) -> Path:
    """A fresh copy of the repository with the smoke data already prepared (mtimes kept, so Snakemake sees
    it up to date): only training jobs go to SLURM, and each test saves two jobs' worth of polling."""
    dest.mkdir(exist_ok=True)
    copy_worktree(dest)
    cut_smoke_profile(dest, families=False)
    shutil.copytree(uninterrupted / "data", dest / "data")
    return dest


@pytest.mark.slow
def test_preemption_by_a_high_priority_job_requeues_the_run_and_it_resumes_bit_identical(
    slurm, uninterrupted, tmp_path
):
    workflow_copy(tmp_path, uninterrupted)
    flag, log = tmp_path / "held", tmp_path / "snakemake.log"
    state = tmp_path / "results/smoke/state" / RUN
    # HOLD: the run pauses after its epoch-1 checkpoint until a SIGTERM arrives, so the preemption's signal
    # lands at a known step and never in a last step that would let the run finish first.
    workflow = start_workflow(tmp_path, log, metrics_target(RUN), *train_resources("slurm_partition=low"),
                              "--config", "profile=smoke",
                              env=fault_env(f"HOLD@{AFTER_FIRST_CHECKPOINT}", flag))
    try:
        pid = wait_for(lambda: paused_pid(flag), "the run's pause in epoch 2", log, workflow)
        job = slurm_job_of(pid)
        assert (state / "ckpt-e0001-s000000.pt").is_file()
        assert show_job(job)["Partition"] == "low"
        # A job that needs both of the node's GPUs, in the partition of higher PriorityTier: SLURM preempts.
        high = sbatch("-p", "high", "--gpus=2", "--mem=100", "-D", str(tmp_path), "-o", "high.out", "--wrap",
                      "echo the high priority job ran")
        assert workflow.wait(timeout=WORKFLOW_TIMEOUT_S) == 0, log.read_text()[-8000:]
    finally:
        if workflow.poll() != 0:
            stop_workflow(workflow, tmp_path)
    # SLURM's records: one job, started twice (requeued, not resubmitted by Snakemake), the high priority
    # job allocated the node the moment the run's job was requeued, and before the run's job started again.
    record = show_job(job)
    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "1", record
    assert "submitted with SLURM jobid" in log.read_text() and log.read_text().count(
        "submitted with SLURM jobid") == 1, log.read_text()[-6000:]  # prepared data: the train job alone
    assert wait_for_job(high) == "COMPLETED"
    assert (tmp_path / "high.out").read_text() == "the high priority job ran\n"
    controller = SLURMCTLD_LOG.read_text()
    requeued = controller.index(f"Requeuing JobId={job}\n")
    assert started(controller, high, requeued) < started(controller, job, requeued), controller[requeued:]
    # The requeued job resumed from the checkpoint the SIGTERM wrote at the paused step (epoch 2, step 1).
    train_log = (tmp_path / "logs/smoke/train" / f"{RUN}.log").read_text()
    assert f"resuming from results/smoke/state/{RUN} at epoch 2, step 1" in train_log, train_log
    assert_same_run(tmp_path / "results/smoke/runs" / RUN, uninterrupted / "results/smoke/runs" / RUN)


@pytest.mark.slow
def test_a_time_limit_kills_the_job_retries_resume_it_and_a_run_without_progress_stops(
    slurm, uninterrupted, tmp_path
):
    """Two workflows at once (a time limit costs a minute or more each): one that can resume, one that
    cannot, each with a one-minute `runtime`, SLURM's smallest."""
    resumable, stuck = tmp_path / "resumable", tmp_path / "stuck"
    workflows = {}
    for repo, pause_at, retries in ((resumable, AFTER_FIRST_CHECKPOINT, ()), (stuck, 1, ("--retries", "1"))):
        workflow_copy(repo, uninterrupted)
        # WAIT with a flag nobody removes: the run ignores SIGTERM until SLURM's SIGKILL, after KillWait.
        workflows[repo] = start_workflow(
            repo, repo / "snakemake.log", metrics_target(RUN), *retries, *train_resources("runtime=1"),
            "--config", "profile=smoke",
            env=fault_env(f"WAIT@{pause_at}", repo / "paused"))
    try:
        codes = {repo: workflow.wait(timeout=WORKFLOW_TIMEOUT_S) for repo, workflow in workflows.items()}
    finally:
        for repo, workflow in workflows.items():
            if workflow.poll() is None:
                stop_workflow(workflow, repo)
            kill_processes_in(repo)  # whatever a timed-out attempt's paused run left (kill_processes_in)

    # Resumable: killed at its limit in epoch 2, resubmitted once by Snakemake's retries, resumed, identical.
    log = (resumable / "snakemake.log").read_text()
    assert codes[resumable] == 0, log[-8000:]
    submitted = SUBMITTED.findall(log)
    timed_out = [job for job in submitted if show_job(job)["JobState"] == "TIMEOUT"]
    assert len(submitted) == 2 and timed_out == submitted[:1], log[-8000:]
    record = show_job(timed_out[0])
    assert record["JobState"] == "TIMEOUT" and record["TimeLimit"] == "00:01:00", record
    # SIGTERM at the limit: the step's tasks (the job's Snakemake, its shell, rir train) get it.
    # The job's log: a training is a SLURM job of its own (rule_train/<run>/<job id>.log).
    logs = (resumable / ".snakemake/slurm_logs/rule_train" / RUN).glob(f"{timed_out[0]}.log")
    (slurm_log,) = (path.read_text() for path in logs)
    assert f"STEP {timed_out[0]}.0 ON" in slurm_log and "DUE TO TIME LIMIT" in slurm_log, slurm_log
    # The paused run never leaves its pause by itself and wrote no SIGTERM checkpoint (ckpt-e0001-s000001,
    # which the log would name as "step 1"): SLURM's SIGKILL, KillWait after the SIGTERM, ended it. The
    # second attempt resumed from epoch 1's, and the finished run's state is removed.
    assert not (resumable / "results/smoke/state" / RUN).exists()
    train_log = (resumable / "logs/smoke/train" / f"{RUN}.log").read_text()
    assert f"resuming from results/smoke/state/{RUN} at epoch 2, step 0" in train_log, train_log
    assert_same_run(resumable / "results/smoke/runs" / RUN, uninterrupted / "results/smoke/runs" / RUN)

    # Stuck: no checkpoint in either attempt; after the one retry Snakemake stops, naming the timeout.
    log = (stuck / "snakemake.log").read_text()
    assert codes[stuck] != 0, log[-8000:]
    timed_out = SUBMITTED.findall(log)
    assert len(timed_out) == 2 and len(set(timed_out)) == 2, log[-8000:]
    assert all(show_job(job)["JobState"] == "TIMEOUT" for job in timed_out)
    assert "Error in rule train" in log and "Exiting because a job execution failed" in log, log[-8000:]
    # What the user follows: Snakemake names each failed job, its SLURM state and its SLURM log, which says
    # why it ended.
    for job in timed_out:
        (job_log,) = (stuck / ".snakemake/slurm_logs/rule_train" / RUN).glob(f"{job}.log")
        assert f"SLURM-job '{job}' failed, SLURM status is: 'TIMEOUT'" in log, log[-8000:]
        assert f"{job_log} (check log file(s) for error details)" in log, log[-8000:]
        assert "DUE TO TIME LIMIT" in job_log.read_text()
    assert not list((stuck / "results/smoke/state").glob(f"{RUN}/*.pt"))
    assert not (stuck / metrics_target(RUN)).exists()


# Five runs for four slots (two stand-in GPUs x runs_per_gpu 2): four train at once, the fifth waits.
SHARING = ["cnn_18__cifar10__s0", "resnet_init_18__cifar10__s0", "resnet_18__cifar10__s0",
           "rir_18__cifar10__s0", "all_cnn_c__cifar10__s0"]
SLOTS = [f"gpu{gpu}-slot{slot}.lock" for slot in range(2) for gpu in range(2)]  # rir.gpu's names


def held_slots(lock_dir: Path) -> dict[str, int]:
    """{slot lock file: pid} for every slot whose flock is held, as the kernel reports it (/proc/locks)."""
    files = {}
    for path in lock_dir.glob("*.lock"):
        st = path.stat()
        files[f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"] = path.name
    held = {}
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()  # "1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF"
        if fields[1] == "FLOCK" and fields[5] in files:
            held[files[fields[5]]] = int(fields[4])
    return held


def holder(lock: Path) -> str:
    """The run a slot's lock file names (rir.gpu writes `<run> pid=... host=... since=...`)."""
    return lock.read_text().split()[0]


def argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def alive(pid: int) -> bool:
    """A running process (a zombie has closed its files, and with them its lock)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def assert_trainer_holds_a_slot(flag: Path, lock_dir: Path) -> None:
    """The run that paused last (WAIT writes its pid after its first training step) holds a slot's lock."""
    pid = paused_pid(flag)
    if pid is not None:
        held = held_slots(lock_dir)
        assert pid in held.values() or not alive(pid), f"pid {pid} trains without a slot of its own: {held}"


@pytest.mark.slow
def test_runs_share_two_gpus_two_each_through_slurm_and_a_killed_run_frees_its_slot_at_once(
    slurm, uninterrupted, tmp_path
):
    """runs_per_gpu 2 under SLURM: the train jobs ask SLURM for no GPU (gpu=0) and `rir train` leases a slot
    of the node's GPUs itself, as on a node whose GPUs SLURM does not manage (docs/cluster.md: with `--gpus`
    SLURM grants each job a whole GPU and sharing is SLURM's, through gres/shard)."""
    repo = workflow_copy(tmp_path / "repo", uninterrupted)
    locks, flag, log = tmp_path / "locks", tmp_path / "paused", tmp_path / "snakemake.log"
    workflow = start_workflow(
        repo, log, *map(metrics_target, SHARING), *train_resources("gpu=0", "mem_mb=1000"), "--config",
        "profile=smoke", env={**gpu_box_env(2, fault_env("WAIT@1", flag)), RUNS_PER_GPU: "2",
                              LOCK_DIR: str(locks)})

    def train_log(run: str) -> str:
        path = repo / "logs/smoke/train" / f"{run}.log"
        return path.read_text() if path.exists() else ""

    try:
        def four_held_one_waiting():
            assert_trainer_holds_a_slot(flag, locks)
            held, waiting = held_slots(locks), [r for r in SHARING if "for a free GPU slot" in train_log(r)]
            return (held, waiting) if len(held) == 4 and len(waiting) == 1 else None

        held, (waiting,) = wait_for(four_held_one_waiting, "four runs holding slots and a fifth waiting", log,
                                    workflow)
        # Four slots, four processes, each the `rir train` of the run its lock file names, each a SLURM job.
        assert sorted(held) == sorted(SLOTS) and len(set(held.values())) == 4, held
        runs = {slot: holder(locks / slot) for slot in held}
        assert sorted([*runs.values(), waiting]) == sorted(SHARING)
        for slot, pid in held.items():
            assert argv(pid)[argv(pid).index("--run") + 1] == runs[slot]
        assert len({slurm_job_of(pid) for pid in held.values()}) == 4

        victim_slot = SLOTS[0]
        victim = held[victim_slot]
        os.kill(victim, signal.SIGKILL)
        # The new holder takes the flock, then writes its name over the lock file (rir.gpu truncates it
        # first): wait for the name too, or a read in between finds the file empty (seen once in CI).
        now = wait_for(lambda: (h := held_slots(locks)).get(victim_slot) not in (None, victim)
                       and (locks / victim_slot).read_text().strip() and h,
                       "the freed slot taken by the waiting run", log, workflow)
        # The waiting run took exactly the killed run's slot; the other three slots never changed hands.
        assert holder(locks / victim_slot) == waiting
        assert argv(now[victim_slot])[argv(now[victim_slot]).index("--run") + 1] == waiting
        assert {s: p for s, p in now.items() if s != victim_slot} == {
            s: p for s, p in held.items() if s != victim_slot}

        # Release every paused run (the retried one too, once it has a slot) until the workflow ends.
        deadline = time.monotonic() + WORKFLOW_TIMEOUT_S
        while workflow.poll() is None and time.monotonic() < deadline:
            assert_trainer_holds_a_slot(flag, locks)
            flag.unlink(missing_ok=True)
            time.sleep(0.1)
        assert workflow.wait(timeout=1) == 0, log.read_text()[-8000:]
    finally:
        if workflow.poll() != 0:
            stop_workflow(workflow, repo)
    text = log.read_text()
    killed = runs[victim_slot]
    assert text.count("Error in rule train") == 1 and f"run={killed}" in text  # the SIGKILL, retried once
    for run in SHARING:
        assert (repo / metrics_target(run)).is_file(), run
    assert held_slots(locks) == {}  # every slot free again, nothing to clean up
