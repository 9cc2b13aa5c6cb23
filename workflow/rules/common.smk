# Shared names: the chosen profile, its folders, the runs params.yaml expands to and what each run is (its
# stamp, rir.stages); the GPU jobs' threads and the time limits of the runs' cluster jobs.
import os
import sys

from snakemake.exceptions import WorkflowError

from rir.config import data_settings, expand_runs, reported_runs, resolve_profile, user_optional_families
from rir.errors import UserError
from rir.gpu import cpu_refusal, gpu_job_threads, gpu_slots
from rir.catalog import known_defaults
from rir.stages import RUN_FILES, code_files, data_stamp, digest, run_stamp, write_stamp
from rir.timelimits import cluster_settings, data_sizes, rule_minutes
from rir.timelimits import warning as cluster_warning


def refuse(err):
    """A user's mistake found while parsing: one line, exit 2."""
    print(f"snakemake: error: {err}", file=sys.stderr)
    sys.exit(2)


PROFILE = config.get("profile", "paper")
try:
    RESOLVED = resolve_profile(config, PROFILE)
    RUNS = expand_runs(config, PROFILE)
    GRIDSEARCH_RUNS = expand_runs(config, PROFILE, optional=True, family="gridsearch")
    READINGS_RUNS = expand_runs(config, PROFILE, optional=True, family="readings")
    # Every other optional family (a user's) is a target of its own name (Snakefile); the tables take its
    # runs once one of its own has run (rir.config.reported_runs).
    USER_FAMILIES = user_optional_families(config, PROFILE)
    REPORTED = reported_runs(config, PROFILE, f"results/{PROFILE}")
    ALL_RUNS = {**RUNS, **expand_runs(config, PROFILE, optional=True)}
    DATASETS = sorted({run.dataset for run in ALL_RUNS.values()})
    # What each dataset and each run is (rir.stages): the settings, the configuration and the code it runs.
    DATA_STAMPS = {dataset: data_stamp(data_settings(RESOLVED, dataset)) for dataset in DATASETS}
    STAMPS = {run_id: run_stamp(run.train_options(), {**known_defaults(run.model), **run.model_overrides},
                                DATA_STAMPS[run.dataset])
              for run_id, run in ALL_RUNS.items()}
    CLUSTER = cluster_settings(config)  # the time limits' settings (workflow/profiles/slurm/cluster.yaml)
except UserError as err:
    refuse(err)
ABLATED = sorted(run_id for run_id, run in RUNS.items() if run.ablate)
SYNTHETIC = RESOLVED.get("data", "real") == "synthetic"

DATA = f"data/{PROFILE}"  # outputs of different profiles never mix
RESULTS = f"results/{PROFILE}"
REPORTS = f"reports/{PROFILE}"
LOGS = f"logs/{PROFILE}"
GRIDSEARCH_SUMMARY = f"{RESULTS}/gridsearch"  # rir.report.gridsearch.SUMMARY_FOLDER
READINGS_SUMMARY = f"{RESULTS}/readings"  # rir.report.readings.SUMMARY_FOLDER
# The inputs of the quick steps (evaluation, ablation, the report): the rir modules each runs, paper.yaml and
# the template among the report's (rir.stages.code_files). Training depends on its stamp instead.
CODE = {kind: code_files(kind) for kind in ("evaluate", "ablate", "report")}


def stamp(run_id):
    """A run's stamp file, named after what the run is (rir.stages): missing when anything the run uses
    changed, so the run trains again; present otherwise, whichever tool put it there with the run's files."""
    return f"{RESULTS}/stamps/{run_id}.{digest(STAMPS[run_id])}.json"


def data_stamp_file(dataset):
    """The same for a prepared dataset: its settings and the code that synthesizes and prepares it."""
    return f"{DATA}/stamps/{dataset}.{digest(DATA_STAMPS[dataset])}.json"


# Only the SLURM profile (its configfile) or a --config names `cluster` settings: the runs' jobs are priced.
WARNING = cluster_warning(CLUSTER) if "cluster" in config else None
if WARNING:
    print(WARNING, file=sys.stderr)
# GPU slots on this box: the GPUs in CUDA_VISIBLE_DEVICES or nvidia-smi's x $RIR_RUNS_PER_GPU (rir.gpu;
# UserError: a malformed setting). Each GPU job reserves cores // slots cores (rir.gpu.gpu_job_threads), so
# `--cores all` starts as many GPU jobs as there are slots and every GPU is busy without flags;
# `--resources gpu=N` still caps them.
# Snakemake exports the threads as OMP_NUM_THREADS, which torch follows. `workflow.cores` is --cores.
try:
    GPU_SLOTS = gpu_slots()
except UserError as err:
    refuse(err)
try:
    CORES = workflow.cores
except WorkflowError:  # a cluster executor without --cores: each job gets its own node's cores
    CORES = None
THREADS = gpu_job_threads(CORES, GPU_SLOTS, recipe_threads=RESOLVED["recipe"].get("threads"))
# Real CIFAR on a box without a usable GPU, nobody having asked for the CPU: said once here, where Snakemake
# starts (not under the SLURM profile, whose jobs get GPUs); each training then stops at once with the same
# line (rir.device), before any epoch.
if "cluster" not in config:
    CPU_REFUSAL = cpu_refusal(real_data=not SYNTHETIC, gpu_slots=GPU_SLOTS,
                              devices={run.train_options().get("device", "auto") for run in RUNS.values()})
    if CPU_REFUSAL:
        print(f"warning: {CPU_REFUSAL}", file=sys.stderr)
SIZES = data_sizes(RESOLVED)


def runtime(rule):
    """The `runtime` resource (minutes; SLURM's -t) of a run's `rule` job on attempt `attempt`
    (rir.timelimits). Evaluated only when Snakemake needs a job's resources, so the parse stays torch-free."""
    return lambda wildcards, attempt: rule_minutes(rule, ALL_RUNS[wildcards.run], SIZES, CLUSTER, attempt)


wildcard_constraints:
    run="[A-Za-z0-9_-]+",
    dataset="cifar10|cifar100",
    digest="[0-9a-f]{16}",


def prepared(wildcards):
    """The prepared arrays a run uses. ancient: their identity is in the run's stamp, and a restored copy
    (dvc checkout) newer than the run's files is the same data; a fetch that must run still reruns the run."""
    dataset = ALL_RUNS[wildcards.run].dataset
    return [ancient(f"{DATA}/{dataset}/manifest.json"), ancient(f"{DATA}/{dataset}/prepared.npz")]


def data_root(manifest):
    """The data root of a prepared dataset's manifest: <root>/<dataset>/manifest.json."""
    return os.path.dirname(os.path.dirname(manifest))


def state_dir(metrics):
    """Resumable training state of a run: beside results/<profile>/runs/, never a declared output."""
    run_folder = os.path.dirname(metrics)
    return os.path.join(os.path.dirname(os.path.dirname(run_folder)), "state", os.path.basename(run_folder))


rule stamp:
    # What a run is, as a file named after its digest (rir.stages.run_stamp); the other stamps of the run go.
    output:
        f"{RESULTS}/stamps/{{run}}.{{digest}}.json",
    localrule: True
    run:
        write_stamp(output[0], STAMPS[wildcards.run])


rule data_stamp:
    output:
        f"{DATA}/stamps/{{dataset}}.{{digest}}.json",
    localrule: True
    run:
        write_stamp(output[0], DATA_STAMPS[wildcards.dataset])
