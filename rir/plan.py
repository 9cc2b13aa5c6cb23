"""`rir plan`: every run of a profile with its estimated wall time on this device, and the paper profile on a
GPU card.

What it predicts: the wall time of each `rir train` process from start to exit, alone on an idle device,
summed over the runs (one after another): what a user waits for and what a scheduler's time limit must
cover. metrics.json's `wall_seconds` is part of it: it starts inside `train()`, after the interpreter and the
imports, and stops before the final FLOP count and writes (about 2 s of a CPU run; the summary gives both
sums); `train_seconds` is the epochs' steps alone. Snakemake's own work and the evaluate and ablate jobs are
not in it. Not counted either: a fresh process's first steps run slower until glibc's allocator adapts its
mmap threshold (about 0.2 s of a smoke run on a CPU), which this process has long done.

A run = start-up + data + build + warm-up + finish + epochs x (steps x step + evaluation + checkpoint):
- start-up: measured once, in a child process (`python -m rir.plan`, `_startup`) that does what every `rir
  train --run` process does besides training: the interpreter, the modules of
  rir.stages.closure(ENTRY["train"]), the grid's expansion, the run's code digest, a FLOP count (the first
  in a process imports torch._dynamo: about a second), CUDA's context, the exit;
- data: load_arrays modelled (the prepared file's bytes at the hash and copy rate measured here: no data set
  need exist yet) and rir.train's own loaders over as many images as the run has, measured once per size;
- the rest, measured for each distinct config (model, overrides, batch, threads, math mode, memory format,
  compile, determinism) in this process, with the run's own code (rir.train's build, _checkpoint and _finish,
  rir.step's step, rir.evaluate) and settings (threads and determinism set as rir.train sets them, the math
  mode by build; all restored after): the build; WARMUP_STEPS first steps, whose excess over the steady step
  each run pays once (allocator, oneDNN primitives, cuDNN autotuning, compilation); the step, median of
  TIMED_ROUNDS; one batch of the evaluation's batch size (rir.train.EVAL_BATCH_SIZE) cold then warm, the
  excess once and the warm one per image; a checkpoint, and the final FLOP count, environment and files,
  fsyncs included (wall clock, the lesser of two).
Clock: for a CPU run of one thread (`threads: 1`), the CPU time of the measuring thread, on which all of
PyTorch's work then runs: busy processes beside it barely change it, while they stretch the wall clock
several times. On a GPU, the wall clock after CUDA synchronisation (steps in rounds of CUDA_STEPS_PER_ROUND,
unsynchronised inside, as in training). For a CPU run of several threads, the wall clock too: other
processes' load then counts, and the output says so.

Configs are measured cheapest first while the measuring stays inside `--measure-budget`; on the CPU a step
(or an evaluation batch) over REFERENCE_MAX_FLOPS is measured at a cut batch and scaled per image (a GPU
takes every batch whole: a small batch would misstate its throughput, and a whole one is short). A config left
unmeasured is extrapolated: its step and evaluation from its FLOPs at the FLOP/s of the measured config
nearest in FLOPs per image, its other costs that config's. Each row and the summary say what was measured
and what extrapolated. `--bench-json FILE...` takes the steps from `rir bench --json` records instead
(another machine, usually a GPU): nothing is measured, evaluation counts as a third of a training image, and
start-up, data, warm-up and checkpoints are left out (the output says so).

The card figure (`--card`, default H100 SXM) is an ESTIMATE from FLOPs, not a measurement: each run's FLOPs
at the card's dense peak for the run's math mode (`precision`: exact fp32 on the plain fp32 units, TF32 or
bf16 on the tensor cores; rir.cards.PEAKS, from the data sheets), at an assumed utilisation of 35 % for nets
of 1 GFLOP per image or more (the speed target for rir_18_wide, docs/speed.md, set for bf16 and assumed
alike for the other modes) and 15 % for the smaller ones (narrow convs fill a card badly; several runs
share it through `runs_per_gpu`). It is also given at a flat 10 %; the target is the paper profile in 4
H100-hours.

Longer than 400 lines for one reason: the measurement is the run's own code called piece by piece, and
each piece it leaves out (start-up, evaluation, checkpoints) is what made the estimate wrong before. What
train() does per epoch is timed through its pieces, not its loop (`_epoch` of a paper run is minutes on a
CPU): a new per-epoch or per-run cost in train() needs its piece timed here too.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rir.errors import UserError
from rir.timelimits import data_sizes

REFERENCE_MAX_FLOPS = 2e10  # FLOPs of one measured CPU step or evaluation batch: about a second on a laptop
WARMUP_STEPS = 2  # first steps of a config, timed one by one: their excess is a once-per-run cost
TIMED_ROUNDS = 5  # rounds of steady steps; the step is their median
CUDA_STEPS_PER_ROUND = 5  # steps per round on a GPU (one step per round on the CPU)
IMAGE_BYTES = 32 * 32 * 3 + 8  # one image of the prepared file (uint8) and its label (int64)
DEFAULT_CARD = "H100 SXM"  # the card of the cost target
FLAT_UTILISATION = 0.10
TARGET_H100_HOURS = 4.0
PREDICTS = ("the wall time of each `rir train` process from start to exit, alone on an idle device, summed "
            "(metrics.json's wall_seconds leaves out the start-up and the final writes)")

@dataclass
class ConfigCost:
    """One distinct model config of a profile and the costs of one of its runs, in seconds."""

    cfg: object  # the rir.recipe.TrainConfig of its first run: the settings all its runs share
    flops_per_image: int  # forward
    step: float | None = None  # one training step at cfg.batch_size, steady state
    eval_per_image: float | None = None  # evaluation, warm, per image
    warmup: float = 0.0  # the first steps' and the first evaluation's excess over the steady ones
    build: float = 0.0  # model, optimizer, scheduler (and the compile wrapper)
    checkpoint: float = 0.0  # one checkpoint written
    finish: float = 0.0  # the run's FLOP count, model.pt and the four small files
    source: str = ""  # of the step: measured | measured at batch N | bench-json (...) | extrapolated: ...
    eval_source: str = ""
    fixed_source: str = ""  # of build, warm-up, checkpoint and finish
    measured: bool = False  # measured here (neither extrapolated nor from --bench-json)

    @property
    def label(self) -> str:
        overrides = ",".join(f"{k}={v}" for k, v in self.cfg.model_overrides.items())
        return f"{self.cfg.model}{f'[{overrides}]' if overrides else ''} batch {self.cfg.batch_size}"

    @property
    def step_flops(self) -> float:
        return 3 * self.flops_per_image * self.cfg.batch_size


def _config_key(opts: dict) -> tuple:
    return (opts["model"], json.dumps(opts["model_overrides"], sort_keys=True), opts["batch_size"],
            opts["precision"], opts["channels_last"], opts["compile"], opts["threads"], opts["deterministic"])


def _runs(params: dict, profile: str | None, family: str | None = None):
    """(resolved profile, [(RunSpec, TrainConfig)]) in expand_runs' order: the default target's runs, or
    with `family` those of that optional family (the grid search, the readings of RiR)."""
    from rir.config import expand_runs, resolve_profile
    from rir.recipe import TrainConfig

    resolved = resolve_profile(params, profile)
    runs = expand_runs(params, profile) if family is None else expand_runs(params, profile, True, family)
    return resolved, [(run, TrainConfig.from_dict(run.train_options())) for run in runs.values()]


def _configs(runs) -> dict[tuple, ConfigCost]:
    from rir.models import model_summary

    configs: dict[tuple, ConfigCost] = {}
    for _, cfg in runs:
        key = _config_key(cfg.to_dict())
        if key not in configs:
            summary = model_summary(cfg.model, 10, **cfg.model_overrides)
            configs[key] = ConfigCost(cfg, summary["flops_per_image"])
    return configs


def _from_bench_json(configs: dict[tuple, ConfigCost], paths: list[str]) -> str:
    records = []
    for path in paths:
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
            ok = isinstance(record, dict) and record.get("train_images_per_s", 0) > 0
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"--bench-json {path}: not a readable `rir bench --json` record")
        records.append(record)
    for c in configs.values():
        cfg = c.cfg
        for r in records:
            if (r["model"], r.get("model_overrides") or {}, r["batch_size"]) == (
                    cfg.model, cfg.model_overrides, cfg.batch_size):
                flags = "+".join([r["precision"]] + ["channels_last"] * bool(r.get("channels_last"))
                                 + ["compile"] * bool(r.get("compile")))
                c.step, c.source = cfg.batch_size / r["train_images_per_s"], f"bench-json ({flags})"
                c.eval_per_image, c.eval_source = c.step / (3 * cfg.batch_size), "a third of a training image"
                c.fixed_source = "not included (--bench-json)"
                break
    return ", ".join(sorted({f"{r['device']} ({r['device_name']})" for r in records}))


class _Clock:
    """The clock of a measurement (module docstring): `clock()` reads it, `clock.time(fn, n)` times n
    calls."""

    def __init__(self, device, threads: int) -> None:
        self.device, self.cpu_time = device, device.type == "cpu" and threads == 1
        self.kind = ("CPU time of the measuring thread (runs of 1 thread)" if self.cpu_time
                     else "wall clock, CUDA synchronised" if device.type == "cuda"
                     else f"wall clock ({threads} threads: load from other processes counts)")

    def __call__(self) -> float:
        return time.thread_time() if self.cpu_time else self.wall()

    def wall(self) -> float:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def time(self, fn, n: int = 1, clock=None) -> float:
        clock = clock or self
        start = clock()
        for _ in range(n):
            fn()
        return clock() - start


@contextmanager
def _as_run(cfg, device, default_threads: int):
    """The run's threads and determinism, set as rir.train sets them, and restored after with the math mode
    that `build` sets; yields the clock to measure the run with."""
    import torch

    from rir.train import seed_everything

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), cudnn.allow_tf32, matmul.allow_tf32,
             cudnn.benchmark)
    threads = cfg.threads or default_threads
    torch.set_num_threads(threads)
    seed_everything(cfg.seed, cfg.deterministic)  # and build() sets the math mode, as in the run
    try:
        yield _Clock(device, threads)
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        cudnn.allow_tf32, matmul.allow_tf32, cudnn.benchmark = saved[3:]


def _startup(params: str, profile: str, run: str, device_type: str) -> None:
    """What every `rir train --run` process does besides its run, as a child process of `_measure_startup`
    (`python -m rir.plan`): the interpreter, the modules `rir train` imports (rir.stages.closure of its
    entry point, the modules a run's code digest reads), the grid's expansion, CUDA's context, the run's code
    digest and a FLOP count (the first imports torch._dynamo, about a second; the first optimizer and
    deterministic mode would too, and they come first in a run: paid once, as a run pays it). Prints the
    marks, on its clock (the thread's CPU time, or the wall clock on a GPU box), of the part that
    metrics.json's wall_seconds times. The final writes are measured in the plan's own process (`_finish`)."""
    import argparse
    import importlib

    import torch

    import rir.cli  # noqa: F401  (the `rir` entry point)
    from rir.stages import ENTRY, closure, run_code_digest

    for name in closure(ENTRY["train"]):
        importlib.import_module(name[:-3].replace("/", ".").removesuffix(".__init__"))
    from rir.commands.train import run_options
    from rir.models import model_summary
    from rir.recipe import TrainConfig

    options = run_options(argparse.Namespace(run=run, params=params, profile=profile or None))
    cfg = TrainConfig.from_dict(options)
    device = torch.device(device_type)
    clock = time.perf_counter if device.type == "cuda" else time.thread_time
    started = clock()
    if device.type == "cuda":
        torch.zeros(1, device=device)
        torch.cuda.synchronize(device)
    run_code_digest(cfg.model)
    model_summary(cfg.model, 10, **cfg.model_overrides)
    print(json.dumps([started, clock()]))


def _measure_startup(params_path: str, profile: str | None, run_id: str, device) -> tuple[float, float]:
    """(seconds of a `rir train --run` process besides its run (`_startup`), the part of them inside
    metrics.json's wall_seconds), in a child process: its CPU time on the CPU (the start-up is one thread's
    work; load beside it does not count), its wall time on a GPU box (CUDA's context is the driver's)."""
    import resource
    import subprocess

    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rir.plan", params_path, profile or "", run_id, device.type],
                          capture_output=True, text=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"measuring the start-up of `rir train` failed:\n{proc.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    started, ended = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall if device.type == "cuda" else cpu, ended - started


def _data(cfg, sizes: tuple[int, int], batch: int, device, clock: _Clock):
    """(arrays of the run's sizes, training loader, evaluation loader, seconds): rir.train's own loaders
    (`_loaders`) over images of the run's counts, measured, plus load_arrays modelled: one sha256 pass and
    two copies (the hash's reads, np.load's) of the prepared file's bytes, at the rate measured here on 32
    MiB. `batch` may cut the training batch (module docstring)."""
    import dataclasses
    import hashlib

    import numpy as np

    from rir.data import CifarArrays
    from rir.train import _loaders, split

    buffer = np.full(32 << 20, 7, dtype=np.uint8)
    load = clock.time(lambda: (hashlib.sha256(buffer).digest(), buffer.copy(), buffer.copy()))
    # Written, as loaded data is.
    image, stats = np.full((1, 32, 32, 3), 127, dtype=np.uint8), (np.full(3, 0.5), np.full(3, 0.25))
    labels = np.zeros(max(sizes), dtype=np.int64)
    arrays = CifarArrays(cfg.dataset, image.repeat(sizes[0], 0), labels[:sizes[0]], image.repeat(sizes[1], 0),
                         labels[:sizes[1]], *stats, 10, "synthetic")
    start = clock()
    train, test = _loaders(dataclasses.replace(cfg, batch_size=batch), arrays, *split(arrays, cfg.holdout),
                           device)
    return arrays, train, test, clock() - start + load * (sizes[0] + sizes[1]) * IMAGE_BYTES / buffer.nbytes


def _measure_config(c: ConfigCost, batch: int, data, device, clock: _Clock, folder: Path) -> None:
    """Build, warm-up, step, evaluation, checkpoint and finish of one run of `c` (module docstring), with the
    run's own code (rir.train's build, _checkpoint and _finish; rir.step's step; rir.evaluate's evaluation)
    on `data` (`_data`); the step is measured at `batch` and scaled per image to the run's batch."""
    import itertools

    import numpy as np
    import torch

    from rir.device import autocast
    from rir.evaluate import evaluate_model
    from rir.loader import DeviceLoader
    from rir.step import train_step
    from rir.train import _checkpoint, _finish, _Run, build

    cfg, (arrays, train_loader, test_loader) = c.cfg, data
    start = clock()
    run = _Run(cfg, device, *build(cfg, 10, device), state_dir=folder / "state", code="0" * 64,
               started=time.perf_counter())
    c.build = clock() - start
    model, step_model, optimizer = run.model, run.step_model, run.optimizer

    batches = itertools.chain.from_iterable(map(train_loader.epoch, itertools.count()))  # epoch after epoch
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)

    def step() -> None:
        x, y = next(batches)
        train_step(step_model, optimizer, x, y, cfg.precision == "bf16", loss_sum, correct)

    first = [clock.time(step) for _ in range(WARMUP_STEPS)]
    n = CUDA_STEPS_PER_ROUND if device.type == "cuda" else 1
    steady = statistics.median(clock.time(step, n) / n for _ in range(TIMED_ROUNDS))
    c.step = steady * cfg.batch_size / batch
    c.source = "measured" if batch == cfg.batch_size else f"measured at batch {batch}"

    full = min(test_loader.batch_size, test_loader.num_samples)  # the evaluation's (first) batch
    n = full if device.type == "cuda" else min(full, max(8, int(REFERENCE_MAX_FLOPS // c.flops_per_image)))
    one = DeviceLoader(np.full((n, 32, 32, 3), 127, dtype=np.uint8), np.zeros(n, dtype=np.int64), (0.5,) * 3,
                       (0.25,) * 3, n, device, train=False, channels_last=cfg.channels_last)
    cold, warm = (clock.time(lambda: evaluate_model(model, one, lambda: autocast(device, cfg.precision)))
                  for _ in range(2))
    c.eval_per_image = warm / n
    c.eval_source = f"measured (batch {n})" if n == full else f"measured at batch {n} of {full}"
    c.warmup = sum(max(0.0, t - steady) for t in first) + max(0.0, cold - warm)

    # Files on the wall clock: their fsyncs wait for the disk, which no CPU clock sees. The finish is the
    # run's FLOP count, environment and files (metrics.json last).
    c.checkpoint = min(clock.time(lambda: _checkpoint(run), clock=clock.wall) for _ in range(2))
    c.finish = min(clock.time(lambda: _finish(run, folder, arrays, "completed", None), clock=clock.wall)
                   for _ in range(2))
    c.fixed_source, c.measured = "measured", True


def _measure(configs: dict[tuple, ConfigCost], run_id: str, sizes: tuple[int, int], params_path: str,
             profile: str | None, device_name: str, budget_s: float, progress) -> dict:
    """Measure the start-up, the data and the configs in order of cost while `budget_s` (wall seconds after
    the first config) lasts; returns what every run shares: the device, the clocks, the start-up, the data's
    seconds by (training images, evaluation images)."""
    import tempfile

    import torch

    from rir.env import device_name as name_of
    from rir.train import EVAL_BATCH_SIZE

    device = torch.device(device_name)
    default_threads = torch.get_num_threads()
    progress("measuring the start-up of a `rir train` process, in a child process")
    startup, startup_in_train = _measure_startup(params_path, profile, run_id, device)
    order = sorted(configs.values(), key=lambda c: c.step_flops)
    loaders: dict[tuple, tuple] = {}
    data: dict[tuple, float] = {}
    clocks, spent = set(), 0.0
    with tempfile.TemporaryDirectory(prefix="rir-plan-") as folder:
        for i, c in enumerate(order):
            cfg, started, batch = c.cfg, time.perf_counter(), c.cfg.batch_size
            if not i and device.type == "cpu":  # the cheapest config is always measured, in a short step
                batch = min(batch, max(8, int(REFERENCE_MAX_FLOPS // (3 * c.flops_per_image))))
            elif i:  # warm-up and timed steps and two evaluation batches, at the best FLOP/s seen so far
                steps = WARMUP_STEPS + TIMED_ROUNDS * (CUDA_STEPS_PER_ROUND if device.type == "cuda" else 1)
                images = min(max(cfg.batch_size, EVAL_BATCH_SIZE), cfg.holdout or sizes[1])
                rate = max(m.step_flops / m.step for m in order if m.measured)
                if spent + (steps * c.step_flops + 2 * c.flops_per_image * images) / rate > budget_s:
                    continue
            progress(f"measuring {c.label}" + (f" at batch {batch}" if batch != cfg.batch_size else "")
                     + f" ({cfg.precision}, {cfg.threads or default_threads} threads)")
            with _as_run(cfg, device, default_threads) as clock:
                key = (cfg.holdout, batch, cfg.channels_last, cfg.augment, cfg.drop_last)
                if key not in loaders:
                    arrays, train, test, seconds = _data(cfg, sizes, batch, device, clock)
                    loaders[key] = arrays, train, test
                    data.setdefault((sizes[0] - cfg.holdout, cfg.holdout or sizes[1]), seconds)
                _measure_config(c, batch, loaders[key], device, clock, Path(folder) / str(i))
                clocks.add(clock.kind)
            spent += (time.perf_counter() - started) if i else 0.0
    return {"device": f"{device.type} ({name_of(device)})", "clock": "; ".join(sorted(clocks)),
            "startup": startup, "startup_in_train": startup_in_train, "data": data}


def _fill_from_flops(configs: dict[tuple, ConfigCost]) -> None:
    measured = [c for c in configs.values() if c.step]
    if not measured:
        raise UserError("no run of the profile has a measured throughput: no --bench-json record matches a "
                        "run's model, overrides, batch size and math mode (or --measure-budget left no time)")
    for c in configs.values():
        if c.step is None:
            near = min(measured, key=lambda m: abs(math.log(m.flops_per_image / c.flops_per_image)))
            c.step = c.step_flops * near.step / near.step_flops
            c.eval_per_image = c.flops_per_image * near.eval_per_image / near.flops_per_image
            c.warmup, c.build, c.checkpoint, c.finish = near.warmup, near.build, near.checkpoint, near.finish
            c.source = c.eval_source = f"extrapolated: FLOPs at {near.label}'s FLOP/s"
            c.fixed_source = f"extrapolated: {near.label}'s" if near.measured else near.fixed_source


def _card_estimate(params: dict, profile: str, card: str) -> dict:
    """The device-hours of `profile` on `card` from FLOPs, each run at its math mode's dense peak and the
    assumed utilisation (module docstring); `optional` prices each optional family's runs beyond the default
    target's, as a share of the default target."""
    from rir.cards import PEAKS

    if not PEAKS.get(card):
        known = ", ".join(c for c, peaks in PEAKS.items() if peaks)
        raise UserError(f"--card {card!r}: no peak known for it (known: {known})")
    resolved, runs = _runs(params, profile)
    out = _card_hours(resolved, runs, card)
    default_ids = {run.run_id for run, _ in runs}
    out["optional"] = {}
    for name in resolved.get("optional_families", {}):
        extra = [(run, cfg) for run, cfg in _runs(params, profile, name)[1] if run.run_id not in default_ids]
        hours = _card_hours(resolved, extra, card)["hours"] if extra else 0.0
        out["optional"][name] = {"new_runs": len(extra), "hours": hours,
                                 "percent_of_default": 100 * hours / out["hours"] if out["hours"] else None}
    return out


def _card_hours(resolved: dict, runs: list, card: str) -> dict:
    from rir.cards import PEAKS, UTILISATION, seconds_on
    from rir.timelimits import train_flops

    n_train, n_test = data_sizes(resolved)
    configs = _configs(runs)
    hours = flat_hours = 0.0
    modes: dict[str, int] = {}
    for _, cfg in runs:
        fwd = configs[_config_key(cfg.to_dict())].flops_per_image
        flops = train_flops(cfg, fwd, (n_train, n_test))
        modes[cfg.precision] = modes.get(cfg.precision, 0) + 1
        hours += seconds_on(card, cfg.precision, flops, fwd) / 3600
        flat_hours += flops / (FLAT_UTILISATION * PEAKS[card][cfg.precision]) / 3600
    return {
        "kind": "estimate from FLOPs, not a measurement", "profile": resolved["profile"], "runs": len(runs),
        "card": card, "peaks_used": {mode: {"dense_peak_flops_per_s": PEAKS[card][mode], "runs": n}
                                     for mode, n in sorted(modes.items())},
        "peak_source": "NVIDIA data sheet, dense (rir.cards.PEAKS)",
        "assumed_utilisation": {f">= {m:g} FLOP/image" if m else "smaller nets": u for m, u in UTILISATION},
        "hours": hours, "hours_at_flat_10_percent": flat_hours, "target_h100_hours": TARGET_H100_HOURS,
    }


def make_plan(params_path: str, profile: str | None = None, device: str = "auto",
              bench_json: list[str] | None = None, measure_budget_s: float = 60.0, card: str = DEFAULT_CARD,
              progress=lambda m: print(f"rir plan: {m}", file=sys.stderr, flush=True)) -> dict:
    """The plan of `profile` (default: params' own) on `device`, measured or from --bench-json records."""
    import torch

    from rir.config import load_params

    params = load_params(params_path)
    paper = "paper" if "paper" in params.get("profiles", {}) else None
    estimate = _card_estimate(params, paper or profile, card)  # a bad --card is refused before measuring
    resolved, runs = _runs(params, profile)
    sizes = data_sizes(resolved)
    configs = _configs(runs)
    if not configs:
        raise UserError(f"profile {resolved['profile']!r} has no runs")
    started = time.perf_counter()
    if bench_json:
        common = {"device": _from_bench_json(configs, bench_json), "clock": "--bench-json records",
                  "startup": 0.0, "startup_in_train": 0.0, "data": {}}
    else:
        device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        common = _measure(configs, runs[0][0].run_id, sizes, params_path, profile, device, measure_budget_s,
                          progress)
    measuring = time.perf_counter() - started
    _fill_from_flops(configs)

    rows = [_row(run, cfg, configs[_config_key(cfg.to_dict())], sizes, common) for run, cfg in runs]
    total = sum(r["estimated_seconds"] for r in rows)
    parts = {k: sum(r["seconds"][k] for r in rows) for k in rows[0]["seconds"]}
    cpu_runs = not bench_json and common["device"].startswith("cpu")
    measured = sum(r["estimated_seconds"] for r in rows if r["measured"])
    return {
        "profile": resolved["profile"], "data": resolved.get("data"), "throughput_from": common["device"],
        "predicts": PREDICTS, "runs": rows, "total_seconds": total, "total_device_hours": total / 3600,
        "summary": {
            "clock": common["clock"], "startup_seconds_per_run": common["startup"], "parts_seconds": parts,
            "startup_in_train_seconds": common["startup_in_train"],  # the start-up's part in wall_seconds
            "wall_seconds_part": total - parts["finish"] - len(rows) * (common["startup"]
                                                                        - common["startup_in_train"]),
            "measuring_seconds": 0.0 if bench_json else measuring, "bench_json": bool(bench_json),
            "configs": len(configs), "configs_measured": sum(c.measured for c in configs.values()),
            "runs_measured": sum(r["measured"] for r in rows), "measured_seconds": measured,
            "extrapolated_seconds": total - measured,
        },
        "on_this_machine": _on_these_cores(rows, os.cpu_count() or 1) if cpu_runs else None,
        "card_estimate": estimate,
    }


def _row(run, cfg, c: ConfigCost, sizes: tuple[int, int], common: dict) -> dict:
    """One run's row of the plan: its parts, in seconds, from its config's costs and what every run shares."""
    train_n, eval_images = sizes[0] - cfg.holdout, cfg.holdout or sizes[1]
    steps = train_n // cfg.batch_size if cfg.drop_last else -(-train_n // cfg.batch_size)
    data = common["data"].get((train_n, eval_images), max(common["data"].values(), default=0.0))
    seconds = {"startup": common["startup"], "data": data, "build": c.build, "warmup": c.warmup,
               "finish": c.finish, "steps": cfg.epochs * steps * c.step,
               "evaluation": cfg.epochs * eval_images * c.eval_per_image,
               "checkpoints": cfg.epochs * c.checkpoint}
    return {
        "run_id": run.run_id, "families": list(run.families), "model": run.model,
        "model_overrides": dict(run.model_overrides), "dataset": run.dataset, "seed": run.seed,
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "threads": cfg.threads,
        "steps_per_epoch": steps, "images_per_epoch": min(train_n, steps * cfg.batch_size),
        "eval_images": eval_images, "flops_per_image": c.flops_per_image, "step_seconds": c.step,
        "train_images_per_s": cfg.batch_size / c.step,
        "eval_seconds_per_epoch": eval_images * c.eval_per_image,
        "fixed_seconds": sum(seconds[k] for k in ("startup", "data", "build", "warmup", "finish")),
        "seconds": seconds, "estimated_seconds": sum(seconds.values()), "measured": c.measured,
        "throughput_source": c.source,
        "sources": {"step": c.source, "evaluation": c.eval_source, "fixed": c.fixed_source}}


def _on_these_cores(rows: list[dict], cores: int) -> dict | None:
    """The profile's wall time when `snakemake --cores all` runs it on this CPU: as many runs at once as
    their threads fit in the cores, each run to the first free slot, longest first (None when a run takes
    PyTorch's default threads, all the cores)."""
    threads = max(r["threads"] for r in rows)
    if not threads:
        return None
    slots = [0.0] * max(1, min(len(rows), cores // threads))
    for seconds in sorted((r["estimated_seconds"] for r in rows), reverse=True):
        slots[slots.index(min(slots))] += seconds
    return {"cores": cores, "runs_at_once": len(slots), "seconds": max(slots)}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.3g} min" if seconds < 7200 else f"{seconds / 3600:.3g} h"


def format_plan(plan: dict) -> str:
    """The human-readable table of `make_plan`'s result."""
    head = ("run_id", "families", "model", "seed", "epochs", "steps/ep", "step ms", "eval s/ep", "fixed s",
            "estimate", "source")
    rows = []
    for r in plan["runs"]:
        numbers = (1e3 * r["step_seconds"], r["eval_seconds_per_epoch"], r["fixed_seconds"])
        rows.append((r["run_id"], ",".join(r["families"]), r["model"], str(r["seed"]), str(r["epochs"]),
                     str(r["steps_per_epoch"]), *(f"{x:.3g}" for x in numbers),
                     _duration(r["estimated_seconds"]), r["throughput_source"]))
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
             for row in (head, *rows)]
    hours = plan["total_device_hours"]
    lines.append(f"total: {len(plan['runs'])} runs, {_duration(hours * 3600)} ({hours:.3g} device-hours) on "
                 f"{plan['throughput_from']} (profile {plan['profile']}, {plan['data']} data)")
    s = plan.get("summary")
    if s:
        p = {k: _duration(v) for k, v in s["parts_seconds"].items()}
        lines += [
            f"predicted: {plan['predicts']}; metrics.json's wall_seconds, summed: "
            f"{_duration(s['wall_seconds_part'])}",
            f"of which: training steps {p['steps']}, evaluation {p['evaluation']}, checkpoints "
            f"{p['checkpoints']}; per run: start-up {s['startup_seconds_per_run']:.3g} s; in all: data "
            f"{p['data']}, model build {p['build']}, warm-up {p['warmup']}, final writes {p['finish']}",
            "from --bench-json records: the step alone; evaluation counted as a third of a training image; "
            "start-up, data, warm-up and checkpoints NOT included" if s["bench_json"] else
            f"measured here: {s['configs_measured']} of {s['configs']} model configs ({s['runs_measured']} "
            f"runs, {_duration(s['measured_seconds'])} of the estimate): build, warm-up, step, evaluation, "
            f"checkpoint, writes; extrapolated by FLOPs: {s['configs'] - s['configs_measured']} configs "
            f"({len(plan['runs']) - s['runs_measured']} runs, {_duration(s['extrapolated_seconds'])}); "
            f"start-up measured in a child process, data loading modelled; clock: {s['clock']}; measuring "
            f"took {s['measuring_seconds']:.3g} s",
        ]
    here = plan.get("on_this_machine")
    if here:
        lines.append(f"on this machine's {here['cores']} cores, {here['runs_at_once']} runs at a time (as "
                     f"`snakemake --cores all` runs them): about {_duration(here['seconds'])}, the evaluate "
                     f"and ablate jobs not included")
    h = plan["card_estimate"]
    peaks = ", ".join(f"{mode} {p['dense_peak_flops_per_s'] / 1e12:g} TFLOP/s ({p['runs']} runs)"
                      for mode, p in h["peaks_used"].items())
    lines += [
        f"{h['card']} ESTIMATE (from FLOPs, not measured): profile {h['profile']}, {h['runs']} runs, "
        f"{h['hours']:.2f} {h['card']}-hours at 35 % of the dense peak of each run's math mode for nets "
        f">= 1 GFLOP/image and 15 % below; {h['hours_at_flat_10_percent']:.2f} h at a flat 10 % "
        f"(target: <= {h['target_h100_hours']:g} H100-hours)",
        f"peak used ({h['card']}, {h['peak_source']}): {peaks}",
    ]
    for name, o in h.get("optional", {}).items():
        pct = o["percent_of_default"]
        share = "" if pct is None else f", +{pct:.0f} % of the default"
        lines.append(f"optional family {name} (`snakemake {name}`): {o['new_runs']} runs beyond the default "
                     f"target's, {o['hours']:.2f} {h['card']}-hours at the same assumptions{share}")
    return "\n".join(lines)


if __name__ == "__main__":  # the start-up child of _measure_startup
    _startup(*sys.argv[1:5])
