"""`rir dvc`: write dvc.yaml and its run list from params.yaml (with --check: fail while either is stale)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write dvc.yaml and its run list from params.yaml: the same runs and commands as the Snakefile"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--root", default=".", help="the repository to write into (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")


def run(args: argparse.Namespace) -> int:
    from rir.config import load_params
    from rir.dvcgen import generated_files
    from rir.io import atomic_write_text

    stale = []
    for name, text in generated_files(load_params(args.params)).items():
        out = Path(args.root) / name
        current = out.read_text(encoding="utf-8") if out.exists() else None
        if current == text:
            print(f"{out} is up to date with {args.params}")
        elif args.check:
            stale.append(out)
        else:
            atomic_write_text(out, text)
            print(f"wrote {out} ({text.count(chr(10))} lines)")
    for out in stale:
        print(f"{out} is stale: run `rir dvc` after editing {args.params}")
    return 1 if stale else 0
