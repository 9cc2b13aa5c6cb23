"""Training with the paper's recipe (Section 3), resumable after any kill, preemption or corruption.

The recipe and the choices the paper leaves open are `rir.recipe.TrainConfig`; this module runs it.

Process contract (`rir train`): the final artifacts of RUN_DIR (model.pt, history.csv, config.json,
env.json, then metrics.json last) appear only when the run ends. Every epoch ends with a checkpoint in the
state dir; the same command run again resumes. Exit codes: 0 done; 2 bad input; 3 diverged (NaN/inf
loss; status "diverged" in metrics.json); 75 (EX_TEMPFAIL, sysexits.h) after SIGTERM: the current step was
finished and checkpointed, rerun to resume. No host-device synchronisation inside the step loop: loss and
accuracy are accumulated on the device and read once per epoch, so a NaN/inf loss stops the run at the end of
the epoch in which it appeared. The step itself and its speed switches (channels_last, compile with a shared
cache, fused SGD on CUDA) live in `rir.step`, which `rir bench` times; the device and the math mode (exact
fp32, tf32, bf16 autocast; never a silent CPU run) in `rir.device`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import resource
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rir.device import apply_math_mode, autocast, math_mode, refuse_unasked_cpu, resolve_device
from rir.errors import UserError
from rir.recipe import TrainConfig
from rir.stages import run_code_digest

EXIT_DIVERGED = 3  # a NaN/inf training loss (exit 0 instead with --allow-diverged)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: SIGTERM received, checkpoint written, rerun to resume
# Evaluation has no gradients to keep, so it takes batches 4x the paper's training batch: fewer launches.
EVAL_BATCH_SIZE = 2000
HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                  "images_per_s")


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism (CUDA docs)
        # warn_only: an op without a deterministic CUDA kernel warns instead of failing the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic


class _StopFlag:
    """Set by SIGTERM; the step loop polls it (a Python bool: no device synchronisation)."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self, signum, frame) -> None:
        self.set = True


