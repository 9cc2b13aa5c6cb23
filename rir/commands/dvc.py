"""`rir dvc`: DVC's pipelines, a stage per profile run here (rir.dvcgen), kept up to date with params.yaml.

    rir dvc                   bring the profiles' stages up to date with params.yaml (and drop the stage
                              of a profile it no longer has)
    rir dvc PROFILE ...       the same, and add these profiles' stages: a start from DVC
    rir dvc --check           write nothing; exit 1 while a pipeline file is not up to date (the tests run it)
    rir dvc --record PROFILE  add what Snakemake made of PROFILE to DVC, add its stage, and commit the stage
                              if its report is up to date (Snakemake's onsuccess runs it)
    rir dvc --restore PROFILE check out PROFILE's tracked folders missing from the workspace (the DVC stage
                              runs it before Snakemake)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "DVC's pipelines: a stage per profile run here (it runs Snakemake), kept up to date with params.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profiles", nargs="*", metavar="PROFILE",
                        help="add these profiles' stages (a start from DVC)")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--root", default=".", help="the repository to write into (default: %(default)s)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 if a pipeline file is not up to date")
    mode.add_argument("--record", metavar="PROFILE",
                      help="add what Snakemake made of PROFILE to DVC; commit its stage when its report "
                           "is up to date")
    mode.add_argument("--restore", metavar="PROFILE",
                      help="check out PROFILE's tracked folders that are missing from the workspace")


def run(args: argparse.Namespace) -> int:
    from rir.config import load_params, resolve_profile
    from rir.dvcgen import PIPELINE, pipeline_file, record, restore, stale_pipelines, update_pipelines

    root = Path(args.root)
    params = load_params(args.params)
    if args.profiles and (args.check or args.record or args.restore):
        print("rir dvc: PROFILE arguments go with no option (`rir dvc PROFILE`)", file=sys.stderr)
        return 2
    for profile in [*args.profiles, *filter(None, [args.record, args.restore])]:
        resolve_profile(params, profile)  # an unknown profile: one line, exit 2
    try:
        if args.record or args.restore:
            done = record(params, args.record, root) if args.record else restore(args.restore, root)
            print(f"rir dvc: {done}")
            return 0
        changes = (stale_pipelines if args.check else update_pipelines)(params, root, args.profiles)
    except ValueError as exc:  # a pipeline file that is not a pipeline
        print(f"rir dvc: {exc}", file=sys.stderr)
        return 2
    for name, text in changes.items():
        done = ("is stale: run `rir dvc`" if args.check else "removed: its profile is no longer in "
                f"{args.params}" if text is None else "written")
        print(f"{root / name} {done}")
    if not changes:
        print(f"DVC's pipelines are up to date with {args.params}")
    for profile in args.profiles:
        path = pipeline_file(params, profile)
        print(f"the {profile} profile: `dvc repro {profile if path == PIPELINE else path}` runs it")
    return 1 if changes and args.check else 0
