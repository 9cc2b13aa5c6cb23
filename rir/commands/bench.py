"""`rir bench`: training images/s, step time, FLOPs and fraction of peak of one model on this device.

Synthetic images of the real shapes (no data set needed); a table by default, one JSON object with --json.
Progress goes to stderr, one line per phase. Measures; never a test (machines are noisy).
"""

from __future__ import annotations

import argparse
import json

from rir.errors import UserError

HELP = "training throughput, step time, FLOPs and utilisation of one model on this device"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="rir_18_wide", help="registered model (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per step (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if _cuda_hint() else "cpu", choices=("cpu", "cuda"),
                        help="default: cuda when a GPU is visible, else cpu")
    parser.add_argument("--precision", default="tf32", choices=("fp32", "tf32", "bf16"),
                        help="math mode: exact fp32, TF32, bf16 autocast (default: %(default)s)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC images and weights")
    parser.add_argument("--compile", action="store_true", help="torch.compile both loops")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for PyTorch (0: PyTorch's choice)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="model option for create_model (YAML value), repeatable: --override width=16")
    parser.add_argument("--no-bare", action="store_true",
                        help="skip the bare PyTorch loop (saves a second compilation; no step/bare ratio)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def _cuda_hint() -> bool:
    """Whether a GPU is visible, without importing torch (keeps `rir --help` instant)."""
    import shutil

    return shutil.which("nvidia-smi") is not None


def parse_overrides(items: list[str]) -> dict:
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--override {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    return overrides


def run(args: argparse.Namespace) -> int:
    import torch

    from rir.bench import BenchConfig, format_table, run_bench

    if args.threads < 0:
        raise UserError(f"--threads {args.threads}: must not be negative")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = BenchConfig(model=args.model, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                      device=args.device, precision=args.precision, channels_last=args.channels_last,
                      compile=args.compile, model_overrides=parse_overrides(args.override),
                      bare=not args.no_bare)
    result = run_bench(cfg)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
