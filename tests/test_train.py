"""Training: the paper's recipe as defaults, strict options, and runs that learn, survive SIGKILL, SIGTERM and
corrupt checkpoints bit-exactly, refuse bad input in one line, and report divergence.

The end-to-end tests run the real `rir` command in subprocesses (a kill must hit a real process) on synthetic
CIFAR-10 (512 training, 256 test images) with a ResNet of width 8, one thread, deterministic mode.
"""

import csv
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from faults import FAULT_ENV, FAULT_FLAG_ENV, FAULT_RUN_ENV, RIR

from rir.cli import main
from rir.errors import UserError
from rir.stages import run_code_digest
from rir.train import EXIT_DIVERGED, EXIT_PREEMPTED, TrainConfig, _not_resumable

N_TRAIN, N_TEST, BATCH = 512, 256, 64  # 8 steps per epoch
TINY = ["--model", "resnet_18", "--override", "width=8", "--batch-size", str(BATCH), "--lr", "0.05",
        "--device", "cpu", "--threads", "1", "--deterministic", "--epochs", "3"]
TIMINGS = {"seconds", "images_per_s", "wall_seconds", "train_seconds", "peak_memory_bytes"}


def rir(*args, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, FAULT_FLAG_ENV, FAULT_RUN_ENV)}
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run([*RIR, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def data_root(synthetic_data):
    return synthetic_data("cifar10", N_TRAIN, N_TEST, 0)


def train_tiny(data_root, out, fault=None, *extra):
    return rir("train", *TINY, "--data-root", data_root, "--out", out, *extra, fault=fault)


def results(run: Path) -> tuple[dict, list[dict], dict]:
    """Weights, history and metrics of a run, without the wall-clock measurements."""
    weights = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    with open(run / "history.csv") as f:
        history = [{k: v for k, v in row.items() if k not in TIMINGS} for row in csv.DictReader(f)]
    metrics = {k: v for k, v in json.loads((run / "metrics.json").read_text()).items() if k not in TIMINGS}
    return weights, history, metrics


def assert_same_run(a: Path, b: Path) -> None:
    wa, ha, ma = results(a)
    wb, hb, mb = results(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{key} differs"
    assert ha == hb and ma == mb


@pytest.fixture(scope="module")
def reference_run(data_root, tmp_path_factory):
    """An uninterrupted deterministic run, the baseline for every interrupted one."""
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = train_tiny(data_root, out)
    assert proc.returncode == 0, proc.stderr
    return out


# --- Config ----------------------------------------------------------------------------------------------


def test_defaults_are_the_papers_recipe():
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.momentum, cfg.weight_decay) == (82, 500, 0.9, 1e-4)
    assert (cfg.milestones, cfg.lr_gamma, cfg.lr, cfg.augment) == ((42, 62), 0.1, 0.1, True)
    assert cfg.sgd_weight_decay() == 2e-4  # loss + 1e-4 * sum(w^2)
    assert TrainConfig(l2_convention="half").sgd_weight_decay() == 1e-4
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # config.json round-trips


def test_from_dict_coerces_plain_values():
    cfg = TrainConfig.from_dict({"lr": "1e-2", "weight_decay": 0, "milestones": [1, 2]})
    assert cfg.lr == 0.01 and cfg.weight_decay == 0.0 and cfg.milestones == (1, 2)


@pytest.mark.parametrize("options, key", [
    ({"epoch": 3}, "epoch"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"batch_size": -1}, "batch_size"),
    ({"lr": 0}, "lr"),
    ({"lr": "fast"}, "lr"),
    ({"momentum": 1.0}, "momentum"),
    ({"precision": "fp16"}, "precision"),
    ({"device": "tpu"}, "device"),
    ({"l2_convention": "double"}, "l2_convention"),
    ({"milestones": [62, 42]}, "milestones"),
    ({"model_overrides": [1]}, "model_overrides"),
])
def test_from_dict_rejects_bad_options_naming_the_key(options, key):
    with pytest.raises(UserError, match=key):
        TrainConfig.from_dict(options)


# --- Refusals: one line, exit 2, nothing written ---------------------------------------------------------


@pytest.mark.parametrize("args, fault", [
    (["--epochs", "0"], "epochs"),
    (["--batch-size", str(N_TRAIN + 1)], "batch_size"),
    (["--model", "no_such_net"], "no_such_net"),
    (["--dataset", "mnist"], "mnist"),
    (["--override", "no_such_option=1"], "no_such_option"),
])
def test_bad_input_is_refused_in_one_line(data_root, tmp_path, capsys, args, fault):
    out = tmp_path / "run"
    code = main(["train", "--model", "resnet_18", "--data-root", str(data_root), "--out", str(out),
                 "--device", "cpu", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fault in err[0], err
    assert not out.exists()


def test_missing_data_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data-root", str(tmp_path / "nowhere"), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "rir fetch" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("content", [None, b"garbage"])
def test_evaluate_refuses_a_missing_or_corrupt_model(tmp_path, capsys, content):
    if content is not None:
        (tmp_path / "model.pt").write_bytes(content)
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.pt" in err[0]
    assert not (tmp_path / "eval.json").exists()


# --- End to end ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_synth_fetch_train_evaluate_learns_the_synthetic_task(tmp_path):
    tarball, root, run = tmp_path / "syn.tar.gz", tmp_path / "data", tmp_path / "run"
    assert rir("synth", "--dataset", "cifar10", "--out", tarball, "--n-train", N_TRAIN, "--n-test", N_TEST,
               "--seed", 1).returncode == 0
    assert rir("fetch", "--dataset", "cifar10", "--root", root, "--from", tarball).returncode == 0
    proc = rir("train", "--model", "resnet_18", "--override", "width=8", "--dataset", "cifar10",
               "--data-root", root, "--out", run, "--epochs", 8, "--batch-size", 32, "--lr", 0.05,
               "--device", "cpu", "--threads", 1)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("epoch ") >= 8  # one progress line per epoch when stderr is not a terminal
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["synthetic"] is True
    assert metrics["test_accuracy"] > 40, metrics  # chance is 10 %
    assert metrics["params"] > 0 and metrics["flops_per_image"] > 0 and metrics["epochs_completed"] == 8
    saved = torch.load(run / "model.pt", weights_only=True)
    assert saved["config"] == json.loads((run / "config.json").read_text())
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__ and "git_commit" in env
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == [str(e) for e in range(1, 9)]
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                             "images_per_s"]

    proc = rir("evaluate", run)
    assert proc.returncode == 0, proc.stderr
    evaluated = json.loads((run / "eval.json").read_text())
    # The thread count may differ from training's: allow one test image of difference.
    assert abs(evaluated["test_accuracy"] - metrics["test_accuracy"]) <= 100 / N_TEST


@pytest.mark.slow
def test_sigkill_in_epoch_2_then_rerun_is_bit_identical(data_root, reference_run, tmp_path):
    run = tmp_path / "run"
    killed = train_tiny(data_root, run, f"KILL@{8 + 3}")  # step 3 of epoch 2
    assert killed.returncode == -9
    assert sorted(p.name for p in (run / "state").glob("*.pt")) == ["ckpt-e0001-s000000.pt"]
    assert not (run / "metrics.json").exists() and not (run / "model.pt").exists()

    resumed = train_tiny(data_root, run)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "warning" not in resumed.stderr
    assert_same_run(reference_run, run)


# --- State belongs to one run as configured (DESIGN.md): never resumed by a finished or changed run -------


@pytest.mark.slow
def test_a_finished_run_started_again_trains_from_the_first_step_to_the_same_numbers(data_root,
                                                                                   reference_run, tmp_path):
    """A forced rerun (`snakemake --forcerun`, `dvc repro -f`, a code fix) trains again: a deterministic CPU
    run gives the same weights and accuracy. A finished run leaves no state to resume."""
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    assert not (run / "state").exists()  # spent at the end of the run
    (run / "metrics.json").write_text("{}")  # the old result: the rerun must write its own
    again = train_tiny(data_root, run)
    assert again.returncode == 0, again.stderr
    assert "resuming" not in again.stdout and again.stdout.count("epoch ") == 3, again.stdout
    assert_same_run(reference_run, run)


@pytest.mark.slow
def test_a_changed_configuration_starts_from_the_first_step_with_the_old_state_set_aside(data_root,
                                                                                      tmp_path):
    """A checkpoint of lr 0.05 is never resumed by lr 0.1, nor refused: the run starts at epoch 1, equal to
    a fresh lr 0.1 run, and the old state is kept aside, never read."""
    run = tmp_path / "run"
    assert train_tiny(data_root, run, f"KILL@{8 + 3}").returncode == -9
    old_state = {p.name: p.read_bytes() for p in (run / "state").iterdir()}
    changed = train_tiny(data_root, run, None, "--lr", "0.1")
    assert changed.returncode == 0, changed.stderr
    assert "resuming" not in changed.stdout, changed.stdout
    assert "starting from the first step: the configuration changed (lr: 0.05 in the checkpoint, 0.1 now)" \
        in changed.stdout, changed.stdout
    assert {p.name: p.read_bytes() for p in (run / "state.superseded").iterdir()} == old_state
    fresh = train_tiny(data_root, tmp_path / "fresh", None, "--lr", "0.1")
    assert fresh.returncode == 0, fresh.stderr
    assert_same_run(tmp_path / "fresh", run)


@pytest.mark.slow
def test_a_checkpoint_of_other_training_code_is_not_resumed(data_root, reference_run, tmp_path):
    """The checkpoint records the digest of the code the run executes (rir.stages.run_code_digest of its
    model); state written by other code (here: the digest rewritten, sidecar and all) restarts the run from
    the first step."""
    from rir.checkpoint import list_checkpoints, load_latest, save_checkpoint

    run = tmp_path / "run"
    assert train_tiny(data_root, run, f"KILL@{8 + 3}").returncode == -9
    state = load_latest(run / "state")
    assert state["code"] == run_code_digest("resnet_18")
    for path in list_checkpoints(run / "state"):
        path.unlink()
    save_checkpoint(run / "state", {**state, "code": "0" * 64}, epoch=1)
    again = train_tiny(data_root, run)
    assert again.returncode == 0, again.stderr
    assert "starting from the first step: the code the run executes changed" in again.stdout, again.stdout
    assert_same_run(reference_run, run)


def test_resumable_is_decided_by_configuration_code_and_epochs_left():
    """The rule itself, including a finished run's checkpoint left by a crash before its state was removed
    (no fault can land between the last checkpoint and the end of the run)."""
    cfg = TrainConfig.from_dict({"epochs": 3, "lr": 0.05})
    code = run_code_digest(cfg.model)
    saved = {"config": cfg.to_dict(), "code": code, "epoch": 2}
    assert _not_resumable(saved, cfg, code) is None
    assert _not_resumable({**saved, "config": {**cfg.to_dict(), "threads": 4}}, cfg, code) is None
    assert "already finished" in _not_resumable({**saved, "epoch": 3}, cfg, code)
    assert _not_resumable(saved, cfg, "f" * 64) == \
        "the code the run executes changed since the checkpoint was written"
    assert "(epochs: 3 in the checkpoint, 5 now)" in _not_resumable(saved, TrainConfig.from_dict(
        {"epochs": 5, "lr": 0.05}), code)


@pytest.mark.slow
def test_sigterm_checkpoints_exits_75_and_resumes_exactly(data_root, reference_run, tmp_path):
    run = tmp_path / "run"
    stopped = train_tiny(data_root, run, f"TERM@{8 + 4}")
    assert stopped.returncode == EXIT_PREEMPTED, stopped.stderr
    assert (run / "state" / "ckpt-e0001-s000004.pt").is_file()  # the step in progress was finished and saved
    assert not (run / "metrics.json").exists()
    resumed = train_tiny(data_root, run)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(reference_run, run)


@pytest.mark.slow
def test_wait_hook_pauses_at_a_known_step_and_an_outside_sigterm_lands_there(data_root, reference_run,
                                                                          tmp_path):
    """WAIT@N: the run pauses after step N until its flag file is gone, so a test signals it at a known step
    by waiting on the flag, not on time."""
    run, flag = tmp_path / "run", tmp_path / "paused"
    env = {**os.environ, FAULT_ENV: f"WAIT@{8 + 2}", FAULT_FLAG_ENV: str(flag)}
    proc = subprocess.Popen([*RIR, "train", *TINY, "--data-root", str(data_root), "--out", str(run)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not flag.exists():  # the event: step 10 is done
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        assert int(flag.read_text()) == proc.pid
        proc.terminate()
        flag.unlink()
        out, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_PREEMPTED, err
    assert (run / "state" / "ckpt-e0001-s000002.pt").is_file()  # exactly the paused step, checkpointed
    resumed = train_tiny(data_root, run)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(reference_run, run)


@pytest.mark.parametrize("spec", ["WAIT@2", "STOP@2", "KILL@x", "KILL@0"])
def test_malformed_fault_injection_is_one_line_and_nothing_written(data_root, tmp_path, spec):
    proc = train_tiny(data_root, tmp_path / "run", spec)  # WAIT without RIR_FAULT_FLAG is malformed too
    assert proc.returncode == 2 and FAULT_ENV in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "run").exists()


def test_fault_injection_hits_only_the_run_rir_fault_run_names(data_root, tmp_path, monkeypatch):
    """Snakemake jobs share one environment: RIR_FAULT_RUN keeps a fault to the one run a test targets."""
    monkeypatch.setenv(FAULT_RUN_ENV, "target")
    spared = _schedule_run(data_root, tmp_path / "other", monkeypatch, "TERM@1", epochs=1)
    hit = _schedule_run(data_root, tmp_path / "target", monkeypatch, "TERM@1", epochs=1)
    assert spared["status"] == "completed" and hit == {"status": "preempted", "epoch": 0, "step": 1}


@pytest.mark.slow
def test_truncated_checkpoint_falls_back_to_the_previous_one(data_root, reference_run, tmp_path):
    run = tmp_path / "run"
    assert train_tiny(data_root, run, f"KILL@{16 + 3}").returncode == -9  # in epoch 3
    newest = run / "state" / "ckpt-e0002-s000000.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    resumed = train_tiny(data_root, run)
    assert resumed.returncode == 0, resumed.stderr
    warnings = [line for line in resumed.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "ckpt-e0002" in warnings[0] and "ckpt-e0001" in warnings[0]
    assert_same_run(reference_run, run)


@pytest.mark.slow
def test_nan_loss_is_reported_as_diverged(data_root, tmp_path):
    args = ["--model", "resnet_18", "--override", "width=8", "--batch-size", BATCH, "--lr", "1e30",
            "--device", "cpu", "--threads", 1, "--epochs", 2, "--data-root", data_root]
    proc = rir("train", *args, "--out", tmp_path / "a")
    assert proc.returncode == EXIT_DIVERGED, proc.stderr
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["diverged_epoch"] == 1
    assert metrics["test_accuracy"] is None
    proc = rir("train", *args, "--out", tmp_path / "b", "--allow-diverged")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["status"] == "diverged"


# --- The schedule and the resume of every piece of state, read from what training writes -----------------
# In-process runs (fast): 512 images in batches of 128, 4 steps per epoch, 3 epochs, lr x0.1 after epoch 1.
# ALL-CNN-C with dropout 0.5 is the model: its dropout masks are drawn from the global torch RNG, so a resume
# that does not restore that RNG draws other masks than the uninterrupted run (the loader has its own
# generator, and resnet_18 has no dropout, so the resumes above cannot see a missing RNG restore).
SCHEDULE = {"model": "all_cnn_c", "model_overrides": {"dropout": 0.5, "width_scale": 0.125},
            "dataset": "cifar10", "epochs": 3, "batch_size": 128, "lr": 0.05, "milestones": [1],
            "device": "cpu", "threads": 1, "seed": 0}
SCHEDULE_STEPS = N_TRAIN // 128


def _schedule_run(data_root, out: Path, monkeypatch, fault: str | None = None, **options) -> dict:
    if fault:
        monkeypatch.setenv(FAULT_ENV, fault)
    else:
        monkeypatch.delenv(FAULT_ENV, raising=False)
    from rir.train import train

    return train(TrainConfig.from_dict({**SCHEDULE, "data_root": str(data_root), **options}), out)


def _lr_column(run: Path) -> list[float]:
    with open(run / "history.csv") as f:
        return [float(row["lr"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def schedule_runs(data_root, tmp_path_factory):
    """(uninterrupted, resumed): the same dropout run, once straight through and once preempted by SIGTERM in
    epoch 2 (after the lr milestone's epoch 1 ended) and then resumed."""
    from rir.models import create_model

    assert any(isinstance(m, torch.nn.Dropout) for m in create_model("all_cnn_c", dropout=0.5).modules())
    base = tmp_path_factory.mktemp("schedule")
    with pytest.MonkeyPatch.context() as mp:
        straight = _schedule_run(data_root, base / "straight", mp)
        stopped = _schedule_run(data_root, base / "resumed", mp, f"TERM@{SCHEDULE_STEPS + 2}")
        assert stopped == {"status": "preempted", "epoch": 1, "step": 2}, stopped
        resumed = _schedule_run(data_root, base / "resumed", mp)
    assert straight["status"] == resumed["status"] == "completed"
    return base / "straight", base / "resumed"


def test_history_records_the_lr_of_each_epoch_after_the_milestone(schedule_runs):
    """"scaled by 0.1 after epochs 42 and 62": with milestones [1], epoch 1 trains at lr and every later
    epoch at lr * 0.1, and history.csv says so (read from what training wrote, not from the config)."""
    straight, _ = schedule_runs
    assert _lr_column(straight) == pytest.approx([0.05, 0.005, 0.005], rel=1e-12)


def test_resume_across_the_milestone_restores_schedule_and_global_rng_bit_for_bit(schedule_runs):
    """The resumed run continues the scheduler (lr stays 0.005 in epoch 3, not 0.0005) and the global RNG
    (the same dropout masks): weights, history and metrics equal the uninterrupted run's."""
    straight, resumed = schedule_runs
    assert _lr_column(resumed) == _lr_column(straight)
    assert_same_run(straight, resumed)


def test_the_optimizer_is_the_papers_sgd_with_l2_on_weight_tensors_alone(data_root, tmp_path, monkeypatch):
    """Read from the checkpoint training wrote (a run stopped by SIGTERM after its first step: a finished
    run's state is removed): SGD momentum 0.9; "L2 penalty 1e-4" as loss + 1e-4 * sum(w^2), i.e. weight decay
    2e-4, on every weight tensor and on no BatchNorm scale or shift or bias."""
    from rir.checkpoint import load_latest
    from rir.models import create_model

    stopped = _schedule_run(data_root, tmp_path / "run", monkeypatch, "TERM@1", epochs=1)
    assert stopped["status"] == "preempted"
    groups = load_latest(tmp_path / "run" / "state")["optimizer"]["param_groups"]
    assert [g["momentum"] for g in groups] == [0.9, 0.9]
    assert [g["weight_decay"] for g in groups] == [2e-4, 0.0]
    params = list(create_model("all_cnn_c", **SCHEDULE["model_overrides"]).parameters())
    assert len(groups[0]["params"]) == sum(p.ndim > 1 for p in params) > 0
    assert len(groups[1]["params"]) == sum(p.ndim == 1 for p in params) > 0


def test_training_augments_with_4_pixel_crops_and_flips_and_evaluates_unaugmented(data_root, tmp_path,
                                                                                 monkeypatch):
    """"random crops and horizontal flips" (pad 4, He et al.): the loaders `train` builds, as built."""
    from rir.loader import DeviceLoader

    built = []
    original = DeviceLoader.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append((self.train, self.padding, self.flip))

    monkeypatch.setattr(DeviceLoader, "__init__", recording)
    assert _schedule_run(data_root, tmp_path / "run", monkeypatch, epochs=1)["status"] == "completed"
    assert built == [(True, 4, True), (False, 0, False)]


def test_a_holdout_is_the_last_training_images_and_one_too_large_is_refused(data_root, tmp_path):
    """The grid search selects on held-out training images: the last `holdout` of the training set, never
    seen in training, and the test set is not used; a holdout as large as the training set is one line."""
    from rir.data import load_arrays
    from rir.train import split, train

    arrays = load_arrays(data_root, "cifar10")
    n = len(arrays.train_labels)
    (train_images, train_labels), (eval_images, eval_labels) = split(arrays, 0)
    assert train_images is arrays.train_images and eval_images is arrays.test_images
    (train_images, train_labels), (eval_images, eval_labels) = split(arrays, 100)
    assert len(train_labels) == n - 100 and len(eval_labels) == 100
    assert (eval_images == arrays.train_images[-100:]).all()
    assert (train_images == arrays.train_images[:-100]).all()
    cfg = TrainConfig(model="cnn_18", model_overrides={"width": 4}, data_root=str(data_root), holdout=n,
                      epochs=1, device="cpu")
    with pytest.raises(UserError, match=f"holdout={n}: the training set has only {n} images"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
