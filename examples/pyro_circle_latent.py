"""Infer a heading from noisy compass readings with a heat-kernel guide in Pyro."""

# The model: an unknown heading `theta` (an angle in [-pi, pi)) with a uniform prior on the circle,
# and readings x_i ~ VonMises(theta, kappa). The true heading is close to pi, so the readings
# straddle the cut at +-pi, where a Normal guide (or an autoguide on the interval chart) fails.
#
# The guide is a CircleHeatKernel(loc, time): the wrapped normal of variance 2 * time. Its `loc` is
# an unconstrained real (the distribution wraps it), `time` a positive pyro.param. Under
# TraceMeanField_ELBO the KL to the uniform prior is the exact, registered one.
#
# Initialise `loc` near the data (here: the first reading). The point opposite the posterior mode
# is a saddle of the ELBO: a guide started there barely moves its loc and flattens towards the
# uniform distribution (its time grows) instead.
#
# With a uniform prior the exact posterior is VonMises(circular mean, kappa * R), R the length of
# the sum of the readings' unit vectors; we print it next to the fit. Run:
#
#     python examples/pyro_circle_latent.py --steps 400

from __future__ import annotations

import argparse
import math

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.optim import ClippedAdam
from torch import Tensor
from torch.distributions import constraints

from distributions import CircleHeatKernel, CircleUniform

KAPPA = 2.0  # concentration of the compass noise (circular sd about 0.8 rad)


def model(readings: Tensor) -> None:
    """Uniform prior on the heading, von Mises readings around it."""
    theta = pyro.sample("theta", CircleUniform())
    with pyro.plate("readings", readings.shape[0]):
        pyro.sample("x", dist.VonMises(theta, KAPPA), obs=readings)


def guide(readings: Tensor) -> None:
    """Heat-kernel guide: loc is any real (wrapped by the distribution), time is positive."""
    loc = pyro.param("loc", readings[0].clone())
    time = pyro.param("time", torch.tensor(0.5), constraint=constraints.positive)
    pyro.sample("theta", CircleHeatKernel(loc, time))


def exact_posterior(readings: Tensor) -> tuple[float, float]:
    """Mode and concentration of the exact von Mises posterior."""
    s, c = torch.sin(readings).sum().item(), torch.cos(readings).sum().item()
    return math.atan2(s, c), KAPPA * math.hypot(s, c)


def best_heat_time(kappa_post: float) -> float:
    r"""Time of the heat kernel at the mode closest to the posterior in KL(q || posterior).

    :math:`\mathrm{KL} = -H(t) - \kappa E_q \cos(\theta - \mu) + \text{const}
    = -H(t) - \kappa e^{-t} + \text{const}`, with the exact entropy :math:`H(t)`.
    """
    t = torch.logspace(-4, 1, 5001, dtype=torch.float64)
    objective = -CircleHeatKernel(torch.zeros_like(t), t).entropy() - kappa_post * torch.exp(-t)
    return t[objective.argmin()].item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=400, help="SVI steps")
    parser.add_argument("--readings", type=int, default=30, help="number of compass readings")
    parser.add_argument("--heading", type=float, default=3.0, help="true heading in radians")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    pyro.set_rng_seed(args.seed)
    truth = torch.tensor(args.heading)
    readings = dist.VonMises(truth, torch.tensor(KAPPA)).sample((args.readings,))

    pyro.clear_param_store()
    # The learning rate decays by a factor 20 over the run, so the last iterates settle.
    optim = ClippedAdam({"lr": 0.1, "lrd": 0.05 ** (1.0 / max(args.steps, 1))})
    svi = SVI(model, guide, optim, TraceMeanField_ELBO())
    report_every = max(args.steps // 5, 1)
    losses: list[float] = []
    for step in range(1, args.steps + 1):
        losses.append(svi.step(readings))
        if step % report_every == 0 or step == args.steps:
            window = losses[-report_every:]
            print(f"step {step:5d}  mean loss {sum(window) / len(window):9.3f}")

    q = CircleHeatKernel(pyro.param("loc").detach(), pyro.param("time").detach())
    mode, kappa_post = exact_posterior(readings)
    half_width = 1.96 * math.sqrt(2.0 * q.time.item())
    print(f"true heading              {truth.item(): .4f} rad")
    print(f"exact posterior mode      {mode: .4f} rad  (circular mean of the readings)")
    print(f"heat-kernel guide loc     {q.mean_direction.item(): .4f} rad  (wrapped to [-pi, pi))")
    print(
        f"heat-kernel guide time    {q.time.item(): .5f}  (best possible: "
        f"{best_heat_time(kappa_post):.5f})"
    )
    print(f"95% arc                   {q.mean_direction.item(): .3f} +- {half_width:.3f} rad")


if __name__ == "__main__":
    main()
