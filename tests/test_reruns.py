"""One truth across Snakemake and DVC: each run trains at most once, and only when something it uses changed.

Every journey runs the real Snakemake and DVC on a slice of the smoke profile with short runs, in a copy of a
workspace that DVC made from scratch (`sliced`: `dvc repro` of the smoke pipeline) or that Snakemake made
(`sliced_by_snakemake`): an edit, a rerun, and what ran, read from what the tools print and write. Snakemake
decides what trains (each run's stamp, rir.stages); DVC runs it and versions what it made (rir.dvcgen).
The commands run the copy's own rir package (tests/pipeline.py), so an edit of the copy's code is seen.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from pipeline import (
    SMOKE_DVC,
    SMOKE_STAGE,
    dvc_changed,
    dvc_ran,
    fresh_copy,
    planned_jobs,
    sh,
    snakemake,
    trained,
)

from rir.config import expand_runs, load_params

pytestmark = pytest.mark.slow
GIT = ("git", "-c", "user.name=test", "-c", "user.email=test@localhost")


def copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def edit(repo: Path, change) -> None:
    """params.yaml as a user edits it: loaded, changed, written back."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    change(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def commit_all(repo: Path, message: str) -> str:
    sh(repo, "git", "add", "-A")
    sh(repo, *GIT, "commit", "-qm", message, "--allow-empty")
    return sh(repo, "git", "rev-parse", "HEAD").stdout.strip()


def smoke_runs(repo: Path) -> list[str]:
    return sorted(expand_runs(load_params(repo / "params.yaml"), "smoke"))


def planned_training(repo: Path) -> list[str]:
    return sorted(w.removeprefix("run=") for w in planned_jobs(repo).get("train", []))


def output(proc) -> str:
    return proc.stdout + proc.stderr


def momentum_of(repo: Path, run: str) -> float:
    return json.loads((repo / f"results/smoke/runs/{run}/config.json").read_text())["momentum"]


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


# --- 1. Each run trains at most once across the tools ---------------------------------------------------


def test_a_value_edit_trained_by_dvc_is_never_trained_again_by_snakemake(sliced_by_snakemake, tmp_path):
    """From a workspace Snakemake made and nobody committed: `dvc repro` of the smoke pipeline takes up an
    edit that enters every run (it runs Snakemake, which retrains them); then `snakemake -n` plans nothing,
    and DVC has nothing to redo. An edit that enters no smoke run (the paper's epochs) retrains nothing in
    either tool. That state saved as an experiment, another trained, and the first applied again: its runs
    come back and Snakemake trains none (DVC stages the .dvc files it writes, `core.autostage`, so an
    experiment carries them although git never saw them)."""
    repo = copy(sliced_by_snakemake, tmp_path / "repo")
    sh(repo, "git", "reset", "-q", "--mixed", "HEAD~1")  # the fixture's commit undone: files never committed
    runs = smoke_runs(repo)
    edit(repo, lambda p: p["recipe"].update(epochs=80))  # the smoke profile sets its own
    assert planned_training(repo) == []
    proc = sh(repo, "dvc", "repro", SMOKE_DVC)
    assert dvc_ran(output(proc)) == {SMOKE_STAGE} and trained(output(proc)) == [], output(proc)[-3000:]

    edit(repo, lambda p: p["recipe"].update(momentum=0.8))
    proc = sh(repo, "dvc", "repro", SMOKE_DVC)
    assert trained(output(proc)) == runs, output(proc)[-3000:]
    assert all(momentum_of(repo, run) == 0.8 for run in runs)
    assert planned_jobs(repo) == {}
    assert not dvc_changed(repo)

    sh(repo, "dvc", "exp", "save", "-n", "m08")
    proc = sh(repo, "dvc", "exp", "run", "-n", "m07", "-S", "recipe.momentum=0.7", SMOKE_DVC)
    assert trained(output(proc)) == runs, output(proc)[-3000:]
    sh(repo, "dvc", "exp", "apply", "m08")
    assert all(momentum_of(repo, run) == 0.8 for run in runs)
    assert planned_training(repo) == []


