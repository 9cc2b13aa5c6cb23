"""Reruns that tell the truth, in both tools (DESIGN.md, "Reruns tell the truth"; README, "What reruns when").

Every journey runs the real Snakemake and DVC on the smoke profile, in a copy of a slice of it that DVC made
from scratch here (`sliced`), or of the session's finished smoke workspace (`snakemade`): an edit, a rerun,
and what ran, read from what the tools print and write. State belonging to one run as configured is
tests/test_train.py's; the commands and folders DVC's pipelines use are tests/test_config.py's.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from pipeline import (
    SMOKE_DVC,
    dvc_changed_stages,
    dvc_ran,
    fresh_copy,
    planned_jobs,
    sh,
    smoke_stage,
)

from rir.config import expand_runs, load_params
from rir.finished import finished_dir, keep
from rir.recipe import TrainConfig
from rir.stages import RUN_FILES, code_digest
from rir.train import _kept_for_another_run

pytestmark = pytest.mark.slow
GIT = ("git", "-c", "user.name=test", "-c", "user.email=test@localhost")
REPORT = smoke_stage("report")


def copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def edit(repo: Path, change) -> None:
    """params.yaml as a user edits it: loaded, changed, written back."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    change(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def commit_all(repo: Path, message: str) -> None:
    sh(repo, "git", "add", "-A")
    sh(repo, *GIT, "commit", "-qm", message, "--allow-empty")


def smoke_runs(repo: Path) -> dict:
    return expand_runs(load_params(repo / "params.yaml"), "smoke")


def lock_entry(repo: Path, lock: str, stage: str) -> dict:
    return yaml.safe_load((repo / lock).read_text())["stages"][stage]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- 2. DVC follows params.yaml ---------------------------------------------------------------------------


def test_an_edit_of_params_yaml_reruns_exactly_the_runs_whose_configuration_changed(sliced, tmp_path):
    """`recipe.epochs` enters the paper's runs only (the smoke profile sets its own): nothing of the smoke
    profile reruns. `recipe.momentum` enters every run: each smoke run is retrained, in both tools (in a
    workspace DVC made, of which Snakemake has no record of its own), with the new value, from the first
    step."""
    repo = copy(sliced, tmp_path / "repo")
    runs = smoke_runs(repo)

    edit(repo, lambda p: p["recipe"].update(epochs=80))
    assert planned_jobs(repo) == {}
    proc = sh(repo, "dvc", "repro", REPORT)
    assert dvc_ran(proc.stdout) == {"configs"}, proc.stdout[-3000:]

    edit(repo, lambda p: p["recipe"].update(momentum=0.8))
    sh(repo, "dvc", "repro", "configs")  # the guard alone: DVC's status then knows each run's configuration
    assert dvc_changed_stages(repo) == {smoke_stage(f"train@{r}") for r in runs}
    assert sorted(w.removeprefix("run=") for w in planned_jobs(repo)["train"]) == sorted(runs)

    run = next(r for r in runs if r.startswith("rir_18__"))
    before = json.loads((repo / f"results/smoke/runs/{run}/metrics.json").read_text())
    proc = sh(repo, "dvc", "repro", smoke_stage(f"evaluate@{run}"))
    assert dvc_ran(proc.stdout) == {smoke_stage(f"train@{run}"), smoke_stage(f"evaluate@{run}")}
    assert "resuming" not in proc.stdout and "epoch 1/2" in proc.stdout, proc.stdout[-3000:]
    assert json.loads((repo / f"results/smoke/runs/{run}/config.json").read_text())["momentum"] == 0.8
    assert json.loads((repo / f"results/smoke/runs/{run}/metrics.json").read_text()) != before


