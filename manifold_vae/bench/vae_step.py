"""Training benchmarks: what a latent manifold and the Pyro path cost per step; ensemble speedup.

``python -m manifold_vae.bench.vae_step [--batch-size 64] [--steps 200] [--repeats 5]
[--ensemble-n 10000] [--ensemble-epochs 3] [--threads T] [--quick] [--out F.json]``

Times one optimisation step (forward, backward, Adam) of VAEs of the same size on the
sinusoid benchmark (D = 25, default networks): the R^2 baseline, the circle and the Clifford
torus with the plain PyTorch loss, and the circle with Pyro's ``SVI`` and
``TraceMeanField_ELBO``. Candidates are interleaved (A B C D A B C D ...) so that the noise of a
shared machine hits all of them alike; ratios are of medians measured in the same run.

Then :func:`ensemble_speedup` trains the grid of the thesis's Table 5.1 (datasets
X_0.01, X_0.1, X_1 x sigma_X in {0.01, 0.1, 1} x 5 repetitions of the R^2 VAE, 45
models) twice in the same run: as one vectorised ensemble
(:func:`~manifold_vae.ensemble.fit_ensemble`) and one model after another with
:func:`~manifold_vae.training.fit`, and reports both wall times, their ratio and the largest
parameter difference between the two results. ``--quick`` shrinks everything to a smoke test.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .timing import time_interleaved

if TYPE_CHECKING:
    from ..manifolds import LatentManifold

__all__ = ["ensemble_speedup", "main", "run"]


def _plain_step(latent: LatentManifold, data: torch.Tensor) -> Callable[[], None]:
    from ..likelihoods import Gaussian
    from ..vae import VAE

    vae = VAE(latent, tuple(data.shape[1:]), Gaussian(0.1))
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def step() -> None:
        loss = -vae.elbo(data).elbo.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _pyro_step(latent: LatentManifold, data: torch.Tensor) -> Callable[[], None]:
    import pyro
    from pyro.infer import SVI, TraceMeanField_ELBO
    from pyro.optim import Adam

    from ..likelihoods import Gaussian
    from ..vae import VAE

    pyro.clear_param_store()
    vae = VAE(latent, tuple(data.shape[1:]), Gaussian(0.1))
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), loss=TraceMeanField_ELBO())
    return lambda: svi.step(data)


def _repeat(step: Callable[[], object], steps: int) -> Callable[[], None]:
    """One timed block: ``steps`` calls of ``step``."""

    def block() -> None:
        for _ in range(steps):
            step()

    return block


def run(batch_size: int = 64, steps: int = 200, repeats: int = 5, seed: int = 0) -> dict:
    """Median milliseconds per step of each candidate and the ratios; see the module docstring."""
    from ..datasets import sinusoids
    from ..manifolds import Circle, CliffordTorus, Euclidean

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        data = sinusoids(n=batch_size, seed=seed).data
        candidates = {
            "euclidean-2 (plain)": _plain_step(Euclidean(2), data),
            "circle (plain)": _plain_step(Circle(), data),
            "clifford-torus (plain)": _plain_step(CliffordTorus(), data),
            "circle (pyro SVI)": _pyro_step(Circle(), data),
        }
        blocks = {name: _repeat(step, steps) for name, step in candidates.items()}
        seconds = time_interleaved(blocks, repeats, torch.device("cpu"))
    times = {name: [1e3 * s / steps for s in values] for name, values in seconds.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    base = median["euclidean-2 (plain)"]
    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "steps": steps,
        "repeats": repeats,
        "ms_per_step": times,
        "median_ms_per_step": median,
        "ratio_to_euclidean": {name: value / base for name, value in median.items()},
        "pyro_over_plain_circle": median["circle (pyro SVI)"] / median["circle (plain)"],
    }


def _table_5_1_grid(
    n: int, repetitions: int, seed: int
) -> tuple[list, list[torch.Tensor], list[int], list[str]]:
    """The 45 models of Table 5.1: datasets x sigma_X x repetitions (fresh initialisations)."""
    from ..datasets import sinusoids
    from ..likelihoods import Gaussian
    from ..manifolds import Euclidean
    from ..vae import VAE

    vaes, data, seeds, labels = [], [], [], []
    with torch.random.fork_rng():
        for d, noise in enumerate(ENSEMBLE_NOISES):
            dataset = sinusoids(n=n, noise=noise, seed=seed + d).data
            for sigma_x in ENSEMBLE_SIGMAS:
                for repetition in range(repetitions):
                    torch.manual_seed(seed + len(vaes))
                    vaes.append(VAE(Euclidean(2), (25,), Gaussian(sigma_x)))
                    data.append(dataset)
                    seeds.append(seed + repetition)
                    labels.append(f"X_{noise:g}, sigma_X={sigma_x:g}, rep {repetition}")
    return vaes, data, seeds, labels


#: Noise levels of the datasets and decoder scales of the Table 5.1 grid.
ENSEMBLE_NOISES = (0.01, 0.1, 1.0)
ENSEMBLE_SIGMAS = (0.01, 0.1, 1.0)


def ensemble_speedup(
    n: int = 10000,
    epochs: int = 3,
    batch_size: int = 128,
    repetitions: int = 5,
    seed: int = 0,
) -> dict:
    """Wall times of the Table 5.1 grid trained as one ensemble and one model after another.

    Both paths train the same freshly initialised models (deep copies) with the same seeds
    and hyperparameters, after an untimed warm-up of each on a small slice of the data (so
    that one-time costs such as imports are not timed). Timed once each, in the same run.

    Parameters
    ----------
    n : int
        Datapoints per dataset (thesis: 10000).
    epochs, batch_size : int
        Training budget of every model (default lr ``1e-3``).
    repetitions : int
        Models per (dataset, sigma_X) cell (thesis: 5), so ``9 * repetitions`` models.
    seed : int
        Seed of data, initialisations and training.

    Returns
    -------
    dict
        ``members, n, epochs, batch_size, ensemble_seconds, sequential_seconds, speedup``
        (sequential over ensemble) and ``max_parameter_difference`` (largest absolute
        difference of any trained parameter between the two paths: rounding only).
    """
    from ..ensemble import fit_ensemble
    from ..training import fit

    if min(n, epochs, batch_size, repetitions) < 1:
        raise ValueError(
            f"n, epochs, batch_size and repetitions must be positive, got {n}, {epochs}, "
            f"{batch_size}, {repetitions}"
        )
    vaes, data, seeds, _ = _table_5_1_grid(n, repetitions, seed)
    sequential = [copy.deepcopy(vae) for vae in vaes]
    options = {"batch_size": batch_size, "progress": False}
    warm = [t[: 2 * batch_size] for t in data]
    fit_ensemble([copy.deepcopy(v) for v in vaes], warm, epochs=1, seeds=seeds, **options)
    fit(copy.deepcopy(vaes[0]), warm[0], epochs=1, seed=seeds[0], **options)

    start = time.perf_counter()
    fit_ensemble(vaes, data, epochs=epochs, seeds=seeds, **options)
    ensemble_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for vae, tensor, member_seed in zip(sequential, data, seeds, strict=True):
        fit(vae, tensor, epochs=epochs, seed=member_seed, **options)
    sequential_seconds = time.perf_counter() - start
    difference = max(
        (a - b).abs().max().item()
        for x, y in zip(vaes, sequential, strict=True)
        for a, b in zip(x.parameters(), y.parameters(), strict=True)
    )
    return {
        "members": len(vaes),
        "n": n,
        "epochs": epochs,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "ensemble_seconds": ensemble_seconds,
        "sequential_seconds": sequential_seconds,
        "speedup": sequential_seconds / ensemble_seconds,
        "max_parameter_difference": difference,
    }


def _ensemble_lines(record: dict) -> list[str]:
    e = record["ensemble"]
    return [
        f"Table 5.1 grid: {e['members']} R^2 VAEs, n = {e['n']}, {e['epochs']} epochs, "
        f"batch {e['batch_size']}, {e['threads']} threads",
        f"  vectorised ensemble (fit_ensemble): {e['ensemble_seconds']:8.2f} s",
        f"  one after another (fit):            {e['sequential_seconds']:8.2f} s",
        f"  speedup: {e['speedup']:.1f}x; largest parameter difference "
        f"{e['max_parameter_difference']:.2g}",
    ]


def _table(record: dict) -> str:
    lines = [
        f"VAE training step, batch {record['batch_size']}, D = 25, torch {record['torch']}, "
        f"{record['threads']} threads, {record['repeats']} x {record['steps']} steps, interleaved",
        f"{'model':26s} {'median ms/step':>15s} {'x euclidean-2':>14s}",
    ]
    for name, value in record["median_ms_per_step"].items():
        lines.append(f"{name:26s} {value:15.3f} {record['ratio_to_euclidean'][name]:14.2f}")
    lines.append(f"Pyro SVI / plain (circle): {record['pyro_over_plain_circle']:.2f}")
    if "ensemble" in record:
        lines += _ensemble_lines(record)
    return "\n".join(lines)


#: ``--quick``: a smoke test of every benchmark in a few seconds.
QUICK = {
    "batch_size": 8,
    "steps": 2,
    "repeats": 1,
    "ensemble_n": 64,
    "ensemble_epochs": 1,
    "ensemble_batch_size": 32,
    "ensemble_repetitions": 1,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (argument errors exit with 2).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    prog = "python -m manifold_vae.bench.vae_step"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved blocks per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ensemble-n", type=int, default=10000, help="datapoints per dataset")
    parser.add_argument(
        "--ensemble-epochs", type=int, default=3, help="epochs of the ensemble benchmark (0: skip)"
    )
    parser.add_argument("--ensemble-batch-size", type=int, default=128)
    parser.add_argument(
        "--ensemble-repetitions", type=int, default=5, help="models per (dataset, sigma_X) cell"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test")
    parser.add_argument("--out", type=Path, default=None, help="write the record as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if min(args.batch_size, args.steps, args.repeats) < 1:
        parser.error("--batch-size, --steps and --repeats must be positive")
    if min(args.ensemble_n, args.ensemble_batch_size, args.ensemble_repetitions) < 1:
        parser.error("--ensemble-n, --ensemble-batch-size, --ensemble-repetitions must be positive")
    if args.ensemble_epochs < 0:
        parser.error("--ensemble-epochs must be >= 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be positive")
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        record = run(args.batch_size, args.steps, args.repeats, args.seed)
        if args.ensemble_epochs > 0:
            record["ensemble"] = ensemble_speedup(
                args.ensemble_n,
                args.ensemble_epochs,
                args.ensemble_batch_size,
                args.ensemble_repetitions,
                args.seed,
            )
    finally:
        torch.set_num_threads(threads)
    print(_table(record))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
