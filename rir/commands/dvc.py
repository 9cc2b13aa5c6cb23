"""`rir dvc`: write DVC's pipelines (one stage per profile, rir.dvcgen) from params.yaml's profiles.

    rir dvc                   write every pipeline file that is stale (a profile added or removed)
    rir dvc --check           write nothing; exit 1 while a pipeline file is stale (the tests run it)
    rir dvc --record PROFILE  add what Snakemake made of PROFILE to DVC, and commit the profile's stage if
                              its report is up to date (Snakemake's onsuccess runs it)
    rir dvc --restore PROFILE check out PROFILE's tracked folders missing from the workspace (the DVC stage
                              runs it before Snakemake)
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write DVC's pipelines (one stage per profile, which runs Snakemake) from params.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--root", default=".", help="the repository to write into (default: %(default)s)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 if a pipeline file is stale")
    mode.add_argument("--record", metavar="PROFILE",
                      help="add what Snakemake made of PROFILE to DVC; commit its stage when its report "
                           "is up to date")
    mode.add_argument("--restore", metavar="PROFILE",
                      help="check out PROFILE's tracked folders that are missing from the workspace")


def run(args: argparse.Namespace) -> int:
    from rir.config import load_params, resolve_profile
    from rir.dvcgen import record, restore, stale_pipeline_files
    from rir.io import atomic_write_text

    root = Path(args.root)
    params = load_params(args.params)
    if args.record or args.restore:
        profile = args.record or args.restore
        resolve_profile(params, profile)  # an unknown profile: one line, exit 2
        done = record(params, profile, root) if args.record else restore(profile, root)
        print(f"rir dvc: {done}")
        return 0
    stale, orphans = stale_pipeline_files(params, root)
    if args.check:
        for name in [*stale, *orphans]:
            print(f"{root / name} is stale: run `rir dvc` after editing {args.params}'s profiles")
        if not stale and not orphans:
            print(f"DVC's pipelines are up to date with {args.params}")
        return 1 if stale or orphans else 0
    for name, text in stale.items():
        atomic_write_text(root / name, text)
        print(f"wrote {root / name}")
    for name in orphans:
        (root / name).unlink()
        print(f"removed {root / name} (no longer made by {args.params})")
    if not stale and not orphans:
        print(f"DVC's pipelines are up to date with {args.params}")
    return 0
