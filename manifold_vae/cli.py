"""The ``manifold-vae`` command line: ``demo``, ``train``, ``reproduce``, ``sweep``, ``bench``."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import __version__

__all__ = ["DEFAULT_HIDDEN", "build_parser", "experiment_names", "main"]

#: ``train --hidden``'s default: the demo's width (``manifold_vae.jobs.DEMO_HIDDEN``; the parser
#: is built without importing torch).
DEFAULT_HIDDEN = 64


class _Names(Sequence[str]):
    """The names of a registry, read each time argparse needs them (to check a value, in a
    message, in the help): building the parser imports no registry, and a name registered
    before :func:`main` runs (a user's likelihood, say) is a valid choice."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names

    def __getitem__(self, index: Any) -> Any:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __str__(self) -> str:
        return ", ".join(self._names())


def _manifold_names() -> tuple[str, ...]:
    """The registered manifolds that ``--latent NAME[:INT]`` can build: those whose class takes
    at most one required argument (not ``fixed-time``, which needs a manifold and a time, nor
    ``product``, written ``A*B``)."""
    import inspect

    from .manifolds import MANIFOLDS

    def buildable(cls: type) -> bool:
        parameters = inspect.signature(cls).parameters.values()
        if any(p.kind is p.VAR_POSITIONAL for p in parameters):
            return False
        required = [p for p in parameters if p.default is p.empty and p.kind is not p.VAR_KEYWORD]
        return len(required) <= 1

    return tuple(name for name in MANIFOLDS.names() if buildable(MANIFOLDS[name]))


def _likelihood_names() -> tuple[str, ...]:
    from .likelihoods import LIKELIHOODS

    return LIKELIHOODS.names()


def experiment_names() -> tuple[str, ...]:
    """The names of ``manifold_vae.reproduce.EXPERIMENTS``, the choices of ``reproduce``."""
    from .reproduce import EXPERIMENTS

    return EXPERIMENTS.names()


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
        help="tour of the distributions, then a circle VAE and an R^2 VAE on sinusoids",
        description="Write the distribution tour (distributions/), two trained VAEs with "
        "metrics and latent plots (circle/, euclidean-2/) and summary.md into --out.",
    )
    demo.add_argument("--out", type=Path, required=True, help="output folder (created)")
    demo.add_argument("--epochs", type=int, default=40, help="training epochs of each VAE")
    demo.add_argument("--n", type=int, default=1000, help="number of training sinusoids")
    train = commands.add_parser(
        "train",
        help="train one VAE into a run folder: model.pt, metrics, per-epoch log, latent plot",
        description="Train a VAE with the given latent manifold on built-in sinusoids "
        "(thesis Sec. 5.1) or on a .npy array of shape (N, ...), into the run folder --out "
        "(refused if it holds a run, unless --overwrite), or continue an interrupted run with "
        "--resume DIR. The defaults are those of the demo (see docs/vae.md, 'Run folders'): "
        "they differ from fit()'s generic ones (100 epochs, batch 128, lr 1e-3, floor(D/3) "
        "hidden units) so that the default run on the sinusoids reaches the demo's quality in "
        "under a minute.",
    )
    latent = train.add_argument(
        "--latent",
        default="circle",
        help="NAME or NAME:ARG (an integer argument, e.g. euclidean:2, flat-torus:3) with NAME "
        "one of %(manifolds)s, optionally with @FAMILY for the posterior family (e.g. "
        "hypersphere:9@vmf, sphere@power-spherical, circle@von-mises), or a product such as "
        "'circle*euclidean:1' (default %(default)s)",
    )
    latent.manifolds = _Names(_manifold_names)  # type: ignore[attr-defined]  # for its help
    train.add_argument(
        "--data", default="sinusoids", help="'sinusoids' or a .npy file (default %(default)s)"
    )
    train.add_argument(
        "--n", type=int, default=1000, help="number of sinusoids (default %(default)s)"
    )
    train.add_argument(
        "--noise", type=float, default=0.1, help="noise of the sinusoids (default %(default)s)"
    )
    train.add_argument(
        "--likelihood",
        default="gaussian",
        choices=_Names(_likelihood_names),
        metavar="NAME",  # argparse would list the choices when adding the argument
        help="decoder likelihood, one of %(choices)s (default %(default)s)",
    )
    train.add_argument(
        "--sigma-x",
        type=float,
        default=0.1,
        help="decoder standard deviation sigma_X (initial value if learned; default %(default)s)",
    )
    train.add_argument(
        "--epochs", type=int, default=50, help="passes over the data (default %(default)s)"
    )
    train.add_argument(
        "--batch-size", type=int, default=64, help="minibatch size (default %(default)s)"
    )
    train.add_argument(
        "--lr", type=float, default=3e-3, help="Adam's step size (default %(default)s)"
    )
    train.add_argument(
        "--hidden",
        type=int,
        default=DEFAULT_HIDDEN,
        help="units per hidden layer (default %(default)s; the thesis's floor(D/3) = 8 for the "
        "sinusoids reaches a phase correlation of only 0.96 in 50 epochs)",
    )
    train.add_argument(
        "--depth", type=int, default=2, help="hidden layers per network (default %(default)s)"
    )
    train.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the data, the initial weights and training (default %(default)s)",
    )
    train.add_argument("--device", default=None, help="e.g. cpu, cuda or cuda:1 (default: cpu)")
    train.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="share of the data held out for the per-epoch held-out ELBO (default %(default)s)",
    )
    train.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop when the held-out loss has not improved for this many epochs (needs "
        "--val-fraction)",
    )
    where = train.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="the run folder (created)")
    where.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the interrupted run in DIR with its own options (the others are "
        "ignored); the result equals the uninterrupted run's",
    )
    train.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    repro = commands.add_parser(
        "reproduce",
        help="run one of the thesis's experiments and write its report",
        description="Train the experiment's grid of models as vectorised ensembles and write "
        "report.md (tables beside the thesis's values), figures and results.json into --out.",
    )
    repro.add_argument(
        "name",
        metavar="NAME",
        choices=_Names(experiment_names),
        help="the experiment, one of %(choices)s",
    )
    repro.add_argument("--out", type=Path, required=True, help="output folder (created)")
    repro.add_argument(
        "--budget",
        default="default",
        help="'default' (converged settings), 'tiny' (seconds) or overrides such as "
        "'epochs=50,reps=2,n=2000,restarts=1'",
    )
    repro.add_argument(
        "--coil20",
        type=Path,
        default=None,
        help="folder of COIL-20's processed images, for the experiments that take it "
        "(default: a rendered object)",
    )
    repro.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    repro.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="train the grid's ensemble groups as Ray tasks: on the cluster at ADDRESS, or on "
        "a local Ray instance without it (needs pip install -e .[ray]); same numbers",
    )
    sweep = commands.add_parser(
        "sweep",
        help="hyperparameter search over the options of 'train' with Ray Tune",
        description="Run the sweep of CONFIG.toml (grid or random search, ASHA early stopping "
        "on the held-out negative ELBO) and write results.csv, results.md, curves.png and each "
        "trial's model into --out (see docs/sweeps.md; needs pip install -e .[ray]).",
    )
    sweep.add_argument("config", type=Path, metavar="CONFIG.toml", help="the sweep's config")
    sweep.add_argument("--out", type=Path, required=True, help="output folder (created)")
    sweep.add_argument(
        "--ray", default=None, metavar="ADDRESS", help="a Ray cluster to join (default: local)"
    )
    sweep.add_argument(
        "--max-concurrent", type=int, default=None, metavar="N", help="trials at once"
    )
    sweep.add_argument(
        "--resume", action="store_true", help="continue the sweep in --out (finished trials stay)"
    )
    commands.add_parser(
        "bench",
        help="throughput and accuracy benchmark of the distributions (arguments of "
        "python -m manifold_vae.bench.distributions)",
        add_help=False,  # --help goes to the benchmark's own parser
    )
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .jobs import run_demo

    result = run_demo(args.out, epochs=args.epochs, n=args.n)
    print(result["tour"].table)
    print(result["summary"])
    print(f"wrote the tour, both models, their metrics and latent plots into {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .jobs import load_data, make_likelihood, parse_latent, resume_job, train_job
    from .trainer import graceful_interrupts, interrupt_requested

    progress = not args.no_progress
    with graceful_interrupts():
        if args.resume is not None:
            if args.overwrite:
                raise ValueError("--overwrite and --resume exclude each other")
            result = resume_job(args.resume, progress=progress)
            out = args.resume
        else:
            source = {"source": args.data, "n": args.n, "noise": args.noise, "seed": args.seed}
            result = train_job(
                parse_latent(args.latent),
                load_data(**source),
                make_likelihood(args.likelihood, args.sigma_x),
                args.out,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
                device=args.device,
                hidden=args.hidden,
                depth=args.depth,
                progress=progress,
                overwrite=args.overwrite,
                val_fraction=args.val_fraction,
                patience=args.patience,
                data_source=source,
            )
            out = args.out
        signal_name = interrupt_requested()
    if signal_name is not None:
        print(
            f"manifold-vae train: {result.stopped}; wrote the last good checkpoint and "
            f"metrics.json into {out}; continue with: manifold-vae train --resume {out}",
            file=sys.stderr,
        )
        return 128 + int(getattr(signal, signal_name))
    final = result.metrics["final"]
    print(
        f"ELBO per datapoint {final['elbo']:.3f} (reconstruction {final['reconstruction']:.3f},"
        f" KL {final['kl']:.3f})"
    )
    if "phase_correlation" in result.metrics:
        print(f"circular correlation with the true phase: {result.metrics['phase_correlation']}")
    for path in (result.checkpoint, result.metrics_path, result.plot_path):
        print(f"wrote {path}")
    if result.stopped is not None and not result.stopped.startswith("early stopping"):
        print(
            f"manifold-vae train: training stopped: {result.stopped}; {result.checkpoint} holds "
            "the last good epoch",
            file=sys.stderr,
        )
        return 1
    if result.stopped is not None:
        print(result.stopped)
    return 0


def _reproduce(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import shlex
    from functools import partial

    from .reproduce import EXPERIMENTS, reproduce

    options = {}
    if args.coil20 is not None:
        if "coil20" not in EXPERIMENTS[args.name].cli_options:
            takers = [n for n, e in EXPERIMENTS.items() if "coil20" in e.cli_options]
            raise ValueError(f"--coil20 applies to {', '.join(takers)} only")
        options["coil20"] = args.coil20
    run = partial(
        reproduce,
        args.name,
        args.out,
        budget=args.budget,
        progress=not args.no_progress,
        command=shlex.join(["manifold-vae", *argv]),
        **options,
    )
    if args.ray is None:
        report = run()
    else:
        from .distributed import RayGroupTrainer, ray_session

        with ray_session(args.ray):
            report = run(trainer=RayGroupTrainer())
    print(f"{report.title}: {report.seconds:.0f} s")
    print(
        f"wrote {args.out / 'report.md'}, {args.out / 'results.json'} and "
        f"{len(report.figures)} figures"
    )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .distributed.sweep import best_value, run_sweep
    from .distributed.sweep_config import load_sweep

    config = load_sweep(args.config)  # a bad config fails here, before Ray starts
    result = run_sweep(
        config, args.out, address=args.ray, max_concurrent=args.max_concurrent, resume=args.resume
    )
    best = result.best()
    print(
        f"{len(result.records)} trials ({len(result.ran)} run now); best {best['key']}: "
        f"held-out negative ELBO {best_value(best):.4g}"
    )
    print(f"wrote {result.table_csv}, {result.table_md} and the trials' models into {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (argument errors exit with status 2).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        from .bench.distributions import main as bench_main

        return bench_main(rest, prog="manifold-vae bench")
    if rest:
        parser.error(f"unrecognized arguments for {args.command!r}: {' '.join(rest)}")
    out = getattr(args, "out", None)
    if out is not None and out.exists() and not out.is_dir():
        parser.error(f"--out {out}: exists and is not a folder")
    try:
        if args.command == "reproduce":
            return _reproduce(args, argv)
        if args.command == "sweep":
            return _sweep(args)
        return _demo(args) if args.command == "demo" else _train(args)
    except ValueError as error:
        parser.error(str(error))
    except OSError as error:  # a disk that fills, a folder that goes away: one line
        print(f"manifold-vae {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"manifold-vae {args.command}: interrupted", file=sys.stderr)
        return 130