def test_dvc_exp_run_sets_a_key_trains_and_shows_it_beside_the_accuracy(sliced, tmp_path):
    """`dvc exp run -S` reruns what the key changes (no "cached - skipping run"); `dvc exp show` and
    `dvc params diff` name params.yaml's keys as columns (README's invocation), beside the test accuracy."""
    repo = copy(sliced, tmp_path / "repo")
    run = next(r for r in smoke_runs(repo) if r.startswith("rir_18__"))
    proc = sh(repo, "dvc", "exp", "run", "-S", "recipe.momentum=0.8", smoke_stage(f"evaluate@{run}"))
    assert smoke_stage(f"train@{run}") in dvc_ran(proc.stdout), proc.stdout[-3000:]
    assert "skipping run" not in proc.stdout + proc.stderr

    show = sh(repo, "dvc", "exp", "show", "--csv", "--drop", EXP_SHOW_DROP).stdout
    header, *rows = show.splitlines()
    columns = header.split(",")
    assert "recipe.momentum" in columns and "profiles.smoke.recipe.epochs" in columns, columns
    accuracy = f"results/metrics/smoke/{run}.json:test_accuracy"
    assert accuracy in columns and len(columns) < 200, columns
    assert not any("{" in row for row in rows)  # no configuration as a JSON blob
    values = {row.split(",")[columns.index("recipe.momentum")] for row in rows}
    assert {"0.8", "0.9"} <= values, rows
    diff = sh(repo, "dvc", "params", "diff").stdout
    assert re.search(r"params\.yaml\s+recipe\.momentum\s+0\.9\s+0\.8", diff), diff


# README's `dvc exp show` invocation: params.yaml's keys and each run's test accuracy, nothing else.
EXP_SHOW_DROP = r"^(?!recipe\.|profile|families\.|optional_families\.|.*:test_accuracy$)"


def test_an_edit_that_adds_runs_stops_the_repro_and_the_next_one_trains_them(snakemade, tmp_path):
    """A seed more for Table 5 adds two runs, which DVC's stages (resolved before anything ran) do not have:
    the guard rewrites the pipelines and stops the repro with one line, before any other stage; the next
    `dvc repro` trains exactly the two new runs, and neither tool has anything left to do."""
    repo = copy(snakemade, tmp_path / "repo")
    before = set(smoke_runs(repo))
    edit(repo, lambda p: p["profiles"]["smoke"]["families"]["table5"].update(seeds=[0, 1]))
    new = set(smoke_runs(repo)) - before
    assert len(new) == 2

    stopped = sh(repo, "dvc", "repro", REPORT, check=False)
    assert stopped.returncode != 0 and dvc_ran(stopped.stdout) == {"configs"}, stopped.stdout[-3000:]
    said = [line for line in stopped.stderr.splitlines() if line.startswith("rir dvc:")]
    assert len(said) == 1 and "run `dvc repro` again" in said[0], stopped.stderr
    assert all(f"{r}: cifar10" in (repo / SMOKE_DVC).read_text() for r in new)

    again = sh(repo, "dvc", "repro", REPORT)
    trained = {smoke_stage(f"{kind}@{r}") for r in new for kind in ("train", "evaluate")}
    assert dvc_ran(again.stdout) == {"configs", *trained, *map(smoke_stage, ("tables", "figures", "report"))}
    assert dvc_changed_stages(repo) == set()
    # Snakemake trains nothing; it redoes the aggregates, whose set of runs DVC changed behind its back.
    assert set(planned_jobs(repo)) <= {"tables", "figures", "report", "all"}


# --- 1, 3. A forced rerun trains again; dvc.lock records what ran ------------------------------------------


def test_a_forced_rerun_trains_from_the_first_step_to_the_same_accuracy_in_both_tools(sliced, tmp_path):
    """deterministic: true on the CPU: `dvc repro -f` and `snakemake --forcerun` train a finished run again
    (never "resuming" it) and get its accuracy again."""
    repo = copy(sliced, tmp_path / "repo")
    run = next(r for r in smoke_runs(repo) if r.startswith("rir_18__"))
    metrics = repo / f"results/smoke/runs/{run}/metrics.json"
    first = json.loads(metrics.read_text())
    proc = sh(repo, "dvc", "repro", "--force", "--single-item", smoke_stage(f"train@{run}"))
    assert "epoch 1/2" in proc.stdout and "resuming" not in proc.stdout, proc.stdout[-3000:]
    assert json.loads(metrics.read_text())["test_accuracy"] == first["test_accuracy"]
    metrics.write_text(json.dumps({**first, "test_accuracy": -1.0}))  # a stale number a rerun must replace
    # The run's files kept for a cluster job's retry (rir/finished.py), its own files gone, as a job that
    # failed for good after training leaves them: a forced rerun discards them when Snakemake starts, and
    # trains (a restore would bring back the stale number).
    state = repo / f"results/smoke/state/{run}"
    config = json.loads((metrics.parent / "config.json").read_text())
    provenance = {key: first[key] for key in ("data", "data_md5", "synthetic")}  # CifarArrays.provenance
    code = code_digest("train")
    record = {"config": config, "code": code, "data": provenance}
    assert _kept_for_another_run(record, TrainConfig.from_dict(config), code, provenance) is None
    keep(metrics.parent, state, RUN_FILES, record)
    for name in RUN_FILES:
        (metrics.parent / name).unlink()
    sh(repo, sys.executable, "-m", "snakemake", "--cores", "1", "--config", "profile=smoke", "--forcerun",
       "train", "--", str(metrics.relative_to(repo)))
    log = (repo / f"logs/smoke/train/{run}.log").read_text()
    assert "resuming" not in log and "restored" not in log and "epoch 1/2" in log, log[-3000:]
    assert json.loads(metrics.read_text())["test_accuracy"] == first["test_accuracy"]
    assert not finished_dir(state).exists()  # kept again by --keep-finished, and released at the end


