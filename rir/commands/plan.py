"""`rir plan`: the runs of a profile (run id, families, model, dataset, seed, epochs, steps per epoch) with
the estimated wall time of each `rir train` process on this device (start-up, data, build, warm-up, the
epochs' steps, evaluations and checkpoints, the final writes), the total, and an estimate of the paper
profile on a card (default H100 SXM) at the dense peak of each run's math mode, which it prints.

How the costs are obtained (measured here with each run's own threads and code, read from `rir bench --json`
files, or extrapolated by FLOPs) is in `rir.plan`; every row says which, and the summary says what was
measured, what extrapolated, with which clock and in how long. Progress goes to stderr; --json prints one
JSON object.
"""

from __future__ import annotations

import argparse
import json

HELP = "list the runs of a profile and estimate their cost on this device"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", help="profile of params.yaml (default: the file's `profile`)")
    parser.add_argument("--bench-json", action="append", default=[], metavar="FILE",
                        help="a `rir bench --json` record to take the step time from (repeatable); nothing "
                             "is measured then, and start-up, warm-up and checkpoints are left out")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="device to measure on (default: auto, CUDA if available)")
    parser.add_argument("--measure-budget", type=float, default=60.0, metavar="SECONDS",
                        help="wall seconds of measuring after the cheapest model config; the configs left "
                             "are extrapolated by FLOPs (default: %(default)s; 0: the cheapest alone)")
    parser.add_argument("--card", default="H100 SXM",
                        help="card of the paper profile's estimate (H100 SXM, H100 PCIe, H100 NVL, H200, "
                             "A100, L40S; default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args: argparse.Namespace) -> int:
    from rir.errors import UserError
    from rir.plan import format_plan, make_plan

    if args.measure_budget < 0:
        raise UserError(f"--measure-budget {args.measure_budget}: must not be negative")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda was requested but no CUDA GPU is available (use --device cpu)")
    plan = make_plan(args.params, args.profile, args.device, args.bench_json, args.measure_budget, args.card)
    print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
    return 0
