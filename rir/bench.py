"""`rir bench`: training throughput, step time, FLOPs and utilisation of one model on this device.

What is measured, on synthetic uint8 3x32x32 images of the real shapes in a `DeviceLoader` (no data set):
- the data pipeline alone: images/s of the loader's gather, crop, flip and normalization;
- the project's step: one loader batch plus `rir.step.train_step` (what `rir.train.train` runs), with the
  recipe's optimizer (momentum 0.9, weight decay on weights, fused SGD on CUDA) and the chosen precision,
  memory format and compilation;
- a bare PyTorch loop on the same model and batch: one fixed tensor, plain `torch.optim.SGD`, the same
  precision settings, no loader, no accumulation. step/bare is the overhead the project adds.
The two loops alternate (step by step on the CPU, in 5 rounds on CUDA) so that noise from other processes on
a shared machine hits both alike.

Step times come from CUDA events recorded around each step (no synchronisation inside the timed region; one
`torch.cuda.synchronize` before and after it) or from the wall clock on the CPU, where a step is
synchronous. FLOPs are `torch.utils.flop_counter` counts of one forward pass (2 FLOPs per multiply-add);
a training step is taken as 3x forward (backward = 2x forward), the usual convention. The bench runs in the
math mode `precision` names (rir.device: exact fp32, TF32, bf16 autocast), and the fraction of peak uses
the card's dense peak for the mode that really ran (`PEAKS`, by card; an unknown card has none).
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from rir.cards import PEAKS, card_of  # noqa: F401  (the card table, torch-free: rir/cards.py)

SYNTHETIC_IMAGES_MAX = 20_000  # at most this many synthetic images live on the device (~96 MB padded uint8)


@dataclass
class BenchConfig:
    """One benchmark. Counts are steps (SGD updates) or images; batch_size in images per step."""

    model: str = "rir_18_wide"  # registered model name
    batch_size: int = 500  # images per step (paper: 500)
    steps: int = 20  # timed steps of each loop
    warmup: int = 3  # untimed steps first (cuDNN autotuning, compilation, allocator)
    device: str = "cpu"  # cpu | cuda
    precision: str = "tf32"  # math mode: fp32 (exact) | tf32 | bf16 (rir.device), as the recipe's default
    channels_last: bool = False
    compile: bool = False
    model_overrides: dict = field(default_factory=dict)
    num_classes: int = 10  # CIFAR-10; CIFAR-100 changes only the classifier (0.1 % of the FLOPs)
    seed: int = 0
    bare: bool = True  # also time the bare PyTorch loop (`rir plan` needs the project's step alone)


def peak_flops(device_name: str, mode: str) -> tuple[float | None, str | None]:
    """(dense peak FLOP/s, `mode`) of a device in math mode `mode` (fp32 | tf32 | bf16, the mode that really
    ran: rir.device.math_mode); (None, None) for a card not in `PEAKS`."""
    peaks = PEAKS[card_of(device_name)]
    return (peaks[mode], mode) if peaks else (None, None)


def _check(cfg: BenchConfig) -> None:
    from rir.device import MATH_MODES
    from rir.errors import UserError
    from rir.models import list_models

    if cfg.model not in list_models():
        raise UserError(f"unknown model {cfg.model!r} (see `rir models`)")
    for key in ("batch_size", "steps"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"--{key.replace('_', '-')} {getattr(cfg, key)}: must be a positive integer")
    if cfg.warmup < 0:
        raise UserError(f"--warmup {cfg.warmup}: must not be negative")
    if cfg.device not in ("cpu", "cuda"):
        raise UserError(f"--device {cfg.device!r}: must be cpu or cuda")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA GPU is available (use --device cpu)")
    if cfg.precision not in MATH_MODES:
        raise UserError(f"--precision {cfg.precision!r}: must be one of {', '.join(MATH_MODES)}")


class _Timer:
    """Per-step durations without synchronising inside the timed region: CUDA events on the GPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def durations(self) -> list[float]:
        """Seconds between consecutive marks (call after synchronising)."""
        pairs = zip(self.marks, self.marks[1:], strict=False)
        if self.cuda:
            return [a.elapsed_time(b) / 1e3 for a, b in pairs]
        return [b - a for a, b in pairs]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(loader, start_epoch: int = 0):
    """Endless loader batches, epoch after epoch, as `train()` draws them."""
    epoch = start_epoch
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


