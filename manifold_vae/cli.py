"""The ``manifold-vae`` command line: ``demo`` (a tour of the distributions) and ``bench``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from . import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``manifold-vae`` (``python -m manifold_vae``)."""
    parser = argparse.ArgumentParser(
        prog="manifold-vae",
        description="Variational autoencoders on manifolds, with exact heat-kernel distributions.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="a tour of the circle heat kernel: density table, figure and JSON",
        description="Write density_table.md, heat_kernel.png and tour.json into --out.",
    )
    demo.add_argument("--out", type=Path, required=True, help="output folder (created)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the sampled histogram")
    commands.add_parser(
        "bench",
        help="throughput and accuracy benchmark (arguments of python -m distributions.benchmark)",
        add_help=False,  # --help goes to the benchmark's own parser
    )
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .tour import run_tour

    tour = run_tour(args.out, seed=args.seed)
    print(tour.table)
    for path in (tour.table_path, tour.plot_path, tour.record_path):
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (argument errors exit with status 2).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        from distributions.benchmark import main as bench_main

        return bench_main(rest, prog="manifold-vae bench")
    if rest:
        parser.error(f"unrecognized arguments for {args.command!r}: {' '.join(rest)}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a folder")
    return _demo(args)