def train(cfg: TrainConfig, out_dir: str | Path, state_dir: str | Path | None = None) -> dict:
    """Train (or resume) one run; returns its metrics. metrics["status"]: completed | diverged | preempted."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    state_dir = Path(state_dir) if state_dir is not None else out_dir / "state"
    device, arrays, train_set, eval_set = _checked_inputs(cfg)  # refusals first: nothing written yet
    code = run_code_digest(cfg.model)
    seed_everything(cfg.seed, cfg.deterministic)
    run = _Run(cfg, device, *build(cfg, arrays.num_classes, device), state_dir=state_dir, code=code,
               started=started)
    loader, eval_loader = _loaders(cfg, arrays, train_set, eval_set, device)
    _resume(run)
    stop = _StopFlag()
    previous_handler = signal.signal(signal.SIGTERM, stop)
    bar = _progress_bar()
    outcome, epoch = None, run.epoch
    try:
        while outcome is None and epoch < cfg.epochs:
            outcome = _epoch(run, epoch, loader, eval_loader, stop, bar)
            epoch += 1
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if bar is not None:
            bar.close()
    if outcome == "preempted":
        return {"status": "preempted", "epoch": run.epoch, "step": run.step}
    return _finish(run, out_dir, arrays, outcome or "completed", epoch if outcome == "diverged" else None)


def build(cfg: TrainConfig, num_classes: int, device: torch.device) -> tuple:
    """The net of `cfg` on `device`, the model its step runs (compiled with `cfg.compile`), its optimizer
    and its learning-rate schedule, under the run's math mode: what `rir train` trains and `rir plan` and
    `rir bench` time. Seed first (`seed_everything`) where the initial weights matter."""
    from rir.models import create_model
    from rir.step import compile_model, make_optimizer

    model = create_model(cfg.model, num_classes=num_classes, **cfg.model_overrides)
    model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
    optimizer = make_optimizer(model, cfg.lr, cfg.momentum, cfg.sgd_weight_decay(), cfg.decay_norm_and_bias,
                               device)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), gamma=cfg.lr_gamma)
    apply_math_mode(cfg.precision)  # exact fp32, TF32 or bf16 autocast, before the model first runs
    return model, compile_model(model) if cfg.compile else model, optimizer, scheduler


@dataclass
class _Run:
    """One training: its parts (`build`), and where it stands, which its checkpoints hold."""

    cfg: TrainConfig
    device: torch.device
    model: torch.nn.Module
    step_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    state_dir: Path
    code: str  # rir.stages.run_code_digest: checkpoints of other code are not resumed
    started: float  # this process's start (time.perf_counter)
    history: list[dict] = field(default_factory=list)
    epoch: int = 0  # the epoch under way (0-based): epochs done
    step: int = 0  # steps done in it
    partial: dict = field(default_factory=lambda: dict(NO_STEPS))  # its sums so far
    elapsed: float = 0.0  # seconds spent by earlier processes of the run


NO_STEPS = {"loss_sum": 0.0, "correct": 0, "count": 0, "seconds": 0.0}


def _checked_inputs(cfg: TrainConfig) -> tuple:
    """The device, the arrays, and the (images, labels) to train on and to evaluate on; UserError for what
    cannot be trained (an unknown model, data, a CPU not asked for, a holdout or batch the data cannot
    give)."""
    from rir.data import load_arrays
    from rir.models import list_models

    device = resolve_device(cfg.device)  # GPUs that torch cannot use: a UserError, never the CPU (rir.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.model not in list_models():
        raise UserError(f"unknown model {cfg.model!r} (see `rir models`)")
    arrays = load_arrays(cfg.data_root, cfg.dataset)
    refuse_unasked_cpu(device, cfg.device, arrays.synthetic)  # real CIFAR on the CPU only when asked for
    if cfg.holdout and cfg.holdout >= len(arrays.train_labels):
        raise UserError(f"training option holdout={cfg.holdout}: the training set has only "
                        f"{len(arrays.train_labels)} images")
    train_set, eval_set = split(arrays, cfg.holdout)
    if cfg.batch_size > len(train_set[1]):
        raise UserError(f"training option batch_size={cfg.batch_size} is larger than the training set "
                        f"({len(train_set[1])} images)")
    return device, arrays, train_set, eval_set


def split(arrays, holdout: int) -> tuple:
    """((images, labels) to train on, (images, labels) to evaluate on): the test set, or with `holdout` the
    last `holdout` training images (the grid search's selection split)."""
    if not holdout:
        return (arrays.train_images, arrays.train_labels), (arrays.test_images, arrays.test_labels)
    return ((arrays.train_images[:-holdout], arrays.train_labels[:-holdout]),
            (arrays.train_images[-holdout:], arrays.train_labels[-holdout:]))


def _loaders(cfg: TrainConfig, arrays, train_set, eval_set, device) -> tuple:
    """The training loader (the recipe's augmentation, replayable per epoch) and the evaluation loader."""
    from rir.loader import DeviceLoader

    loader = DeviceLoader(*train_set, arrays.mean, arrays.std, cfg.batch_size, device, train=True,
                          seed=cfg.seed, drop_last=cfg.drop_last, channels_last=cfg.channels_last,
                          padding=4 if cfg.augment else 0, flip=cfg.augment)
    eval_loader = DeviceLoader(*eval_set, arrays.mean, arrays.std, max(cfg.batch_size, EVAL_BATCH_SIZE),
                               device, train=False, channels_last=cfg.channels_last)
    return loader, eval_loader


def _resume(run: _Run) -> None:
    """Continue from the newest good checkpoint of this run as configured, if there is one; state of another
    run, or of other code, is set aside, never reused and never a reason to refuse."""
    from rir.checkpoint import load_latest, restore_rng

    ckpt = load_latest(run.state_dir)
    if ckpt is None:
        return
    reason = _not_resumable(ckpt, run.cfg, run.code)
    if reason:
        print(f"starting from the first step: {reason}; {_set_aside(run.state_dir)}", flush=True)
        return
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    for group in run.optimizer.param_groups:  # fused SGD follows this run's device, not the checkpoint's
        group["fused"] = run.optimizer.defaults["fused"]
    run.scheduler.load_state_dict(ckpt["scheduler"])
    restore_rng(ckpt["rng"])
    run.history, run.elapsed = list(ckpt["history"]), float(ckpt["elapsed"])
    run.epoch, run.step, run.partial = int(ckpt["epoch"]), int(ckpt["step"]), dict(ckpt["partial"])
    print(f"resuming from {run.state_dir} at epoch {run.epoch + 1}, step {run.step}", flush=True)


def _checkpoint(run: _Run) -> None:
    """Save where the run stands (`run.epoch`, `run.step`, `run.partial`): what `_resume` continues from."""
    from rir.checkpoint import capture_rng, save_checkpoint

    save_checkpoint(run.state_dir, {
        "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "rng": capture_rng(), "epoch": run.epoch, "step": run.step,
        "partial": run.partial, "history": run.history,
        "elapsed": run.elapsed + time.perf_counter() - run.started, "config": run.cfg.to_dict(),
        "code": run.code,
    }, run.epoch, run.step)


def _epoch(run: _Run, epoch: int, loader, eval_loader, stop: _StopFlag, bar) -> str | None:
    """Train epoch `epoch` from `run.step` on, evaluate, checkpoint; "preempted" (a SIGTERM: checkpointed
    where it stopped), "diverged" (a NaN/inf training loss), or None."""
    from rir.evaluate import evaluate_model
    from rir.step import train_step

    cfg, device, model = run.cfg, run.device, run.model
    model.train()
    t0 = time.perf_counter()
    loss_sum = torch.tensor(run.partial["loss_sum"], dtype=torch.float64, device=device)
    correct = torch.tensor(run.partial["correct"], dtype=torch.int64, device=device)
    count, step = run.partial["count"], run.step
    if bar is not None:
        bar.reset(total=len(loader))
        bar.update(step)
        bar.set_description(f"epoch {epoch + 1}/{cfg.epochs}")
    for x, y in loader.epoch(epoch, run.step):
        train_step(run.step_model, run.optimizer, x, y, cfg.precision == "bf16", loss_sum, correct)
        count += y.shape[0]
        step += 1
        if bar is not None:
            bar.update(1)
        if stop.set and step < len(loader):
            # Preempted in mid-epoch: save the partial epoch so the rerun continues at the next step.
            run.epoch, run.step = epoch, step
            run.partial = {"loss_sum": loss_sum.item(), "correct": int(correct.item()), "count": count,
                           "seconds": run.partial["seconds"] + time.perf_counter() - t0}
            _checkpoint(run)
            return "preempted"
    # The one host-device synchronisation of the training epoch.
    train_loss, train_acc = loss_sum.item() / count, 100.0 * correct.item() / count
    seconds = run.partial["seconds"] + time.perf_counter() - t0
    if math.isfinite(train_loss):
        test_loss, test_acc = evaluate_model(model, eval_loader, lambda: autocast(device, cfg.precision))
    else:
        test_loss, test_acc = math.nan, math.nan
    run.history.append({"epoch": epoch + 1, "lr": run.optimizer.param_groups[0]["lr"],
                        "train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss,
                        "test_acc": test_acc, "seconds": seconds, "images_per_s": count / seconds})
    _report_epoch(run.history[-1], cfg.epochs, bar)
    if not math.isfinite(train_loss):
        return "diverged"
    run.scheduler.step()
    run.epoch, run.step, run.partial = epoch + 1, 0, dict(NO_STEPS)
    _checkpoint(run)
    return "preempted" if stop.set and epoch + 1 < cfg.epochs else None


def _finish(run: _Run, out_dir: Path, arrays, status: str, diverged_epoch: int | None) -> dict:
    """Write the run's files (metrics.json last) and remove its spent state: a rerun, forced or after a
    change, trains from the first step; it never resumes a finished run and rewrites the old numbers."""
    elapsed = run.elapsed + time.perf_counter() - run.started
    metrics = _metrics(run.cfg, run.model, arrays, run.device, run.history, status, diverged_epoch, elapsed)
    _write_run(out_dir, run.cfg, run.model, arrays, run.history, metrics, run.device)
    shutil.rmtree(run.state_dir, ignore_errors=True)
    return metrics


def _not_resumable(saved: dict, cfg: TrainConfig, code: str) -> str | None:
    """Why a checkpoint cannot be resumed by this run, or None when it can.

    A checkpoint resumes only the run that wrote it, as configured then, interrupted before its end: the
    same resolved configuration (except `TrainConfig.RESUMABLE_CHANGES`, which cannot change the numbers),
    the same code (`rir.stages.run_code_digest`: the modules the run executes, docstrings and comments
    aside), and epochs left to train. Anything else starts again
    from the first step (DEVELOPING.md, "Resumable state belongs to one run as configured"). A change in the
    code restarts a half-finished run too: mixing epochs of two versions of the code would make a number
    that no version computes, the safer choice for a reproduction (DEVELOPING.md, "Reruns").
    """
    reason = _changed(saved, cfg, code)
    if reason:
        return reason
    if int(saved.get("epoch", 0)) >= cfg.epochs:
        return "the checkpoint is of a run that already finished"
    return None


def _changed(saved: dict, cfg: TrainConfig, code: str) -> str | None:
    """Why what a checkpoint records is not this run as configured now, with this code; None when it is.
    `TrainConfig.RESUMABLE_CHANGES` (where the data lie, the device, compilation, threads) do not count:
    they cannot change the numbers."""
    current = cfg.to_dict()
    old = saved.get("config", {})
    differing = sorted(k for k in set(old) | set(current)
                       if k not in TrainConfig.RESUMABLE_CHANGES and old.get(k) != current.get(k))
    if differing:
        k = differing[0]
        return f"the configuration changed ({k}: {old.get(k)!r} in the checkpoint, {current.get(k)!r} now)"
    if saved.get("code") != code:
        return "the code the run executes changed since the checkpoint was written"
    return None


def _set_aside(state_dir: Path) -> str:
    """Move a state folder that cannot be resumed to `<name>.superseded` (replacing an older one there), so
    that it is never read again but a mistaken change loses nothing yet; returns what was done."""
    aside = state_dir.with_name(state_dir.name + ".superseded")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(state_dir, aside)
    return f"the old state is moved to {aside}"


def _progress_bar():
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=0, unit="step", leave=False, dynamic_ncols=True)