def test_dvc_lock_records_the_configuration_snakemake_trained(sliced, tmp_path):
    """After an edit, Snakemake retrains and its onsuccess commits to DVC: dvc.lock holds the new value, each
    run's stage the hash of its new resolved configuration, and DVC has nothing to redo."""
    repo = copy(sliced, tmp_path / "repo")
    edit(repo, lambda p: p["recipe"].update(momentum=0.8))
    runs = smoke_runs(repo)
    # One run alone: Snakemake retrains it (the configuration it depends on changed, although Snakemake has
    # no record of its own in this workspace), and, the report's target not in its DAG, commits nothing: DVC
    # sees every run's configuration changed, the one Snakemake trained included.
    one = next(r for r in runs if r.startswith("rir_18__"))
    smk = (sys.executable, "-m", "snakemake", "--cores", "2", "--config", "profile=smoke")
    sh(repo, *smk, "--", f"results/smoke/runs/{one}/metrics.json")
    assert json.loads((repo / f"results/smoke/runs/{one}/config.json").read_text())["momentum"] == 0.8
    assert dvc_changed_stages(repo) >= {smoke_stage(f"train@{r}") for r in runs}
    sh(repo, *smk)
    guard = lock_entry(repo, "dvc.lock", "configs")
    assert guard["params"]["params.yaml"]["recipe"]["momentum"] == 0.8
    for run in runs:
        config = repo / f"results/smoke/configs/{run}.json"
        assert json.loads(config.read_text())["momentum"] == 0.8
        assert json.loads((repo / f"results/smoke/runs/{run}/config.json").read_text())["momentum"] == 0.8
        stage = lock_entry(repo, SMOKE_DVC.replace("dvc.yaml", "dvc.lock"), f"train@{run}")
        deps = {d["path"]: d["md5"] for d in stage["deps"]}
        assert deps[f"results/smoke/configs/{run}.json"] == md5(config)
    assert dvc_changed_stages(repo) == set()


# --- 4. Snakemake declares every input of what it builds ----------------------------------------------------


def test_both_tools_rerun_what_a_paper_value_or_the_training_code_feeds(sliced, tmp_path):
    """In a workspace DVC made (Snakemake has no record of its own there: a file it does not declare would
    change nothing for it)."""
    repo = copy(sliced, tmp_path / "repo")
    assert planned_jobs(repo) == {}
    reference = repo / "rir/reference/paper.yaml"
    reference.write_text(reference.read_text() + "# a paper value edited\n")
    assert set(planned_jobs(repo)) == {"tables", "figures", "report", "all"}
    assert dvc_changed_stages(repo) == set(map(smoke_stage, ("tables", "figures", "report")))  # and DVC
    shutil.copy(sliced / "rir/reference/paper.yaml", reference)
    train = repo / "rir/train.py"
    train.write_text(train.read_text() + "# the training code edited\n")
    jobs = planned_jobs(repo)
    assert sorted(w.removeprefix("run=") for w in jobs["train"]) == sorted(smoke_runs(repo))
    retrained = {s for s in dvc_changed_stages(repo) if "@" in s}
    assert retrained == {smoke_stage(f"train@{r}") for r in smoke_runs(repo)}


# --- 5. Both tools start from the same default -----------------------------------------------------------


