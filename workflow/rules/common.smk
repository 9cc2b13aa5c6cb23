# Shared names: the chosen profile, its folders, and the runs params.yaml expands to; the GPU jobs' threads,
# the `gpu` resource of this box, and the time limits of the runs' cluster jobs.
import os
import sys

from rir.config import expand_runs, resolve_profile
from rir.config import read_yaml
from rir.dvcgen import PLOTS_DIR, config_path, evaluation_path, metrics_path, write_config_files
from rir.stages import RUN_FILES, code_files
from rir.errors import UserError
from rir.finished import discard, release
from rir.gpu import cpu_refusal, gpu_job_threads, gpu_slots
# Snakemake internals, each read through rir.snakemake_internals (one clear line if a release changes one).
from rir.snakemake_internals import due_for_more_than_missing_output, due_wildcards, has_resource_limit
from rir.snakemake_internals import local_box, main_process
from rir.snakemake_internals import set_resource_limit, touching
from rir.timelimits import cluster_settings, data_sizes, rule_minutes
from rir.timelimits import warning as cluster_warning


def refuse(err):
    """A user's mistake (or a changed Snakemake internal) found while parsing: one line, exit 2."""
    print(f"snakemake: error: {err}", file=sys.stderr)
    sys.exit(2)


PROFILE = config.get("profile", "paper")
RESOLVED = resolve_profile(config, PROFILE)
RUNS = expand_runs(config, PROFILE)
GRIDSEARCH_RUNS = expand_runs(config, PROFILE, optional=True, family="gridsearch")
READINGS_RUNS = expand_runs(config, PROFILE, optional=True, family="readings")
ALL_RUNS = {**RUNS, **expand_runs(config, PROFILE, optional=True)}
ABLATED = sorted(run_id for run_id, run in RUNS.items() if run.ablate)
DATASETS = sorted({run.dataset for run in ALL_RUNS.values()})
SYNTHETIC = RESOLVED.get("data", "real") == "synthetic"

DATA = f"data/{PROFILE}"  # outputs of different profiles never mix
RESULTS = f"results/{PROFILE}"
REPORTS = f"reports/{PROFILE}"
LOGS = f"logs/{PROFILE}"
GRIDSEARCH_SUMMARY = f"{RESULTS}/gridsearch"  # rir.report.gridsearch.SUMMARY_FOLDER
READINGS_SUMMARY = f"{RESULTS}/readings"  # rir.report.readings.SUMMARY_FOLDER
# Each run's resolved configuration as a file its jobs depend on, written now, where it changed (as DVC's
# guard stage writes them; rir.dvcgen): Snakemake's params fingerprint below reruns only jobs it ran itself
# (it keeps no record of runs DVC made), but a configuration file newer than a run's outputs reruns it
# whoever made it. Written from params.yaml as `rir train` reads it; unchanged files keep their time.
write_config_files(read_yaml("params.yaml", "params file"), ".")
CONFIGS = {"run": config_path(PROFILE, "{run}"), "families": config_path(PROFILE, "families"),
           "data": config_path(PROFILE, "data-{dataset}")}
PLOTS = f"{PLOTS_DIR}/{PROFILE}"  # the figures again, for `dvc plots show` (rir.dvcgen)
# Every file a rule's command reads is an input (DESIGN.md, "Reruns tell the truth"): the rir code it runs,
# as DVC's stages list it (rir.stages.CODE, folders as their files), paper.yaml among the report's. Snakemake
# reruns a job when one changed (its checksum, for files of up to 1 MB, so a `touch` alone reruns nothing).
CODE = {kind: code_files(kind) for kind in ("synth", "fetch", "train", "evaluate", "ablate", "report")}