def _progress(message: str) -> None:
    print(f"rir bench: {message}", file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run_bench(cfg: BenchConfig, progress=_progress) -> dict:
    """Measure `cfg`; returns the JSON record (keys documented in benchmarks/README.md)."""
    from rir.device import apply_math_mode
    from rir.models import model_summary
    from rir.recipe import TrainConfig
    from rir.step import train_step
    from rir.train import build

    _check(cfg)
    summary = model_summary(cfg.model, cfg.num_classes, **cfg.model_overrides)  # refuses bad options first
    device = torch.device(cfg.device)
    apply_math_mode(cfg.precision)  # as train() does: exact fp32 really is exact, tf32 really is TF32
    torch.backends.cudnn.benchmark = True  # as train() does outside deterministic mode
    torch.manual_seed(cfg.seed)
    recipe = TrainConfig(model=cfg.model, model_overrides=dict(cfg.model_overrides), precision=cfg.precision,
                         channels_last=cfg.channels_last, compile=cfg.compile)  # the paper's recipe otherwise
    batches = _batches(_synthetic_loader(cfg, device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    progress(f"data pipeline: {cfg.steps} batches of {cfg.batch_size} on {device}")
    loader_images_per_s = _loader_speed(batches, cfg, device)

    # The project's step: the run as `rir train` builds it (the recipe's optimizer), fed by the loader.
    if cfg.compile:  # a fresh compilation per bench: earlier ones in this process (`rir plan`) must not count
        torch._dynamo.reset()  # toward Dynamo's recompile limit, past which it silently runs eagerly
    _, step_model, optimizer, _ = build(recipe, cfg.num_classes, device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)

    def project_step() -> None:
        x, y = next(batches)
        train_step(step_model, optimizer, x, y, cfg.precision == "bf16", loss_sum, correct)

    loops = [project_step] + ([_bare_step(cfg, recipe, next(batches), device)] if cfg.bare else [])
    progress(f"warmup: {cfg.warmup} steps of each loop" + (" (compiling)" if cfg.compile else ""))
    for _ in range(cfg.warmup):
        for step_fn in loops:
            step_fn()
    _sync(device)
    times, project_wall = _time_loops(loops, cfg, device, progress)
    if not math.isfinite(loss_sum.item()):
        progress("warning: the loss of the synthetic batches became NaN/inf (timings are still valid)")
    return _record(cfg, summary, device, times[0], times[1] if cfg.bare else None,
                   cfg.steps * cfg.batch_size / project_wall, loader_images_per_s,
                   optimizer.defaults.get("fused") is True)


def _synthetic_loader(cfg: BenchConfig, device: torch.device):
    """A training DeviceLoader over random images: enough for every step without repeating an epoch too
    often, capped for memory."""
    from rir.loader import DeviceLoader

    n_images = cfg.batch_size * max(1, min(cfg.warmup + cfg.steps, SYNTHETIC_IMAGES_MAX // cfg.batch_size))
    rng = np.random.default_rng(cfg.seed)
    images = rng.integers(0, 256, size=(n_images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, cfg.num_classes, size=n_images).astype(np.int64)
    return DeviceLoader(images, labels, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), cfg.batch_size, device,
                        train=True, seed=cfg.seed, channels_last=cfg.channels_last)


def _loader_speed(batches, cfg: BenchConfig, device: torch.device) -> float:
    """Images per second of the data pipeline alone."""
    for _ in range(cfg.warmup):
        next(batches)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        next(batches)
    _sync(device)
    return cfg.steps * cfg.batch_size / (time.perf_counter() - t0)


def _bare_step(cfg: BenchConfig, recipe, batch, device: torch.device):
    """The bare loop's step: the same architecture and settings, one fixed batch, plain SGD, nothing else."""
    from rir.models import create_model
    from rir.step import compile_model

    bare = create_model(cfg.model, cfg.num_classes, **cfg.model_overrides)
    bare.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
    optimizer = torch.optim.SGD(bare.parameters(), lr=recipe.lr, momentum=recipe.momentum)
    step_model = compile_model(bare) if cfg.compile else bare
    bx, by = batch[0].clone(), batch[1]

    def bare_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            loss = F.cross_entropy(step_model(bx), by)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return bare_step


def _time_loops(loops: list, cfg: BenchConfig, device: torch.device, progress) -> tuple[list, float]:
    """([step durations of each loop], wall seconds of the first loop's steps). The loops alternate, so that
    load from other processes hits both alike: every step on the CPU (a CPU step is synchronous anyway); 5
    rounds on CUDA, whose steps run back to back, unsynchronised."""
    rounds = cfg.steps if device.type == "cpu" else min(cfg.steps, 5)
    per_round = [cfg.steps // rounds + (i < cfg.steps % rounds) for i in range(rounds)]
    loops_said = "the project's loop" + (" and of the bare loop" if len(loops) > 1 else "")
    progress(f"timing: {cfg.steps} steps of {loops_said}, in {rounds} rounds")
    times: list[list[float]] = [[] for _ in loops]
    first_wall = 0.0
    for n in per_round:
        for i, step_fn in enumerate(loops):
            timer = _Timer(device)
            _sync(device)
            start = time.perf_counter()
            timer.mark()
            for _ in range(n):
                step_fn()
                timer.mark()
            _sync(device)
            if i == 0:
                first_wall += time.perf_counter() - start
            times[i].extend(timer.durations())
    return times, first_wall


def _record(cfg: BenchConfig, summary: dict, device: torch.device, project_times: list[float],
            bare_times: list | None, train_images_per_s: float, loader_images_per_s: float,
            fused_sgd: bool) -> dict:
    """The JSON record of one bench (benchmarks/README.md); `summary`: rir.models.model_summary's."""
    from rir.device import math_mode
    from rir.env import device_name

    fwd = summary["flops_per_image"]
    if device.type == "cuda":
        peak_memory, memory_kind = torch.cuda.max_memory_allocated(device), "cuda_max_allocated"
    else:  # ru_maxrss is KiB on Linux; the whole process's high-water mark, both models included
        peak_memory, memory_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host_max_rss"
    name = device_name(device)
    mode = math_mode(cfg.precision, device)
    peak, peak_kind = peak_flops(name, mode["math_mode"]) if device.type == "cuda" else (None, None)
    step_median = statistics.median(project_times)
    bare_median = statistics.median(bare_times) if bare_times else None
    achieved = 3 * fwd * train_images_per_s
    return {
        "model": cfg.model, "model_overrides": cfg.model_overrides, "batch_size": cfg.batch_size,
        "steps": cfg.steps, "warmup": cfg.warmup, "device": cfg.device, "device_name": name,
        "precision": cfg.precision, **mode, "card": card_of(name) if device.type == "cuda" else None,
        "channels_last": cfg.channels_last, "compile": cfg.compile, "fused_sgd": fused_sgd,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "params": summary["params"],
        "synthetic": True,
        "flops_per_image_forward": fwd, "flops_per_image_train": 3 * fwd,
        "loader_images_per_s": loader_images_per_s,
        "train_images_per_s": train_images_per_s,
        "step_time_median_s": step_median, "step_time_p90_s": _percentile(project_times, 90),
        "step_time_min_s": min(project_times),
        "bare_step_time_median_s": bare_median,
        "bare_step_time_p90_s": _percentile(bare_times, 90) if bare_times else None,
        "bare_step_time_min_s": min(bare_times) if bare_times else None,
        "bare_images_per_s": cfg.batch_size / bare_median if bare_times else None,
        "step_over_bare": step_median / bare_median if bare_times else None,
        # Other processes only ever add time: on a shared machine the fastest steps are the cleanest pair.
        "step_over_bare_min": min(project_times) / min(bare_times) if bare_times else None,
        "loader_over_step": loader_images_per_s / train_images_per_s,
        "achieved_flops_per_s": achieved,
        "peak_flops_per_s": peak, "peak_kind": peak_kind,
        "peak_fraction": achieved / peak if peak else None,
        "peak_memory_bytes": int(peak_memory), "peak_memory_kind": memory_kind,
    }


def _si(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def format_table(r: dict) -> str:
    """The human-readable report of one `run_bench` record."""
    flags = [r["precision"]] + (["channels_last"] if r["channels_last"] else []) + (
        ["compile"] if r["compile"] else [])
    rows = [
        ("model", f"{r['model']} {r['model_overrides'] or ''}".strip()),
        ("device", f"{r['device']} ({r['device_name']}, {r['threads']} threads)"),
        ("settings", f"batch {r['batch_size']}, {r['steps']} steps after {r['warmup']} warmup, "
                     f"{' + '.join(flags)}, fused SGD {'on' if r['fused_sgd'] else 'off'}"),
        ("data pipeline alone", f"{r['loader_images_per_s']:,.0f} images/s"),
        ("training", f"{r['train_images_per_s']:,.1f} images/s"),
        ("step time", f"median {r['step_time_median_s'] * 1e3:.2f} ms, "
                      f"p90 {r['step_time_p90_s'] * 1e3:.2f} ms"),
        ("bare PyTorch step", "not measured" if r["step_over_bare"] is None else
         f"median {r['bare_step_time_median_s'] * 1e3:.2f} ms"),
        ("step / bare", "n/a" if r["step_over_bare"] is None else
         f"{r['step_over_bare']:.3f} of medians, {r['step_over_bare_min']:.3f} of minima (target <= 1.05)"),
        ("loader / step speed", f"{r['loader_over_step']:.0f}x (target >= 20x)"),
        ("FLOPs per image", f"{_si(r['flops_per_image_forward'], 'FLOP')} forward, "
                            f"{_si(r['flops_per_image_train'], 'FLOP')} training (3x forward)"),
        ("achieved", f"{_si(r['achieved_flops_per_s'], 'FLOP/s')}"),
        ("fraction of peak", "n/a (device not in the peak table)" if r["peak_fraction"] is None else
         f"{100 * r['peak_fraction']:.1f} % of dense {r['peak_kind']} "
         f"{_si(r['peak_flops_per_s'], 'FLOP/s')}"),
        ("peak memory", f"{r['peak_memory_bytes'] / 2**20:,.0f} MiB ({r['peak_memory_kind']})"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows) + "\n(synthetic images of the real shapes)"
