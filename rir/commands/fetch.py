"""`rir fetch`: obtain a CIFAR tarball, verify its md5, read it safely and prepare the arrays training reads.

Without `--from`, a tarball already in the data folder is verified and reused, otherwise the official one is
downloaded (pooch, with a progress bar on a terminal). `--from` takes a local path or a file/http(s) URL. A
synthetic tarball from `rir synth` is recognised by its `FILE.md5` sidecar (or `--synthetic` for a URL) and
everything prepared from it is marked synthetic. A real copy of CIFAR that is not the official tarball (a
re-encoded mirror, say) is refused by the official md5 unless `--unofficial-md5 MD5` names the md5 it must
have; it must then also hold the official images per split and class, and everything prepared from it is
marked unofficial, with that md5. See `rir.data` for the data kinds and the layout of the data folder.
"""

from __future__ import annotations

import argparse

HELP = "download or verify a CIFAR tarball (md5), unpack safely, prepare arrays"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rir.data import dataset_names

    parser.add_argument("--dataset", required=True, choices=dataset_names(), help="which dataset")
    parser.add_argument("--root", required=True, metavar="DIR", help="data root; writes DIR/<dataset>/")
    parser.add_argument(
        "--from",
        dest="source",
        metavar="TARBALL_OR_URL",
        help="a local tarball or a file/http(s) URL instead of the official download",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="verify against the rir synth sidecar (FILE.md5, or URL.md5) instead of the official md5",
    )
    parser.add_argument(
        "--unofficial-md5",
        metavar="MD5",
        help="take a real CIFAR copy that is not the official tarball, verified against this md5 (its "
             "provider's); everything made from it is marked unofficial, not comparable to the paper",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from rir.data import fetch

    progress = sys.stderr.isatty()  # a bar on a terminal; logs get the one-line summary alone
    print(fetch(args.dataset, args.root, args.source, synthetic=args.synthetic, progress=progress,
                unofficial_md5=args.unofficial_md5))
    return 0
