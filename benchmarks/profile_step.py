"""What one training step spends its time on: torch.profiler over THE project's step (rir.step.train_step
fed by a DeviceLoader), top ops by self time, as markdown.

    python benchmarks/profile_step.py --model rir_18 --batch-size 32 --steps 3 [--device cpu|cuda]
        [--precision bf16] [--channels-last] [--override width=8] > benchmarks/profile-rir_18-cpu.md
"""

from __future__ import annotations

import argparse
import platform
from datetime import UTC, datetime

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from rir.commands.bench import parse_overrides
from rir.env import cpu_name
from rir.loader import DeviceLoader
from rir.models import create_model
from rir.recipe import TrainConfig
from rir.step import make_optimizer, train_step

TOP = 15  # rows of the ops table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="rir_18")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--override", action="append", default=[])
    args = parser.parse_args()

    device = torch.device(args.device)
    overrides = parse_overrides(args.override)
    recipe = TrainConfig()
    rng = np.random.default_rng(0)
    n = args.batch_size * (args.steps + 1)
    loader = DeviceLoader(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                          rng.integers(0, 10, n).astype(np.int64), (0.5,) * 3, (0.25,) * 3, args.batch_size,
                          device, channels_last=args.channels_last)
    fmt = torch.channels_last if args.channels_last else torch.preserve_format
    model = create_model(args.model, 10, **overrides).to(device, memory_format=fmt)
    optimizer = make_optimizer(model, recipe.lr, recipe.momentum, recipe.sgd_weight_decay(),
                               recipe.decay_norm_and_bias, device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    batches = loader.epoch(0)
    x, y = next(batches)
    train_step(model, optimizer, x, y, args.precision == "bf16", loss_sum, correct)  # warm-up step

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            with record_function("loader"):
                x, y = next(batches)
            with record_function("train_step"):
                train_step(model, optimizer, x, y, args.precision == "bf16", loss_sum, correct)
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=TOP, max_name_column_width=40)
    phases = {e.key: e.cpu_time_total / 1e3 / args.steps for e in prof.key_averages()
              if e.key in ("loader", "train_step")}  # ms per step, host side
    name = torch.cuda.get_device_name() if device.type == "cuda" else cpu_name()
    model_name = f"{args.model} {overrides}" if overrides else args.model
    print(f"# Profile of one training step: {model_name}, batch {args.batch_size}, "
          f"{args.precision}{', channels_last' if args.channels_last else ''}, {args.device}\n\n"
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {name}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, host {platform.node()}. torch.profiler over {args.steps} steps after one "
          f"warm-up step; top {TOP} ops by self time (`loader` and `train_step` are the two phases of a "
          "step; their rows count everything inside them).\n\n"
          f"Per step (host wall time inside each phase): loader {phases.get('loader', 0):.1f} ms, "
          f"train_step {phases.get('train_step', 0):.1f} ms.\n\n```\n" + table + "```")


if __name__ == "__main__":
    main()
