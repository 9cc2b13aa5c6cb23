# The reproduction of "Resnet in Resnet" (arXiv:1603.08029) as one DAG:
# fetch -> prepare -> train (one job per run) -> evaluate -> ablate -> tables -> figures -> report.
# Every rule is a thin call of a `rir` command; all logic lives in the `rir` package. The runs come from
# params.yaml through rir.config.expand_runs.
#   snakemake --cores all                          the paper profile (real CIFAR; a GPU box)
#   snakemake --cores all --config profile=smoke   synthetic data, tiny nets: the whole DAG on a laptop
# A run trains again exactly when what it is changes (its stamp, rir.stages): the profiles set Snakemake's
# rerun triggers to file times alone, and every input of a training is `ancient`, so files that DVC or git
# put back never retrain a run (docs/workflow.md).
import atexit
import os
import sys

from snakemake.utils import min_version

from rir.config import validate_params
from rir.errors import UserError

min_version("9.0.1")  # pyproject.toml admits every 9.x from this one, the oldest tested


configfile: "params.yaml"


# The same schema check as `rir` (workflow/schemas/params.schema.json), with rir's one-line message and exit
# code 2. The `cluster` settings are not params.yaml's (workflow/profiles/slurm/cluster.yaml): rir.timelimits
# checks them.
try:
    validate_params({key: value for key, value in config.items() if key != "cluster"}, source="params.yaml")
except UserError as err:
    print(f"snakemake: error: {err}", file=sys.stderr)
    sys.exit(2)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


# Under a cluster executor (workflow/profiles/slurm) these run where Snakemake runs, the login node, not as
# cluster jobs: `fetch` downloads CIFAR, and compute nodes often have no network; the others are seconds of
# CPU that would each wait their turn in the scheduler. Training, evaluation and ablation go to the GPUs.
localrules:
    synth,
    fetch,
    tables,
    figures,
    gridsearch_summary,
    readings_summary,
    report,


# Each target asks for its runs' stamps too: a stamp file that is missing (the run changed) is then made, and
# the training that depends on it runs again. Snakemake does not remake a missing file that no target asks
# for while the files after it exist, so a target that names a run's files alone takes them as they are.
rule all:
    default_target: True
    input:
        f"{REPORTS}/index.html",
        f"{RESULTS}/metrics.json",
        [stamp(run_id) for run_id in RUNS],


rule gridsearch:
    # Optional: the paper's hyperparameter search on a held-out 45k/5k split (params.yaml optional_families),
    # ranked into results/<profile>/gridsearch/ (rule gridsearch_summary); the report then shows it.
    input:
        GRIDSEARCH_SUMMARY,
        [stamp(run_id) for run_id in GRIDSEARCH_RUNS],


rule readings:
    # Optional: every public reading of the wide RiR, trained side by side (params.yaml optional_families),
    # summarized into results/<profile>/readings/ (rule readings_summary); the report then shows the table.
    input:
        READINGS_SUMMARY,
        [stamp(run_id) for run_id in READINGS_RUNS],


# Every other optional family (a user's, e.g. `preact`) is a target of its own name: `snakemake --cores all
# preact` trains and evaluates its runs, then redoes the tables, figures and report with its table (the same
# files the rules above would make now that it has run, so the default target finds them up to date).
for _family, _runs in USER_FAMILIES.items():
    rule:
        name:
            _family
        input:
            [stamp(run_id) for run_id in _runs],
            expand(f"{RESULTS}/evaluations/{{run}}.json", run=sorted(_runs)),
            f"{REPORTS}/index.html",
        params:
            profile=PROFILE,
        log:
            f"{LOGS}/report/{_family}.log",
        localrule: True
        shell:
            "rir report all --params params.yaml --profile {params.profile} > {log} 2>&1"


onsuccess:
    # DVC records what Snakemake made (rir.dvcgen.record): the profile's stage, written on its first run
    # here, is committed when its target, the report, is up to date, so `dvc status` is clean and `dvc
    # repro` runs nothing. Skipped outside a DVC repository.
    shell(f"rir dvc --record {PROFILE} || echo 'warning: DVC did not record the results (rir dvc --record)'")
    # The console's last line: where the report is (at exit, after Snakemake's own closing lines).
    if os.path.exists(f"{REPORTS}/index.html"):
        atexit.register(print, f"report: {REPORTS}/index.html")