def test_a_bare_dvc_repro_runs_snakemakes_default_target_and_no_optional_family(tmp_path):
    """The stages of the top dvc.yaml (a bare `dvc repro`) are the default profile's default target: its
    runs are exactly those `snakemake --cores all` trains, and no optional family's stage is among them."""
    repo = fresh_copy(tmp_path / "repo")
    listed = sh(repo, "dvc", "stage", "list").stdout
    stages = {line.split()[0] for line in listed.splitlines() if line.strip()}
    params = load_params(repo / "params.yaml")
    paper = expand_runs(params, "paper")
    assert {s.split("@", 1)[1] for s in stages if s.startswith("train@")} == set(paper)
    assert not any(s.startswith("workflow/") for s in stages)
    assert {s for s in stages if "@" not in s} == {"configs", "tables", "figures", "report"}
    proc = sh(repo, sys.executable, "-m", "snakemake", "--dry-run", "--forceall")
    trained = set(re.findall(r"^rule train:\n(?:    .*\n)*?    wildcards: run=(\S+)", proc.stdout,
                             flags=re.M))
    assert trained == set(paper)
    optional = expand_runs(params, "paper", optional=True)
    assert not {f"train@{r}" for r in optional if r not in paper} & stages


# --- 6. Sharing works ------------------------------------------------------------------------------------


def test_push_then_a_fresh_clone_pulls_and_neither_tool_has_anything_to_do(sliced, tmp_path):
    """README's sharing journey with a local directory remote: push, a fresh clone elsewhere, pull the
    profile's target; no error for the runs never made (the paper's), nothing to rerun in either tool once
    Snakemake has recorded the pulled files (`snakemake --touch`, which also writes the runs' configurations,
    not outputs DVC keeps), and the same numbers."""
    repo = copy(sliced, tmp_path / "repo")
    sh(repo, "dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    commit_all(repo, "results of the smoke profile")
    pushed = sh(repo, "dvc", "push")
    assert "ERROR" not in pushed.stdout + pushed.stderr
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    pulled = sh(clone, "dvc", "pull", "--with-deps", REPORT)
    assert "ERROR" not in pulled.stdout + pulled.stderr and "WARNING" not in pulled.stderr, pulled.stderr
    sh(clone, sys.executable, "-m", "snakemake", "--cores", "1", "--touch", "--forceall", "--config",
       "profile=smoke")
    assert planned_jobs(clone) == {}
    assert dvc_changed_stages(clone) == set()
    for table in sorted((repo / "results/smoke/tables").glob("*.csv")):
        assert (clone / "results/smoke/tables" / table.name).read_bytes() == table.read_bytes(), table.name
    report = "reports/smoke/index.html"
    assert (clone / report).read_bytes() == (repo / report).read_bytes()
    shown = sh(clone, "dvc", "metrics", "show")
    assert len([line for line in shown.stdout.splitlines() if line.startswith("results/metrics/smoke/")]) == \
        len(smoke_runs(clone))


# --- 7. DVC's views are readable -------------------------------------------------------------------------


def test_dvc_metrics_one_row_per_run_and_plots_that_compare_runs(sliced, tmp_path):
    """In a workspace that ran the smoke profile only: one row per run of four numbers, no warning and no
    row for the paper's runs; `dvc plots show` draws without an error, Figure 4's depth sweep and Table 3's
    models per epoch among its plots."""
    repo = copy(sliced, tmp_path / "repo")
    shown = sh(repo, "dvc", "metrics", "show")
    header, *rows = [line for line in shown.stdout.splitlines() if line.strip()]
    assert header.split() == ["Path", "test_accuracy", "test_error", "test_loss", "wall_seconds"]
    assert sorted(row.split()[0] for row in rows) == sorted(
        f"results/metrics/smoke/{r}.json" for r in smoke_runs(repo))
    assert all(len(row.split()) == 5 and "-" not in row.split()[1:] for row in rows), rows
    assert shown.stderr.strip() == "", shown.stderr
    plots = sh(repo, "dvc", "plots", "show", "--json")
    assert plots.stderr.strip() == "", plots.stderr
    data = json.loads(plots.stdout)
    assert not data.get("errors"), data.get("errors")
    drawn = {Path(name).name for name in data["data"]}
    assert {"figure4.png", "curves_table3.png"} <= drawn, drawn
