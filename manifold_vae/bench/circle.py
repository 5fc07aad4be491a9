r"""The circle heat kernel: speed against torch's von Mises, accuracy against mpmath.

Part of ``python -m manifold_vae.bench.distributions``
(:mod:`manifold_vae.bench.distributions`). On batches of ``n`` elements with per-element random
parameters (``loc`` uniform, ``time`` log-uniform on :data:`TIME_RANGE`, the von Mises
``concentration = 1 / (2 time)`` matched to the same spread) it times

* ``CircleHeatKernel.log_prob`` (and its ``torch.where`` path, the one used on CUDA) against
  ``torch.distributions.VonMises.log_prob``;
* ``CircleHeatKernel.rsample`` against ``VonMises.sample`` (a rejection sampler);

and measures the error of ``log_prob``, of the KL to the uniform distribution and of the KL
between two kernels against the mpmath references of :mod:`distributions.reference` (skipped,
with a message, when mpmath is not installed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.distributions import VonMises, kl_divergence

from distributions import CircleHeatKernel, CircleUniform
from distributions.angles import PI, wrap_angle
from distributions.circle import circle_log_density_where

from .reference import MPMATH_MISSING, reference_value
from .timing import time_groups

__all__ = [
    "KL_CASES",
    "LOG_PROB_TOLERANCE",
    "TARGETS",
    "TIME_RANGE",
    "WHERE_PATH",
    "accuracy_lines",
    "kl_heat_heat_accuracy",
    "kl_to_uniform_accuracy",
    "log_prob_accuracy",
    "measure_accuracy",
    "measure_throughput",
    "throughput_lines",
]

#: Diffusion times of the throughput batches, log-uniform (both series are exercised).
TIME_RANGE = (1e-2, 10.0)
#: Throughput targets of issue 2: candidate / baseline throughput, at least.
TARGETS = {"log_prob": 0.5, "sample": 10.0}
#: The accuracy target of ``log_prob`` in float64: absolute error <= 1e-12 * max(1, |log p|).
LOG_PROB_TOLERANCE = 1e-12
#: Heat-vs-heat KL cases ``(loc1, time1, loc2, time2)``; mpmath needs ~2 s for each.
KL_CASES = (
    (0.5, 5.0, -2.0, 0.05),
    (0.0, 0.1, 1.0, 0.3),
    (0.0, 1e-3, 2.5, 2.0),
    (0.0, 1e-5, 3.0, 1e-4),
)

#: The synchronisation-free evaluation that CUDA uses (both series on every element, blended),
#: timed for information (no target on the CPU: there ``log_prob`` skips a series no element
#: of a chunk needs).
WHERE_PATH = "log_prob, torch.where path"


# ---------------------------------------------------------------------------------------------
# Throughput


def _inputs(n: int, dtype: torch.dtype, device: torch.device, seed: int) -> dict[str, Tensor]:
    """Per-element random ``value``, ``loc``, ``time`` and matched von Mises ``concentration``."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = (math.log(t) for t in TIME_RANGE)
    time = torch.exp(lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64))
    loc = (2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1) * PI
    value = wrap_angle((2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1) * PI)
    out = {"value": value, "loc": loc, "time": time, "concentration": 0.5 / time}
    return {k: v.to(dtype=dtype, device=device) for k, v in out.items()}


def _candidates(x: dict[str, Tensor]) -> dict[str, tuple[str, dict[str, Callable[[], object]]]]:
    """The timed groups: operation -> (baseline name, candidates including the baseline)."""
    value, loc, time, kappa = x["value"], x["loc"], x["time"], x["concentration"]

    def heat() -> CircleHeatKernel:
        return CircleHeatKernel(loc, time, validate_args=False)

    def von_mises() -> VonMises:
        return VonMises(loc, kappa, validate_args=False)

    log_prob = {
        "VonMises.log_prob": lambda: von_mises().log_prob(value),
        "CircleHeatKernel.log_prob": lambda: heat().log_prob(value),
        WHERE_PATH: lambda: circle_log_density_where(wrap_angle(value - loc), time),
    }
    sample = {
        "VonMises.sample": lambda: von_mises().sample(),
        "CircleHeatKernel.rsample": lambda: heat().rsample(),
    }
    return {"log_prob": ("VonMises.log_prob", log_prob), "sample": ("VonMises.sample", sample)}


def measure_throughput(
    n: int, repeats: int, dtype: torch.dtype, device: torch.device, seed: int = 0
) -> list[dict[str, Any]]:
    """Time ``log_prob`` and sampling of the heat kernel and the von Mises distribution.

    Torch's random number generators are forked, so the caller's RNG state is unchanged.

    Returns
    -------
    list of dict
        One record per operation: ``device``, ``dtype``, ``operation``, ``baseline``, ``target``
        and, per candidate, the times and the throughput ratios to the baseline.
    """
    x = _inputs(n, dtype, device, seed)
    records = time_groups(_candidates(x), n, repeats, dtype, device, seed)
    for record in records:
        record["target"] = TARGETS[record["operation"]]
    return records


