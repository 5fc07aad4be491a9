r"""A tour of the circle heat kernel (``make demo``): a density table, a figure and a JSON record.

The kernel solves :math:`\partial_t p = \partial_\theta^2 p` (a wrapped normal with variance
:math:`2t`); densities are with respect to the angle's Lebesgue measure on :math:`[-\pi, \pi)`.
The figure draws the kernel for several times (as the thesis's Figure A.1), compares it with the
thesis's Eq. 7.5, which misses the factor 2 of the :math:`m \ge 1` terms and so is half uniform
plus half kernel, and compares a histogram of ``rsample`` with the density.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.distributions import kl_divergence

from distributions import CircleHeatKernel, CircleUniform

__all__ = ["ANGLES", "TIMES", "Tour", "run_tour", "thesis_eq_7_5"]

#: Times of the table and of the first panel.
TIMES = (0.01, 0.1, 0.5, 1.0, 2.0, 5.0)
#: Angles from the location in the table: (label, value); -pi is the antipode.
ANGLES = (
    ("0", 0.0),
    ("pi/8", math.pi / 8),
    ("pi/4", math.pi / 4),
    ("pi/2", math.pi / 2),
    ("3pi/4", 3 * math.pi / 4),
    ("-pi", -math.pi),
)
#: Time at which the thesis's Eq. 7.5 is compared with the kernel.
COMPARE_TIME = 0.1
#: Location and time of the sampled kernel.
SAMPLE_LOC, SAMPLE_TIME = 1.0, 0.5
_EQ_7_5_TERMS = 64
_GRID = 721
_BINS = 60


@dataclass(frozen=True)
class Tour:
    """What :func:`run_tour` wrote: the paths, the table text and the JSON record."""

    table_path: Path
    plot_path: Path
    record_path: Path
    table: str
    record: dict[str, Any]


def thesis_eq_7_5(theta: Tensor, time: float, terms: int = _EQ_7_5_TERMS) -> Tensor:
    r"""The thesis's Eq. 7.5, :math:`\frac{1}{2\pi}\sum_{m \ge 0} \cos(m\theta)\, e^{-m^2 t}`.

    Not the heat kernel: without the factor 2 on the :math:`m \ge 1` terms it equals
    :math:`\tfrac12\big(\tfrac{1}{2\pi} + p_t(\theta)\big)`. Truncated after ``terms`` modes
    (error below :math:`e^{-\mathrm{terms}^2 t}`).

    Parameters
    ----------
    theta : Tensor, shape=[...]
        Angles from the location.
    time : float
        Diffusion time.
    terms : int
        Modes kept, ``m = 0 .. terms - 1``.
    """
    m = torch.arange(terms, dtype=theta.dtype, device=theta.device)
    terms_ = torch.cos(theta.unsqueeze(-1) * m) * torch.exp(-m * m * time)
    return terms_.sum(-1) / (2 * math.pi)


def _density_record(times: tuple[float, ...]) -> dict[str, Any]:
    time = torch.tensor(times, dtype=torch.float64).unsqueeze(-1)
    angles = torch.tensor([a for _, a in ANGLES], dtype=torch.float64)
    kernel = CircleHeatKernel(torch.zeros_like(time), time)
    return {
        "times": list(times),
        "angle_labels": [label for label, _ in ANGLES],
        "angles": angles.tolist(),
        "density": kernel.log_prob(angles).exp().tolist(),
        "entropy": kernel.entropy().squeeze(-1).tolist(),
        "kl_to_uniform": kl_divergence(kernel, CircleUniform()).squeeze(-1).tolist(),
        "mean_resultant_length": kernel.mean_resultant_length.squeeze(-1).tolist(),
    }


def _comparison_record(theta: Tensor) -> dict[str, Any]:
    kernel = CircleHeatKernel(torch.tensor(0.0, dtype=theta.dtype), COMPARE_TIME)
    p = kernel.log_prob(theta).exp()
    wrong = thesis_eq_7_5(theta, COMPARE_TIME)
    half = 0.5 * (p + 1 / (2 * math.pi))
    return {
        "time": COMPARE_TIME,
        "kernel_at_0": p[theta.abs().argmin()].item(),
        "eq_7_5_at_0": wrong[theta.abs().argmin()].item(),
        "max_abs_difference": (wrong - p).abs().max().item(),
        "max_abs_error_of_half_uniform_half_kernel": (wrong - half).abs().max().item(),
    }


def _sample_record(n_samples: int, seed: int) -> dict[str, Any]:
    kernel = CircleHeatKernel(torch.tensor(SAMPLE_LOC, dtype=torch.float64), SAMPLE_TIME)
    with torch.random.fork_rng(devices=[]):  # the caller's RNG state is left alone
        torch.manual_seed(seed)
        samples = kernel.rsample((n_samples,))
    counts = torch.histc(samples, bins=_BINS, min=-math.pi, max=math.pi)
    width = 2 * math.pi / _BINS
    return {
        "loc": SAMPLE_LOC,
        "time": SAMPLE_TIME,
        "n": n_samples,
        "seed": seed,
        "empirical_mean_resultant_length": torch.cos(samples - SAMPLE_LOC).mean().item(),
        "mean_resultant_length": math.exp(-SAMPLE_TIME),
        "bin_edges": torch.linspace(-math.pi, math.pi, _BINS + 1).tolist(),
        "histogram_density": (counts / (n_samples * width)).tolist(),
    }


def format_table(record: dict[str, Any]) -> str:
    """The density table of a tour record, in markdown."""
    labels = record["angle_labels"]
    head = ["t", *(f"p({a})" for a in labels), "entropy", "KL to uniform", "exp(-t)"]
    lines = [
        "# Heat kernel on the unit circle: p(theta | loc = 0, t)",
        "",
        "Convention: dp/dt = d^2p/dtheta^2, a wrapped normal with variance 2t; densities with",
        "respect to the angle's Lebesgue measure on [-pi, pi) (uniform density 1/2pi = 0.1592).",
        "exp(-t) is the mean resultant length E cos(theta - loc).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---:|" * len(head),
    ]
    for i, t in enumerate(record["times"]):
        cells = [
            f"{t:g}",
            *(f"{p:.6g}" for p in record["density"][i]),
            f"{record['entropy'][i]:.6f}",
            f"{record['kl_to_uniform'][i]:.6g}",
            f"{record['mean_resultant_length'][i]:.6f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(path: Path, record: dict[str, Any], theta: Tensor, samples: dict[str, Any]) -> None:
    """Three panels, drawn on a figure of its own (no pyplot, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_times, ax_thesis, ax_samples = fig.subplots(1, 3)
    x = theta.tolist()
    for t in record["times"]:
        p = CircleHeatKernel(torch.tensor(0.0, dtype=theta.dtype), t).log_prob(theta).exp()
        ax_times.plot(x, p.tolist(), label=f"t = {t:g}")
    ax_times.set(title="Heat kernel on the circle (cf. thesis Fig. A.1)", ylabel="density")
    ax_times.legend()

    p = CircleHeatKernel(torch.tensor(0.0, dtype=theta.dtype), COMPARE_TIME).log_prob(theta).exp()
    ax_thesis.plot(x, p.tolist(), label="heat kernel (correct)")
    ax_thesis.plot(x, thesis_eq_7_5(theta, COMPARE_TIME).tolist(), "--", label="thesis Eq. 7.5")
    ax_thesis.axhline(1 / (2 * math.pi), color="grey", lw=0.8, label="uniform 1/2pi")
    ax_thesis.set(title=f"Eq. 7.5 = (uniform + kernel) / 2, t = {COMPARE_TIME:g}")
    ax_thesis.legend()

    edges = samples["bin_edges"]
    ax_samples.stairs(
        samples["histogram_density"],
        edges,
        fill=True,
        alpha=0.4,
        label=f"rsample, n = {samples['n']:,}",
    )
    loc = torch.tensor(samples["loc"], dtype=theta.dtype)
    p = CircleHeatKernel(loc, samples["time"]).log_prob(theta).exp()
    ax_samples.plot(x, p.tolist(), color="black", label="density")
    ax_samples.set(title=f"Samples vs density, loc = {samples['loc']:g}, t = {samples['time']:g}")
    ax_samples.legend()
    for ax in (ax_times, ax_thesis, ax_samples):
        ax.set(xlabel="angle theta", xlim=(-math.pi, math.pi))
    fig.savefig(path, dpi=100)


def run_tour(
    out: str | Path,
    *,
    times: tuple[float, ...] = TIMES,
    n_samples: int = 100_000,
    seed: int = 0,
) -> Tour:
    """Write ``density_table.md``, ``heat_kernel.png`` and ``tour.json`` into ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder (created if missing).
    times : tuple of float
        Diffusion times of the table and of the first panel (``dp/dt = d^2p/dtheta^2``).
    n_samples : int
        Samples drawn for the histogram (with ``seed``; the global RNG is left alone).
    seed : int
        Seed of the samples.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    theta = torch.linspace(-math.pi, math.pi, _GRID, dtype=torch.float64)[:-1]
    record = _density_record(tuple(times))
    record["convention"] = "dp/dt = d^2p/dtheta^2 (wrapped normal, variance 2t)"
    record["thesis_eq_7_5"] = _comparison_record(theta)
    record["samples"] = _sample_record(n_samples, seed)
    table = format_table(record)
    tour = Tour(out / "density_table.md", out / "heat_kernel.png", out / "tour.json", table, record)
    tour.table_path.write_text(table)
    _plot(tour.plot_path, record, theta, record["samples"])
    tour.record_path.write_text(json.dumps(record, indent=2) + "\n")
    return tour
