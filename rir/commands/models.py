"""`rir models`: every registered architecture with its parameters, forward FLOPs per 32x32 image, depth,
the file that registers it (rir/models/) and its display name.

FLOPs are counted by torch.utils.flop_counter on one 3x32x32 image in eval mode (a multiply-add is 2 FLOPs);
depth is the number of weighted layers on the main path (shortcut projections excluded).
"""

from __future__ import annotations

import argparse
import json

HELP = "list the registered models: parameters, FLOPs per 32x32 image, depth, file, display name"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="models to show (default: all)")
    parser.add_argument("--num-classes", type=int, default=10, help="classifier outputs (default: 10)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def run(args: argparse.Namespace) -> int:
    from rir import catalog
    from rir.models import list_models, model_summary  # imports torch: kept out of `rir --help`

    names = args.names or list_models()
    for name in names:
        catalog.model(name)  # an unknown name: one line naming the known ones
    rows = [{"name": name, **model_summary(name, args.num_classes), "file": catalog.model(name).path,
             "label": catalog.label(name)} for name in names]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width, files = max(len(r["name"]) for r in rows), max(len(r["file"]) for r in rows)
    print(f"{'model':<{width}}  {'params':>12}  {'GFLOPs/image':>12}  {'depth':>5}  {'file':<{files}}  label")
    for r in rows:
        gflops = r["flops_per_image"] / 1e9
        print(f"{r['name']:<{width}}  {r['params']:>12,}  {gflops:>12.3f}  {r['depth']:>5}  "
              f"{r['file']:<{files}}  {r['label']}")
    return 0
