"""The `rir` command line: one entry point, one subcommand per step of the reproduction.

Each subcommand lives in `rir/commands/<name>.py` and defines `HELP`, `add_arguments(parser)` and
`run(args) -> int`. Command modules import torch and other heavy libraries inside `run`, so `rir --help` and
argument errors answer at once.

Exit codes (documented in README): 0 success; 2 bad input (arguments, config, corrupt data or checkpoints),
reported as one line on stderr naming the fault, never a traceback; 1 anything else. `rir train` adds its own
codes for preemption and divergence (see `rir.train`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rir import __version__
from rir.errors import EXIT_FAILURE, EXIT_USAGE, UserError

# Order is the order `rir --help` lists them, which follows the pipeline.
COMMANDS = ("synth", "fetch", "models", "train", "evaluate", "ablate", "report", "bench", "plan", "dvc")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`rir train: error: ...`) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rir", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"rir {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"rir.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"rir.commands.{name}":
                raise
            continue  # a command not built yet is simply not listed
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"rir {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"rir {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        # Disk full, permission denied, ...: an environment failure, said in one line.
        print(f"rir {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