def test_a_value_edit_trained_by_snakemake_is_recorded_in_dvc_and_survives_git_and_dvc_checkout(sliced,
                                                                                               tmp_path):
    """From a workspace DVC made: Snakemake takes up the edit, and its end records the results in DVC:
    `dvc status`, bare or of the stage, is clean and `dvc repro` runs nothing. Back to the commit before
    (`git checkout` and `dvc checkout`) and forward again, neither tool trains anything: each run's files come
    back with its stamp."""
    repo = copy(sliced, tmp_path / "repo")
    before = commit_all(repo, "before")
    runs = smoke_runs(repo)
    edit(repo, lambda p: p["recipe"].update(momentum=0.8))
    proc = snakemake(repo)
    assert trained(output(proc)) == runs
    assert not dvc_changed(repo), sh(repo, "dvc", "status", SMOKE_DVC).stdout
    assert output(sh(repo, "dvc", "status")).strip() == "Data and pipelines are up to date."
    lock = yaml.safe_load((repo / SMOKE_DVC.replace("dvc.yaml", "dvc.lock")).read_text())
    assert lock["stages"]["smoke"]["params"]["params.yaml"]["recipe"]["momentum"] == 0.8
    again = sh(repo, "dvc", "repro", SMOKE_DVC)
    assert dvc_ran(output(again)) == set(), output(again)[-2000:]
    after = commit_all(repo, "momentum 0.8")

    for rev, momentum in ((before, 0.9), (after, 0.8)):
        sh(repo, "git", "checkout", "-q", rev)
        sh(repo, "dvc", "checkout")
        assert all(momentum_of(repo, run) == momentum for run in runs)
        assert planned_training(repo) == [], rev
        assert not dvc_changed(repo)


def test_a_dry_run_writes_nothing_and_a_forced_rerun_trains_from_the_first_step(sliced_by_snakemake,
                                                                                 tmp_path):
    """`snakemake -n` after an edit writes no file (the stamps it plans are made by jobs); `--forcerun`
    trains a finished run again from the first step (never "resuming" it), to the same accuracy
    (deterministic: true on the CPU)."""
    repo = copy(sliced_by_snakemake, tmp_path / "repo")
    edit(repo, lambda p: p["recipe"].update(momentum=0.8))

    def files():
        return {p: p.stat().st_mtime_ns for p in repo.rglob("*")
                if p.is_file() and ".snakemake" not in p.parts}

    seen = files()
    assert planned_training(repo) == smoke_runs(repo)
    assert files() == seen

    edit(repo, lambda p: p["recipe"].update(momentum=0.9))
    run = next(r for r in smoke_runs(repo) if r.startswith("rir_18__"))
    metrics = repo / f"results/smoke/runs/{run}/metrics.json"
    first = json.loads(metrics.read_text())
    snakemake(repo, "--forcerun", "train", "--", str(metrics.relative_to(repo)))
    log = (repo / f"logs/smoke/train/{run}.log").read_text()
    assert "resuming" not in log and "epoch 1/2" in log, log[-3000:]
    assert json.loads(metrics.read_text())["test_accuracy"] == first["test_accuracy"]


# --- 2. A run reruns only when code it executes changes ----------------------------------------------------


NEW_MODEL = '''"""A user's model: ResNet-18 under another name, in a file of its own."""

from rir.models import register_model
from rir.models.resnet import CNN, RESIDUAL, net


@register_model(label="my ResNet-18", options={**CNN, **RESIDUAL})
def my_resnet_18(num_classes, **o):
    return net(num_classes, resnet_init=False, **o)
'''