def _report_epoch(row: dict, epochs: int, bar) -> None:
    line = (f"epoch {row['epoch']}/{epochs} lr {row['lr']:.4g} train_loss {row['train_loss']:.4f} "
            f"train_acc {row['train_acc']:.2f}% test_loss {row['test_loss']:.4f} "
            f"test_acc {row['test_acc']:.2f}% "
            f"{row['seconds']:.1f}s {row['images_per_s']:.0f} img/s")
    if bar is not None:
        bar.write(line)
    else:
        print(line, flush=True)


def _metrics(cfg, model, arrays, device, history, status, diverged_epoch, elapsed) -> dict:
    from rir.env import device_name
    from rir.models import model_summary
    from rir.step import use_fused_sgd

    last = history[-1] if history else {}
    acc = last.get("test_acc") if status == "completed" else None
    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated(device), "cuda_max_allocated"
    else:  # ru_maxrss is in KiB on Linux
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host_max_rss"
    summary = model_summary(cfg.model, num_classes=arrays.num_classes, **cfg.model_overrides)
    return {
        "status": status, "diverged_epoch": diverged_epoch, "model": cfg.model, "dataset": cfg.dataset,
        "seed": cfg.seed, **arrays.provenance, "epochs": cfg.epochs,
        "epochs_completed": len(history) if status == "completed" else len(history) - 1,
        "eval_split": f"holdout_{cfg.holdout}" if cfg.holdout else "test",
        "test_accuracy": acc, "test_error": None if acc is None else 100.0 - acc,
        "test_loss": last.get("test_loss") if acc is not None else None,
        "params": sum(p.numel() for p in model.parameters()),
        "flops_per_image": summary.get("flops_per_image"),
        "device": str(device), "device_name": device_name(device), "precision": cfg.precision,
        **math_mode(cfg.precision, device),
        "channels_last": cfg.channels_last, "compile": cfg.compile, "fused_sgd": use_fused_sgd(device),
        "wall_seconds": elapsed, "train_seconds": sum(r["seconds"] for r in history),
        "peak_memory_bytes": int(peak), "peak_memory_kind": peak_kind,
    }


def _write_run(out_dir: Path, cfg, model, arrays, history, metrics, device) -> None:
    """The final artifacts; metrics.json last, so its presence means the run is complete."""
    from rir.env import environment
    from rir.io import atomic_write_bytes, atomic_write_json, atomic_write_text

    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    model_pt = io.BytesIO()  # in memory first, so a full disk is an OSError naming the file (rir.checkpoint)
    torch.save({"state_dict": weights, "config": cfg.to_dict(), "num_classes": arrays.num_classes,
                "status": metrics["status"]}, model_pt)
    atomic_write_bytes(out_dir / "model.pt", model_pt.getvalue())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(out_dir / "history.csv", buf.getvalue())
    atomic_write_json(out_dir / "config.json", cfg.to_dict())
    atomic_write_json(out_dir / "env.json", environment(device, cfg.precision, arrays.provenance))
    atomic_write_json(out_dir / "metrics.json", metrics)
