# Shared names: the chosen profile, its folders, and the runs params.yaml expands to.
import os

from rir.config import expand_runs, resolve_profile

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
RUN_FILES = ("metrics.json", "history.csv", "config.json", "env.json", "model.pt")
THREADS = RESOLVED["recipe"].get("threads", 4)  # CPU threads of one training job (data work, not the GPU)


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