# ---------------------------------------------------------------------------------------------
# Accuracy against mpmath


def _grids(quick: bool) -> dict[str, Any]:
    """Times, angles and locations of the accuracy grids (``quick``: a reduced grid)."""
    n_times, n_angles, n_kl = (9, 8, 7) if quick else (40, 16, 25)
    return {
        "times": [10.0 ** (-8 + 12 * i / (n_times - 1)) for i in range(n_times)],
        # Equispaced from -pi (the antipode): includes 0 and -pi.
        "angles": [-PI + 2 * PI * j / n_angles for j in range(n_angles)],
        "locs": [0.0, 2.0],
        "kl_times": [10.0 ** (-8 + 12 * i / (n_kl - 1)) for i in range(n_kl)],
        "kl_cases": KL_CASES[:1] if quick else KL_CASES,
    }


def _as_floats(values: Sequence[float], dtype: torch.dtype) -> list[float]:
    """The values as the dtype represents them (the reference is taken at these)."""
    return torch.tensor(values, dtype=torch.float64).to(dtype).double().tolist()


def log_prob_accuracy(
    dtype: torch.dtype, times: Sequence[float], angles: Sequence[float], locs: Sequence[float]
) -> dict[str, Any]:
    r"""Maximum error of ``log_prob`` over a grid, in units of ``eps * max(1, |log p|)``.

    Values are ``wrap(loc + angle)``; the reference is taken at the exact difference of the
    value and the location as represented in ``dtype``, so the error is that of the evaluation.
    The ``torch.where`` path (used on CUDA) is measured on the same grid.
    """
    from distributions import reference

    mp = reference.mp
    grid = [(t, a, m) for t in times for a in angles for m in locs]
    time = torch.tensor([g[0] for g in grid], dtype=torch.float64).to(dtype)
    loc = torch.tensor([g[2] for g in grid], dtype=torch.float64).to(dtype)
    value = wrap_angle(torch.tensor([g[1] + g[2] for g in grid], dtype=torch.float64)).to(dtype)
    ref = []
    inputs = (value.double().tolist(), loc.double().tolist(), time.double().tolist())
    for v, m, t in zip(*inputs, strict=True):
        with mp.workdps(reference.DPS):
            ref.append(float(reference.circle_log_density(mp.mpf(v) - mp.mpf(m), t)))
    ref_t = torch.tensor(ref, dtype=torch.float64)
    scale = torch.finfo(dtype).eps * ref_t.abs().clamp(min=1.0)
    out: dict[str, Any] = {"eps": torch.finfo(dtype).eps, "points": len(grid)}
    with torch.no_grad():
        impl = CircleHeatKernel(loc, time, validate_args=False).log_prob(value)
        where = circle_log_density_where(wrap_angle(value - loc), time)
    for key, result in (("", impl), ("where_", where)):
        err = (result.double() - ref_t).abs() / scale
        i = int(err.argmax())
        out[f"{key}max_error_eps"] = float(err[i])
        if not key:
            out["median_error_eps"] = float(err.median())
            out["at"] = {"time": time[i].item(), "value": value[i].item(), "loc": loc[i].item()}
    if dtype == torch.float64:
        out["limit_eps"] = LOG_PROB_TOLERANCE / torch.finfo(dtype).eps
    return out


def kl_to_uniform_accuracy(dtype: torch.dtype, times: Sequence[float]) -> dict[str, Any]:
    """Maximum relative error of the KL to the uniform distribution, in units of eps.

    Times are rounded to float32 (so both dtypes share the reference values); those at which
    the KL (about ``exp(-2 time)``) would underflow the dtype are left out.
    """
    tiny = torch.finfo(dtype).tiny
    kept = [t for t in _as_floats(times, torch.float32) if -2 * t >= math.log(tiny)]
    ref = torch.tensor(
        [reference_value("circle_kl_to_uniform", t) for t in kept], dtype=torch.float64
    )
    time = torch.tensor(kept, dtype=dtype)
    kl = kl_divergence(CircleHeatKernel(torch.zeros_like(time), time), CircleUniform())
    rel = ((kl.double() - ref).abs() / ref) / torch.finfo(dtype).eps
    i = int(rel.argmax())
    return {
        "max_rel_error_eps": float(rel[i]),
        "at_time": kept[i],
        "times": kept,
        "left_out_underflow": len(times) - len(kept),
    }


def kl_heat_heat_accuracy(
    dtype: torch.dtype, cases: Sequence[tuple[float, float, float, float]]
) -> dict[str, Any]:
    """Error of the heat-vs-heat KL in units of ``eps * max(1, KL)``, per case.

    Parameters are rounded to float32, so both dtypes share the reference values.
    """
    cases = [tuple(_as_floats(c, torch.float32)) for c in cases]
    params = torch.tensor(cases, dtype=dtype)
    p = CircleHeatKernel(params[:, 0], params[:, 1])
    q = CircleHeatKernel(params[:, 2], params[:, 3])
    kl = kl_divergence(p, q).double()
    ref = torch.tensor([reference_value("circle_kl", *c) for c in cases], dtype=torch.float64)
    err = (kl - ref).abs() / ref.abs().clamp(min=1.0) / torch.finfo(dtype).eps
    return {"max_error_eps": float(err.max()), "errors_eps": err.tolist()}