# Every GPU busy without flags (docs/cluster.md). On this box (Snakemake's local executor: no --jobs for a
# cluster, so `workflow.nodes` is None) the GPU slots are those `rir train` leases from (rir.gpu: the GPUs in
# CUDA_VISIBLE_DEVICES or nvidia-smi's, x $RIR_RUNS_PER_GPU). They become the default `gpu` resource, so
# Snakemake starts no more GPU jobs than there are slots and no job sits on cores waiting for one; a
# `--resources gpu=N` of the user's wins. Under a cluster executor each job gets its own GPU from the
# scheduler, and this box's GPUs mean nothing.
try:
    LOCAL_BOX = local_box(workflow)
    GPU_SLOTS = gpu_slots() if LOCAL_BOX else 0  # UserError: a malformed RIR_RUNS_PER_GPU or RIR_FAKE_GPU_COUNT
    if GPU_SLOTS and not has_resource_limit(workflow, "gpu"):
        set_resource_limit(workflow, "gpu", GPU_SLOTS)
    # Each run's cluster job asks for the time its estimate on the named card needs (rir.timelimits; the
    # `cluster` settings of workflow/profiles/slurm/cluster.yaml or --config). UserError: a bad setting.
    CLUSTER = cluster_settings(config)
    WARNING = cluster_warning(CLUSTER)
    if WARNING and not LOCAL_BOX and main_process(workflow):  # once, where Snakemake started
        print(WARNING, file=sys.stderr)
except UserError as err:
    refuse(err)
SIZES = data_sizes(RESOLVED)
# CPU threads of one GPU job (train, evaluate, ablate), rir.gpu.gpu_job_threads: 1 or 2 on a GPU box;
# Snakemake exports them as OMP_NUM_THREADS, which torch follows. `workflow.cores` is --cores (public).
THREADS = gpu_job_threads(workflow.cores if LOCAL_BOX else None, GPU_SLOTS,
                          local=LOCAL_BOX, recipe_threads=RESOLVED["recipe"].get("threads"))


def runtime(rule):
    """The `runtime` resource (minutes; SLURM's -t) of a run's `rule` job on attempt `attempt`
    (rir.timelimits). Evaluated only when Snakemake needs a job's resources, so the parse stays torch-free."""
    return lambda wildcards, attempt: rule_minutes(rule, ALL_RUNS[wildcards.run], SIZES, CLUSTER, attempt)


wildcard_constraints:
    run="[A-Za-z0-9_-]+",
    dataset="cifar10|cifar100",


def run_dir(run_id):
    return f"{RESULTS}/runs/{run_id}"


def prepared(wildcards):
    """The prepared arrays a run trains on."""
    dataset = ALL_RUNS[wildcards.run].dataset
    return [f"{DATA}/{dataset}/manifest.json", f"{DATA}/{dataset}/prepared.npz"]


def data_root(manifest):
    """The data root of a prepared dataset's manifest: <root>/<dataset>/manifest.json."""
    return os.path.dirname(os.path.dirname(manifest))


def state_dir(metrics):
    """Resumable training state of a run: beside results/<profile>/runs/, never a declared output."""
    run_folder = os.path.dirname(metrics)
    return os.path.join(os.path.dirname(os.path.dirname(run_folder)), "state", os.path.basename(run_folder))


def run_state(run_id):
    return state_dir(f"{run_dir(run_id)}/metrics.json")


def release_finished():
    """Delete the kept files of every run whose own files are all in place (rir/finished.py): they are kept
    only for the retry of a run's cluster job that failed after its training finished. Called where Snakemake
    was started, when it ends after running jobs, however it ends (the Snakefile's onsuccess and onerror)."""
    for run_id in ALL_RUNS:
        release(run_state(run_id), run_dir(run_id), RUN_FILES)


onstart:
    # A training due for more than its missing files (forced: `--forcerun`, `-F`; a changed input, parameter
    # or code) trains from the first step: a finished run's kept files, left by a job that failed for good or
    # an invocation that ended without its handlers, are discarded before any job. A retry of a failed job
    # within this invocation still restores (onstart runs once).
    try:
        if main_process(workflow):
            for run_id in due_for_more_than_missing_output(workflow, "train", "run"):
                discard(run_state(run_id))
    except UserError as err:
        refuse(err)
    # Refuse at once, before any job, rather than at the first run: runs on real CIFAR data would train on
    # the CPU of a box without a usable GPU although nobody asked for the CPU (rir.device says the same to a
    # lone `rir train`). Only when this box trains (not under a cluster executor) and a train job is due.
    # Not under --touch, which trains nothing (it records pulled files as up to date: README, "Sharing").
    try:
        checked = LOCAL_BOX and main_process(workflow) and not touching(workflow)
        due = due_wildcards(workflow, "train", "run") if checked else set()
    except UserError as err:
        refuse(err)
    if due:
        devices = {ALL_RUNS[run].train_options().get("device", "auto") for run in due}
        refusal = cpu_refusal(real_data=not SYNTHETIC, devices=devices, gpu_slots=GPU_SLOTS)
        if refusal:
            refuse(refusal)
