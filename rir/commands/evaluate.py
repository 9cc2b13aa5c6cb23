"""`rir evaluate RUN_DIR`: recompute the test accuracy of a finished run from model.pt; writes eval.json."""

from __future__ import annotations

import argparse

HELP = "test accuracy of a trained run (from RUN_DIR/model.pt); writes RUN_DIR/eval.json (or --out)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `rir train`")
    parser.add_argument("--data-root", help="prepared data folder, if not the one the run was trained from")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="where to write the evaluation (default: RUN_DIR/eval.json; the pipelines: "
                             "results/<profile>/evaluations/<run_id>.json)")


def run(args: argparse.Namespace) -> int:
    from rir.evaluate import evaluate_run
    from rir.gpu import apply_gpu_lease

    apply_gpu_lease(args.device)  # before anything touches CUDA (rir.gpu)
    result = evaluate_run(args.run_dir, data_root=args.data_root, device=args.device, out=args.out)
    print(f"test accuracy {result['test_accuracy']:.2f}% on {result['test_images']} {result['data']} "
          f"{result['dataset']} test images")
    return 0