def test_a_comment_retrains_nothing_and_one_models_code_retrains_its_runs_alone(sliced_by_snakemake,
                                                                                 tmp_path):
    """The README's "What reruns when", row by row, in both tools: a comment and a docstring retrain
    nothing (DVC sees its code changed and runs Snakemake, which trains nothing); a change to ALL-CNN-C's
    code retrains its runs alone; a new model file retrains nothing; a change to the training loop would
    retrain every run."""
    repo = copy(sliced_by_snakemake, tmp_path / "repo")
    runs = smoke_runs(repo)
    all_cnn = repo / "rir/models/all_cnn.py"
    append(all_cnn, "\n# a comment\n\n\n")
    append(repo / "rir/train.py", "\n# the training loop, commented\n")
    source = all_cnn.read_text()
    docstring = '"""ALL-CNN-C (Springenberg et al. 2014)'
    assert docstring in source
    all_cnn.write_text(source.replace(docstring, '"""ALL-CNN-C (Springenberg et al., ICLR 2015 workshop)'))
    assert planned_training(repo) == []
    proc = sh(repo, "dvc", "repro", SMOKE_DVC)
    assert dvc_ran(output(proc)) == {SMOKE_STAGE} and trained(output(proc)) == [], output(proc)[-3000:]

    (repo / "rir/models/my_resnet.py").write_text(NEW_MODEL)
    assert planned_training(repo) == []

    all_cnn.write_text(all_cnn.read_text().replace("            n_in = n_out\n",
                                                   "            n_in = int(n_out)\n"))
    ours = [r for r in runs if r.startswith("all_cnn_c")]
    assert ours and planned_training(repo) == ours
    proc = sh(repo, "dvc", "repro", SMOKE_DVC)
    assert trained(output(proc)) == ours, output(proc)[-3000:]
    assert planned_jobs(repo) == {} and not dvc_changed(repo)

    forced = sh(repo, "dvc", "repro", "--force", SMOKE_DVC)  # DVC forced: Snakemake still trains nothing
    assert dvc_ran(output(forced)) == {SMOKE_STAGE} and trained(output(forced)) == [], output(forced)[-2000:]
    append(repo / "rir/reference/paper.yaml", "# a paper value edited\n")
    assert set(planned_jobs(repo)) == {"tables", "figures", "report", "all"}

    train = repo / "rir/train.py"
    train.write_text(train.read_text().replace("    started = time.perf_counter()\n",
                                               "    started = time.perf_counter() + 0.0\n", 1))
    assert planned_training(repo) == runs


# --- 3. Experiments compare ------------------------------------------------------------------------------


