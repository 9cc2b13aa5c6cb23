"""`rir synth`: write a synthetic CIFAR tarball in the official python layout, for offline tests and demos.

Each class is a colour and a texture, drowned in random colour shifts, distractor textures and noise, so a
small CNN learns it in a few epochs while the task is not trivial. Beside the tarball goes `FILE.md5`, which
`rir fetch` checks instead of the official md5 and which marks everything prepared from it as synthetic.
"""

from __future__ import annotations

import argparse

HELP = "write a synthetic CIFAR-format tarball (learnable class signal) for tests and demos"


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rir.data import dataset_names

    parser.add_argument("--dataset", required=True, choices=dataset_names(), help="which layout to imitate")
    parser.add_argument("--out", required=True, metavar="FILE", help="the .tar.gz to write (and FILE.md5)")
    parser.add_argument("--n-train", type=_count, required=True, metavar="N", help="training images")
    parser.add_argument("--n-test", type=_count, required=True, metavar="N", help="test images")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")


def run(args: argparse.Namespace) -> int:
    from rir.synthetic import synthesize

    md5 = synthesize(args.dataset, args.out, args.n_train, args.n_test, seed=args.seed)
    print(f"{args.out}: synthetic {args.dataset}, {args.n_train} train, {args.n_test} test, md5 {md5}")
    return 0