def measure_accuracy(dtypes: Sequence[torch.dtype], quick: bool = False) -> dict[str, Any]:
    """All accuracy measurements, or ``{"available": False, "reason": ...}`` without mpmath."""
    try:
        from distributions import reference
    except ImportError:
        return {"available": False, "reason": MPMATH_MISSING}
    g = _grids(quick)
    out: dict[str, Any] = {
        "available": True,
        "reference": f"mpmath, {reference.DPS} digits (distributions.reference)",
        "grid": {k: g[k] for k in ("times", "angles", "locs", "kl_times")},
        "kl_cases": [_as_floats(c, torch.float32) for c in g["kl_cases"]],
    }
    for dtype in dtypes:
        name = str(dtype).removeprefix("torch.")
        out.setdefault("log_prob", {})[name] = log_prob_accuracy(
            dtype, g["times"], g["angles"], g["locs"]
        )
        out.setdefault("kl_to_uniform", {})[name] = kl_to_uniform_accuracy(dtype, g["kl_times"])
        out.setdefault("kl_heat_heat", {})[name] = kl_heat_heat_accuracy(dtype, g["kl_cases"])
    return out


# ---------------------------------------------------------------------------------------------
# Report


def throughput_lines(records: list[dict[str, Any]], n: int, repeats: int) -> list[str]:
    """The report's throughput table of :func:`measure_throughput` records (``n`` elements)."""
    head = (
        f"{'device':<7}{'dtype':<9}{'operation':<29}{'median ms':>10}{'best ms':>9}"
        f"{'Melem/s':>9}  {'x baseline (median/best)':<25}target"
    )
    lines = [
        f"Throughput: n = {n:,} elements per call, {repeats} interleaved repeats, "
        f"time log-uniform on {TIME_RANGE}, threads = {torch.get_num_threads()}",
        head,
        "-" * len(head),
    ]
    for rec in records:
        for name, s in rec["candidates"].items():
            is_base = name == rec["baseline"]
            ratio = "(baseline)" if is_base else f"{s['ratio_median']:.2f} / {s['ratio_best']:.2f}"
            ok = "ok" if s["ratio_median"] >= rec["target"] else "MISSED"
            target = f">={rec['target']:g} {ok}"
            if is_base:
                target = ""
            elif name == WHERE_PATH and rec["device"] == "cpu":
                target = "(CUDA code path, for information)"
            row = (
                f"{rec['device']:<7}{rec['dtype']:<9}{name:<29}{1e3 * s['median_s']:>10.2f}"
                f"{1e3 * s['best_s']:>9.2f}{s['median_melem_per_s']:>9.2f}  {ratio:<25}{target}"
            )
            lines.append(row.rstrip())
    return lines


def accuracy_lines(acc: dict[str, Any]) -> list[str]:
    """The report's accuracy lines of a :func:`measure_accuracy` result."""
    if not acc.get("available"):
        return [f"Accuracy: {acc.get('reason', 'not measured')}"]
    g = acc["grid"]
    lines = [
        f"Accuracy against {acc['reference']}",
        f"log_prob: max |error| / (eps * max(1, |log p|)) over {len(g['times'])} times in "
        f"[1e-8, 1e4] x {len(g['angles'])} angles (incl. 0, -pi) x {len(g['locs'])} locs",
    ]
    for name, r in acc["log_prob"].items():
        at = r["at"]
        lines.append(
            f"  {name}: {r['max_error_eps']:.2f} eps (median {r['median_error_eps']:.2f}; "
            f"torch.where path {r['where_max_error_eps']:.2f}) at time={at['time']:.3g}, "
            f"value={at['value']:.4f}, loc={at['loc']:g}"
            + (f"; limit 1e-12 = {r['limit_eps']:.0f} eps" if "limit_eps" in r else "")
        )
    lines.append("KL(heat || uniform): max relative error")
    for name, r in acc["kl_to_uniform"].items():
        lines.append(
            f"  {name}: {r['max_rel_error_eps']:.2f} eps at time={r['at_time']:.3g} over "
            f"{len(r['times'])} times ({r['left_out_underflow']} left out: KL underflows)"
        )
    lines.append(f"KL(heat || heat): max error / (eps * max(1, KL)) over {len(acc['kl_cases'])}")
    for name, r in acc["kl_heat_heat"].items():
        per_case = ", ".join(f"{e:.2f}" for e in r["errors_eps"])
        lines.append(f"  {name}: {r['max_error_eps']:.2f} eps (cases: {per_case})")
    return lines
