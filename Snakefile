# The reproduction of "Resnet in Resnet" (arXiv:1603.08029) as one DAG:
# fetch -> prepare -> train (one job per run) -> evaluate -> ablate -> tables -> figures -> report.
# Every rule is a thin call of a `rir` command; all logic lives in the `rir` package. The runs come from
# params.yaml through rir.config.expand_runs, the same expansion `rir dvc` writes into dvc.yaml.
#   snakemake --cores all                          the paper profile (real CIFAR; a GPU box)
#   snakemake --cores all --config profile=smoke   synthetic data, tiny nets: the whole DAG on a laptop
import os
import shutil
import sys

from snakemake.utils import min_version

from rir.config import read_yaml, validate_params
from rir.dvcgen import stage_address
from rir.errors import UserError
from rir.snakemake_internals import rules_in_dag

# pyproject.toml admits the Snakemake releases the tests ran (rir.snakemake_internals.TESTED).
min_version("9.27.1")


configfile: "params.yaml"


# The same schema check as `rir` (workflow/schemas/params.schema.json), with rir's one-line message and exit
# code 2: snakemake.utils.validate printed the whole schema (dozens of lines) around the key at fault. The
# `cluster` settings are not params.yaml's (workflow/profiles/slurm/cluster.yaml): rir.timelimits checks them.
try:
    validate_params({key: value for key, value in config.items() if key != "cluster"}, source="params.yaml")
except UserError as err:
    print(f"snakemake: error: {err}", file=sys.stderr)
    sys.exit(2)


# `gpu` is counted per submitted job, not across all of them, under a cluster executor: each group job (one
# run: train, evaluate, ablate, grouped by workflow/profiles/slurm) gets at most the profile's `resources:
# gpu=1`, and Snakemake runs its evaluation and ablation one after the other on that GPU instead of asking for
# two. On a box (Snakemake's own executor) every scope is counted globally, as before: the GPU slots.
resource_scopes:
    gpu="local",


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


rule all:
    default_target: True
    input:
        f"{REPORTS}/index.html",


rule gridsearch:
    # Optional: the paper's hyperparameter search on a held-out 45k/5k split (params.yaml optional_families),
    # ranked into results/<profile>/gridsearch/ (rule gridsearch_summary); the report then shows it.
    input:
        GRIDSEARCH_SUMMARY,


rule readings:
    # Optional: every public reading of the wide RiR, trained side by side (params.yaml optional_families),
    # summarized into results/<profile>/readings/ (rule readings_summary); the report then shows the table.
    input:
        READINGS_SUMMARY,


onsuccess:
    # Record what Snakemake made in DVC's lock and cache, so `dvc repro` finds nothing to redo (DESIGN.md: a
    # run finished by one tool is not redone by the other), and so that dvc.lock records what ran: only the
    # targets whose whole DAG this invocation covered (the report; the grid search's and the readings'
    # summaries), since then every job upstream is up to date by Snakemake's rules, which declare the same
    # code, data and configuration as DVC's stages. `rir dvc` first writes DVC's pipelines and the runs'
    # configurations from params.yaml as it is (the guard stage's work), so the commit stamps the
    # configuration that trained. --no-relink: relinking rewrites the outputs, and their new mtimes would
    # make Snakemake rerun jobs. Skipped outside a DVC repo. Snakemake runs this only when a job ran.
    release_finished()  # the runs' kept files (common.smk): all in place now
    try:
        in_dag = rules_in_dag(workflow)
    except UserError as err:
        refuse(err)
    on_file = read_yaml("params.yaml", "params file")  # DVC's top dvc.yaml is the profile it names
    stages = [stage_address(on_file, PROFILE, stage, family)
              for rule, stage, family in (("report", "report", None), ("gridsearch_summary", "gridsearch",
                                          "gridsearch"), ("readings_summary", "readings", "readings"))
              if rule in in_dag]
    if os.path.isdir(".dvc") and shutil.which("dvc") and stages:
        shell(f"rir dvc > /dev/null && dvc commit --force --quiet --no-relink --with-deps {' '.join(stages)}"
              " || echo 'warning: dvc commit failed'")


onerror:
    # A failed run keeps its files for the next invocation; the others' are released (common.smk).
    release_finished()
