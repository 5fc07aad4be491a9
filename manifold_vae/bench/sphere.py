r"""The sphere heat kernel: speed against Pyro's ProjectedNormal, accuracy against mpmath.

Part of ``python -m manifold_vae.bench.distributions``
(:mod:`manifold_vae.bench.distributions`).

Throughput of ``SphereHeatKernel.log_prob`` and ``rsample`` against Pyro's ``ProjectedNormal``
(the other distribution on :math:`S^2` with a closed-form density), with concentration
:math:`\kappa = 1/\sqrt{2t}` matched to the same spread, and against the Power Spherical
distribution (the PyPI package ``power-spherical``, the optional extra ``bench``; skipped with a
message when it is not installed) with :math:`\kappa = 1/2t` (the same small-time spread), on
batches of per-element random parameters; accuracy of ``log_prob`` (against
:func:`distributions.reference.sphere_log_density`)
and of the KL to the uniform distribution (against
:func:`distributions.reference.sphere_kl_to_uniform`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from pyro.distributions import ProjectedNormal
from torch import Tensor
from torch.distributions import kl_divergence
from torch.nn.functional import normalize

from distributions import SphereHeatKernel, SphereUniform

from .reference import reference_value

try:  # optional: the ``bench`` extra
    from power_spherical import PowerSpherical
except ImportError:  # pragma: no cover - depends on the environment
    PowerSpherical = None
from .timing import time_groups

__all__ = ["SPHERE_TIME_RANGE", "measure_sphere", "sphere_lines"]

#: Diffusion times of the throughput batches, log-uniform (both representations are used).
SPHERE_TIME_RANGE = (1e-2, 10.0)
#: Times of the KL accuracy check (the mpmath reference is slow below 0.02).
_KL_TIMES = (0.02, 0.1, 0.5, 1.0, 1.49, 2.0, 5.0, 10.0)


def _inputs(n: int, dtype: torch.dtype, device: torch.device, seed: int) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lo, hi = (math.log(t) for t in SPHERE_TIME_RANGE)
    time = torch.exp(lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64))
    loc = normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=-1)
    value = normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=-1)
    out = {"value": value, "loc": loc, "time": time}
    return {k: v.to(dtype=dtype, device=device) for k, v in out.items()}


def _throughput(
    n: int, repeats: int, dtype: torch.dtype, device: torch.device, seed: int
) -> list[dict[str, Any]]:
    x = _inputs(n, dtype, device, seed)
    value, loc, time = x["value"], x["loc"], x["time"]
    concentration = loc / torch.sqrt(2.0 * time).unsqueeze(-1)

    def heat() -> SphereHeatKernel:
        return SphereHeatKernel(loc, time, validate_args=False)

    def projected() -> ProjectedNormal:
        return ProjectedNormal(concentration, validate_args=False)

    def power() -> Any:
        return PowerSpherical(loc, 0.5 / time, validate_args=False)

    groups = {
        "log_prob": (
            "ProjectedNormal.log_prob",
            {
                "ProjectedNormal.log_prob": lambda: projected().log_prob(value),
                "SphereHeatKernel.log_prob": lambda: heat().log_prob(value),
            },
        ),
        "sample": (
            "ProjectedNormal.rsample",
            {
                "ProjectedNormal.rsample": lambda: projected().rsample(),
                "SphereHeatKernel.rsample": lambda: heat().rsample(),
            },
        ),
    }
    if PowerSpherical is not None:
        groups["log_prob"][1]["PowerSpherical.log_prob"] = lambda: power().log_prob(value)
        groups["sample"][1]["PowerSpherical.rsample"] = lambda: power().rsample()
    return time_groups(groups, n, repeats, dtype, device, seed)


def _log_prob_accuracy(dtype: torch.dtype, quick: bool) -> dict[str, Any]:
    """Max error of ``log_prob`` in units of ``eps * max(1, |log p|)`` on a time x angle grid.

    The reference is taken at the exact angle between the value and the location as
    represented in ``dtype`` (computed in mpmath), so the error is that of the evaluation.
    """
    from distributions import reference

    if quick:  # seconds, not minutes: the small-time reference is an adaptive quadrature
        times, angles = [1e-3, 0.3, 30.0], [0.0, 1.5, 3.1, math.pi]
    else:
        times = [10.0 ** (-6 + i) for i in range(10)]
        angles = [0.0, 1e-3, 0.5, 1.5, 2.5, 3.1, math.pi - 1e-6, math.pi]
    loc64 = normalize(torch.tensor([2.0, -1.0, 2.0], dtype=torch.float64), dim=-1)
    tangent = normalize(torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64), dim=-1)
    theta = torch.tensor(angles, dtype=torch.float64).unsqueeze(-1)
    value = (torch.cos(theta) * loc64 + torch.sin(theta) * tangent).to(dtype)
    loc = loc64.to(dtype)
    exact = [reference.sphere_angle(v, loc.tolist()) for v in value.tolist()]
    t_list = torch.tensor(times, dtype=torch.float64).to(dtype).double().tolist()
    ref = torch.tensor(
        [[float(reference.sphere_log_density(a, t)) for a in exact] for t in t_list],
        dtype=torch.float64,
    )
    time = torch.tensor(t_list, dtype=dtype).unsqueeze(-1)
    with torch.no_grad():
        log_p = SphereHeatKernel(loc, time, validate_args=False).log_prob(value).double()
    err = (log_p - ref).abs() / ref.abs().clamp(min=1.0) / torch.finfo(dtype).eps
    i, j = divmod(int(err.argmax()), len(angles))
    return {
        "max_error_eps": float(err.max()),
        "median_error_eps": float(err.median()),
        "at": {"time": t_list[i], "angle": angles[j]},
        "points": err.numel(),
        "times": t_list,
        "angles": angles,
    }


def _kl_accuracy(dtype: torch.dtype, quick: bool) -> dict[str, Any]:
    kl_times = _KL_TIMES[1::3] if quick else _KL_TIMES
    times = torch.tensor(kl_times, dtype=torch.float64).to(torch.float32).double().tolist()
    ref = torch.tensor(
        [reference_value("sphere_kl_to_uniform", t) for t in times], dtype=torch.float64
    )
    time = torch.tensor(times, dtype=dtype)
    loc = torch.tensor([0.0, 0.0, 1.0], dtype=dtype)
    kl = kl_divergence(SphereHeatKernel(loc, time), SphereUniform(dtype=dtype)).double()
    rel = (kl - ref).abs() / ref / torch.finfo(dtype).eps
    return {"max_rel_error_eps": float(rel.max()), "at_time": times[int(rel.argmax())]}


def measure_sphere(
    n: int,
    repeats: int,
    dtypes: Sequence[torch.dtype],
    devices: Sequence[torch.device],
    accuracy: bool,
    quick: bool,
    seed: int = 0,
) -> dict[str, Any]:
    """Throughput on every device and dtype, then accuracy (without mpmath: skipped)."""
    out: dict[str, Any] = {
        "n": n,
        "power_spherical": (
            "measured"
            if PowerSpherical is not None
            else "skipped: power-spherical is not installed (pip install 'manifold-vae[bench]')"
        ),
        "time_range": list(SPHERE_TIME_RANGE),
        "throughput": [
            rec
            for device in devices
            for dtype in dtypes
            for rec in _throughput(n, repeats, dtype, device, seed)
        ],
    }
    if not accuracy:
        out["accuracy"] = {"available": False, "reason": "skipped"}
        return out
    try:
        from distributions import reference  # noqa: F401
    except ImportError:
        out["accuracy"] = {"available": False, "reason": "mpmath is not installed"}
        return out
    out["accuracy"] = {"available": True}
    for dtype in dtypes:
        name = str(dtype).removeprefix("torch.")
        out["accuracy"][name] = {
            "log_prob": _log_prob_accuracy(dtype, quick),
            "kl_to_uniform": _kl_accuracy(dtype, quick),
        }
    return out


def sphere_lines(result: dict[str, Any]) -> list[str]:
    """The report lines of :func:`measure_sphere`."""
    lines = [
        f"SphereHeatKernel: n = {result['n']:,} elements per call, time log-uniform on "
        f"{tuple(result['time_range'])}; baseline ProjectedNormal (concentration 1/sqrt(2t))",
        f"Power Spherical (kappa 1/2t): {result.get('power_spherical', 'not measured')}",
        f"{'device':<7}{'dtype':<9}{'operation':<29}{'median ms':>10}{'Melem/s':>9}  x baseline"
        "  x PowerSpherical",
    ]
    for rec in result["throughput"]:
        power = next((c for k, c in rec["candidates"].items() if k.startswith("Power")), None)
        for name, s in rec["candidates"].items():
            ratio = "(baseline)" if name == rec["baseline"] else f"{s['ratio_median']:.3f}"
            vs_power = "" if power is None else f"{power['median_s'] / s['median_s']:>10.3f}"
            lines.append(
                f"{rec['device']:<7}{rec['dtype']:<9}{name:<29}{1e3 * s['median_s']:>10.2f}"
                f"{s['median_melem_per_s']:>9.3f}  {ratio:<10}{vs_power}"
            )
    acc = result["accuracy"]
    if not acc.get("available"):
        lines.append(f"SphereHeatKernel accuracy: {acc.get('reason')}")
        return lines
    for name, r in acc.items():
        if name == "available":
            continue
        lp, kl = r["log_prob"], r["kl_to_uniform"]
        lines.append(
            f"  {name}: log_prob {lp['max_error_eps']:.2f} eps x max(1, |log p|) (median "
            f"{lp['median_error_eps']:.2f}) over {lp['points']} points, times "
            f"[{lp['times'][0]:.0e}, {lp['times'][-1]:.0e}], at time={lp['at']['time']:.3g}, "
            f"angle={lp['at']['angle']:.4g}; KL to uniform {kl['max_rel_error_eps']:.2f} eps "
            f"relative (at time={kl['at_time']:.3g})"
        )
    return lines
