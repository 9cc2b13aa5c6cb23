"""`rir ablate RUN_DIR --out CSV`: Figure 3's stream-zeroing ablation of one trained run."""

from __future__ import annotations

import argparse

HELP = "Figure 3: accuracy with each stream's learned connections zeroed, one layer at a time (both readings)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished run (holds model.pt)")
    parser.add_argument("--out", required=True, help="the CSV to write")
    parser.add_argument("--data-root", help="where the prepared data lives (default: the run's config)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def run(args: argparse.Namespace) -> int:
    from rir.ablation import ablate_run
    from rir.gpu import apply_gpu_lease

    apply_gpu_lease(args.device, holder=f"ablate {args.run_dir}")  # before anything touches CUDA (rir.gpu)
    rows = ablate_run(args.run_dir, args.out, data_root=args.data_root, device=args.device)
    worst = min(rows, key=lambda r: r["accuracy"])
    print(f"wrote {args.out}: {len(rows)} ablations; baseline {rows[0]['baseline_accuracy']:.2f}%, "
          f"lowest {worst['accuracy']:.2f}% (layer {worst['layer']}, {worst['stream']} stream, "
          f"{worst['reading']})")
    return 0
