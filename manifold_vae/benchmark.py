"""Training-step benchmark: what a latent manifold and the Pyro path cost per step.

``python -m manifold_vae.benchmark [--batch-size 64] [--steps 200] [--repeats 5] [--out F.json]``

Times one optimisation step (forward, backward, Adam) of VAEs of the same size on the
sinusoid benchmark (D = 25, default networks): the R^2 baseline, the circle and the Clifford
torus with the plain PyTorch loss, and the circle with Pyro's ``SVI`` and
``TraceMeanField_ELBO``. Candidates are interleaved (A B C D A B C D ...) so that the noise of a
shared machine hits all of them alike; ratios are of medians measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch

from distributions.benchmark import time_interleaved

__all__ = ["main", "run"]


def _plain_step(latent, data: torch.Tensor) -> Callable[[], None]:
    from .likelihoods import Gaussian
    from .vae import VAE

    vae = VAE(latent, tuple(data.shape[1:]), Gaussian(0.1))
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def step() -> None:
        loss = -vae.elbo(data).elbo.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _pyro_step(latent, data: torch.Tensor) -> Callable[[], None]:
    import pyro
    from pyro.infer import SVI, TraceMeanField_ELBO
    from pyro.optim import Adam

    from .likelihoods import Gaussian
    from .vae import VAE

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
    from .datasets import sinusoids
    from .manifolds import Circle, CliffordTorus, Euclidean

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


def _table(record: dict) -> str:
    lines = [
        f"VAE training step, batch {record['batch_size']}, D = 25, torch {record['torch']}, "
        f"{record['threads']} threads, {record['repeats']} x {record['steps']} steps, interleaved",
        f"{'model':26s} {'median ms/step':>15s} {'x euclidean-2':>14s}",
    ]
    for name, value in record["median_ms_per_step"].items():
        lines.append(f"{name:26s} {value:15.3f} {record['ratio_to_euclidean'][name]:14.2f}")
    lines.append(f"Pyro SVI / plain (circle): {record['pyro_over_plain_circle']:.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m manifold_vae.benchmark", description=__doc__)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved blocks per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the record as JSON")
    args = parser.parse_args(argv)
    if min(args.batch_size, args.steps, args.repeats) < 1:
        parser.error("--batch-size, --steps and --repeats must be positive")
    record = run(args.batch_size, args.steps, args.repeats, args.seed)
    print(_table(record))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
