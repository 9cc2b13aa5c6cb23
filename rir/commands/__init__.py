"""One module per `rir` subcommand: `HELP`, `add_arguments(parser)`, `run(args) -> int` (see `rir.cli`)."""