def exp_table(repo: Path) -> tuple[list[str], list[dict[str, str]]]:
    """`dvc exp show --csv`, as (columns, rows)."""
    proc = sh(repo, "dvc", "exp", "show", "--csv")
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    return rows[0], [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_experiments_show_their_numbers_diff_and_apply_without_training_again(sliced, tmp_path):
    """`dvc exp run -S` trains what the key changes; `dvc exp show` has, without flags, each experiment's
    and the baseline's params and each run's test accuracy as a number; `dvc metrics diff` and `dvc plots
    diff` compare two experiments; `dvc exp apply` brings an experiment's runs back and Snakemake trains
    none of them."""
    repo = copy(sliced, tmp_path / "repo")
    runs = smoke_runs(repo)
    proc = sh(repo, "dvc", "exp", "run", "-n", "fast", "-S", "recipe.momentum=0.8", SMOKE_DVC)
    assert trained(output(proc)) == runs, output(proc)[-3000:]

    columns, rows = exp_table(repo)
    assert len(columns) <= 100, len(columns)
    assert {"recipe.momentum", *runs} <= set(columns)
    named = {row["Experiment"]: row for row in rows if row["Experiment"]}
    assert "fast" in named, rows
    baseline = next(row for row in rows if row["typ"] == "baseline" and row["rev"] != "workspace")
    for row, momentum in ((named["fast"], "0.8"), (baseline, "0.9")):
        assert row["recipe.momentum"] == momentum
        assert all(0 <= float(row[run]) <= 100 for run in runs), row

    diff = sh(repo, "dvc", "metrics", "diff", "HEAD", "fast")
    assert runs[0] in diff.stdout, diff.stdout
    plots = json.loads(sh(repo, "dvc", "plots", "diff", "--json", "HEAD", "fast").stdout)
    assert not plots.get("errors"), plots["errors"]
    drawn = {Path(name).name: {r for image in images for r in image["revisions"]}
             for name, images in plots["data"].items()}
    assert drawn["figure4.png"] == drawn["curves_table3.png"] == {"HEAD", "fast"}, drawn

    applied = sh(repo, "dvc", "exp", "apply", "fast")
    assert "paper" not in output(applied) and "laptop" not in output(applied), output(applied)
    assert all(momentum_of(repo, run) == 0.8 for run in runs)
    assert planned_training(repo) == []


def test_temp_and_queued_experiments_take_up_an_edit_that_adds_runs(sliced, tmp_path):
    """An edit that adds a run changes no DVC stage (the pipeline lists no runs), so `dvc exp run --temp`
    and `--queue` take it up: each trains the new run alone, in a copy of the workspace that DVC fills from
    its cache, and `dvc exp show` has its accuracy."""
    repo = copy(sliced, tmp_path / "repo")
    runs = smoke_runs(repo)
    proc = sh(repo, "dvc", "exp", "run", "--temp", "-n", "seed1", "-S",
              "profiles.smoke.families.table5.seeds=[0,1]", SMOKE_DVC)
    new = "all_cnn_c_resnet_init__cifar10__s1"
    assert new not in runs and trained(output(proc)) == [new], output(proc)[-3000:]
    sh(repo, "dvc", "exp", "run", "--queue", "-n", "depth3", "-S",
       "profiles.smoke.families.figure4.grid.layers_per_block=[2,3]", SMOKE_DVC)
    proc = sh(repo, "dvc", "exp", "run", "--run-all")
    deeper = "rir_18__layers_per_block-3__cifar10__s0"
    _, rows = exp_table(repo)
    named = {row["Experiment"]: row for row in rows if row["Experiment"]}
    assert float(named["seed1"][new]) >= 0, named["seed1"]
    assert float(named["depth3"][deeper]) >= 0, named["depth3"]
    logs = sh(repo, "dvc", "queue", "logs", "depth3").stdout
    assert trained(logs) == sorted([deeper, "resnet_18__layers_per_block-3__cifar10__s0"]), logs[-3000:]


# --- 4. Bare DVC commands work where only some profiles ran ------------------------------------------------


def test_bare_dvc_commands_and_a_fresh_clone_that_pulls(sliced_by_snakemake, tmp_path):
    """In a workspace where only the smoke profile ran: bare `dvc status` is clean, and `dvc checkout`, `dvc
    push` and `dvc pull` exit 0 in a screenful and say nothing of the profiles never run. A fresh
    clone pulls and neither tool has anything to do."""
    repo = copy(sliced_by_snakemake, tmp_path / "repo")
    sh(repo, "dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    commit_all(repo, "a remote")
    status = sh(repo, "dvc", "status")
    assert output(status).strip() == "Data and pipelines are up to date.", output(status)
    for command in (("dvc", "checkout"), ("dvc", "push"), ("dvc", "pull")):
        proc = sh(repo, *command)
        said = output(proc)
        assert len(said.splitlines()) <= 24 and "paper" not in said and "laptop" not in said, (command, said)

    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    pulled = sh(clone, "dvc", "pull")
    assert "ERROR" not in output(pulled) and "paper" not in output(pulled), output(pulled)
    assert not dvc_changed(clone)
    # Pulled files have new times in no order: nothing is trained or evaluated again (their stamps came
    # with them), at most the tables and the report are redone, which compare file times (seconds).
    assert set(planned_jobs(clone)) <= {"tables", "figures", "report", "all"}
    report = "reports/smoke/index.html"
    assert (clone / report).read_bytes() == (repo / report).read_bytes()


def test_a_fresh_clone_has_no_stage_until_a_profile_is_used(tmp_path):
    """A fresh clone's dvc.yaml holds no stage, so bare `dvc status` is clean (a stage of every profile would
    be "changed" until it ran); `rir dvc smoke` writes the smoke profile's pipeline, the start from DVC, and
    bare `dvc status` then names it alone."""
    repo = fresh_copy(tmp_path / "repo")
    assert yaml.safe_load((repo / "dvc.yaml").read_text()) == {"stages": {}}
    assert not (repo / "workflow/dvc").exists()
    assert "up to date" in sh(repo, sys.executable, "-m", "rir", "dvc", "--check").stdout
    assert "no data or pipelines" in sh(repo, "dvc", "status").stdout
    sh(repo, sys.executable, "-m", "rir", "dvc", "smoke")
    listed = sh(repo, "dvc", "stage", "list", "--all").stdout
    assert [line.split()[0] for line in listed.splitlines() if line.strip()] == [SMOKE_STAGE], listed
    status = sh(repo, "dvc", "status").stdout
    assert status.startswith(f"{SMOKE_STAGE}:") and "paper" not in status and "laptop" not in status, status
