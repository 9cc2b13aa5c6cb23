"""`rir dvc`: write DVC's pipelines and the runs' resolved configurations from params.yaml.

    rir dvc            write every pipeline file (rir.dvcgen), results/<profile>/configs/ and DVC's views
                       (results/metrics/, results/plots/) of what exists
    rir dvc --check    write nothing; exit 1 while a committed pipeline file is stale (the tests run it)
    rir dvc --stage    the guard stage of dvc.yaml: write results/<profile>/configs/, and when params.yaml
                       adds or removes runs, rewrite the pipelines and stop the repro (exit 1, one line),
                       since DVC resolved its stages from the old ones before anything ran
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "write DVC's pipelines and the runs' configurations from params.yaml (the Snakefile's runs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--root", default=".", help="the repository to write into (default: %(default)s)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 if a pipeline file is stale")
    mode.add_argument("--stage", action="store_true",
                      help="dvc.yaml's guard: write the configurations; stop (exit 1) when the pipelines "
                           "had to be rewritten")


def run(args: argparse.Namespace) -> int:
    from rir.config import load_params
    from rir.dvcgen import refresh_views, stale_pipeline_files, write_config_files
    from rir.io import atomic_write_text

    root = Path(args.root)
    params = load_params(args.params)
    stale, orphans = stale_pipeline_files(params, root)
    if args.check:
        for name in [*stale, *orphans]:
            print(f"{root / name} is stale: run `rir dvc` after editing {args.params}")
        if not stale and not orphans:
            print(f"DVC's pipelines are up to date with {args.params}")
        return 1 if stale or orphans else 0
    write_config_files(params, root)
    refresh_views(params, root)
    for name, text in stale.items():
        atomic_write_text(root / name, text)
    for name in orphans:
        (root / name).unlink()
    changed = [*stale, *orphans]
    if args.stage and changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        print(f"rir dvc: {args.params} adds or removes runs, so DVC's stages changed ({shown}): rewritten; "
              "run `dvc repro` again (this repro ran nothing else)", file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote {root / name}")
    for name in orphans:
        print(f"removed {root / name} (no longer made by {args.params})")
    if not args.stage and not changed:
        print(f"DVC's pipelines are up to date with {args.params}")
    return 0
