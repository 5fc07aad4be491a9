r"""Benchmark of the circle heat kernel: speed against torch's von Mises, accuracy against mpmath.

The sphere heat kernel is measured too, against Pyro's ``ProjectedNormal``
(:mod:`distributions._sphere_benchmark`).

Run ``python -m distributions.benchmark --help``. In one run it measures, on batches of ``n``
elements with per-element random parameters (``loc`` uniform, ``time`` log-uniform on
``TIME_RANGE``, the von Mises ``concentration = 1 / (2 time)`` matched to the same spread):

* ``CircleHeatKernel.log_prob`` (and its ``torch.where`` path, the one used on CUDA) against
  ``torch.distributions.VonMises.log_prob``;
* ``CircleHeatKernel.rsample`` against ``VonMises.sample`` (a rejection sampler);
* the error of ``log_prob``, of the KL to the uniform distribution and of the KL between two
  kernels against the mpmath references of :mod:`distributions.reference` (skipped, with a
  message, when mpmath is not installed).

Timed candidates are interleaved (A B C A B C ...) so that a noisy machine slows them alike;
the report gives the median and the best of the repeats and the throughput ratios to the
baseline measured in the same run. CUDA is timed too when available (synchronised).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import platform
import statistics
import sys
import time as _time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.distributions import VonMises, kl_divergence

from ._series import _log_density_where
from ._sphere_benchmark import measure_sphere, sphere_lines
from .angles import PI, wrap_angle
from .circle import CircleHeatKernel

__all__ = [
    "TARGETS",
    "TIME_RANGE",
    "format_report",
    "log_prob_accuracy",
    "main",
    "measure_accuracy",
    "measure_throughput",
    "run",
    "time_interleaved",
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

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: The branch-free evaluation that CUDA uses, timed for information (no target on the CPU:
#: there ``log_prob`` takes the per-element path).
_WHERE_PATH = "log_prob, torch.where path"
_MPMATH_MISSING = "mpmath is not installed (pip install 'manifold-vae[dev]'): accuracy skipped"


# ---------------------------------------------------------------------------------------------
# Throughput


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], object], device: torch.device) -> float:
    _synchronize(device)
    start = _time.perf_counter()
    fn()
    _synchronize(device)
    return _time.perf_counter() - start


def time_interleaved(
    candidates: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> dict[str, list[float]]:
    """Wall times of each candidate, interleaved A B C A B C ... after one warm-up call each.

    Parameters
    ----------
    candidates : dict of str to callable
        Functions without arguments, each doing the work once.
    repeats : int
        Timed calls of each candidate.
    device : torch.device
        Synchronised around each call when it is a CUDA device.

    Returns
    -------
    dict of str to list of float
        Seconds per call, in the order of the repeats.
    """
    for fn in candidates.values():
        _time_once(fn, device)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            times[name].append(_time_once(fn, device))
    return times


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
        _WHERE_PATH: lambda: _log_density_where(wrap_angle(value - loc), time),
    }
    sample = {
        "VonMises.sample": lambda: von_mises().sample(),
        "CircleHeatKernel.rsample": lambda: heat().rsample(),
    }
    return {"log_prob": ("VonMises.log_prob", log_prob), "sample": ("VonMises.sample", sample)}


def _summary(times: list[float], baseline: list[float], n: int) -> dict[str, Any]:
    median, best = statistics.median(times), min(times)
    base_median, base_best = statistics.median(baseline), min(baseline)
    paired = statistics.median(b / t for b, t in zip(baseline, times, strict=True))
    return {
        "times_s": times,
        "median_s": median,
        "best_s": best,
        "median_melem_per_s": n / median / 1e6,
        "best_melem_per_s": n / best / 1e6,
        "ratio_median": base_median / median,
        "ratio_best": base_best / best,
        "ratio_paired_median": paired,
    }


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


def time_groups(
    groups: dict[str, tuple[str, dict[str, Any]]],
    n: int,
    repeats: int,
    dtype: torch.dtype,
    device: torch.device,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Time each operation's candidates against its baseline, in a forked, seeded RNG.

    ``groups`` maps an operation to ``(baseline name, {candidate name: function})``; the
    functions work on ``n`` elements. Returns one record per operation: ``device``, ``dtype``,
    ``operation``, ``baseline`` and, per candidate, the times and the throughput ratios to the
    baseline (the caller's RNG state is unchanged).
    """
    records = []
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices), torch.no_grad():
        torch.manual_seed(seed)
        for operation, (baseline, fns) in groups.items():
            times = time_interleaved(fns, repeats, device)
            records.append(
                {
                    "device": str(device),
                    "dtype": str(dtype).removeprefix("torch."),
                    "operation": operation,
                    "baseline": baseline,
                    "candidates": {k: _summary(v, times[baseline], n) for k, v in times.items()},
                }
            )
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


@functools.cache
def _reference(name: str, *args: float) -> float:
    """A cached mpmath reference value (the KL grids are shared by both dtypes)."""
    from . import reference

    return float(getattr(reference, name)(*args))


def log_prob_accuracy(
    dtype: torch.dtype, times: Sequence[float], angles: Sequence[float], locs: Sequence[float]
) -> dict[str, Any]:
    r"""Maximum error of ``log_prob`` over a grid, in units of ``eps * max(1, |log p|)``.

    Values are ``wrap(loc + angle)``; the reference is taken at the exact difference of the
    value and the location as represented in ``dtype``, so the error is that of the evaluation.
    The ``torch.where`` path (used on CUDA) is measured on the same grid.
    """
    from . import reference

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
        where = _log_density_where(wrap_angle(value - loc), time)
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
    from .circle import CircleUniform

    tiny = torch.finfo(dtype).tiny
    kept = [t for t in _as_floats(times, torch.float32) if -2 * t >= math.log(tiny)]
    ref = torch.tensor([_reference("circle_kl_to_uniform", t) for t in kept], dtype=torch.float64)
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
    ref = torch.tensor([_reference("circle_kl", *c) for c in cases], dtype=torch.float64)
    err = (kl - ref).abs() / ref.abs().clamp(min=1.0) / torch.finfo(dtype).eps
    return {"max_error_eps": float(err.max()), "errors_eps": err.tolist()}


def measure_accuracy(dtypes: Sequence[torch.dtype], quick: bool = False) -> dict[str, Any]:
    """All accuracy measurements, or ``{"available": False, "reason": ...}`` without mpmath."""
    try:
        from . import reference
    except ImportError:
        return {"available": False, "reason": _MPMATH_MISSING}
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


def _throughput_lines(records: list[dict[str, Any]], n: int, repeats: int) -> list[str]:
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
            elif name == _WHERE_PATH and rec["device"] == "cpu":
                target = "(CUDA code path, for information)"
            row = (
                f"{rec['device']:<7}{rec['dtype']:<9}{name:<29}{1e3 * s['median_s']:>10.2f}"
                f"{1e3 * s['best_s']:>9.2f}{s['median_melem_per_s']:>9.2f}  {ratio:<25}{target}"
            )
            lines.append(row.rstrip())
    return lines


def _accuracy_lines(acc: dict[str, Any]) -> list[str]:
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


def format_report(result: dict[str, Any]) -> str:
    """The human-readable table of a :func:`run` result."""
    lines = [f"distributions benchmark, torch {result['torch_version']}, {result['timestamp']}"]
    lines += _throughput_lines(result["throughput"], result["n"], result["repeats"])
    lines.append("")
    lines += _accuracy_lines(result["accuracy"])
    if "sphere" in result:
        lines += ["", *sphere_lines(result["sphere"])]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Entry point


def run(
    n: int = 10**6,
    repeats: int = 5,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    devices: Sequence[torch.device] | None = None,
    accuracy: bool = True,
    quick: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure throughput on every device and dtype, then accuracy; return the JSON record."""
    if devices is None:
        devices = [torch.device("cpu")]
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
    result: dict[str, Any] = {
        "benchmark": "distributions.CircleHeatKernel vs torch.distributions.VonMises",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "num_threads": torch.get_num_threads(),
        "devices": [str(d) for d in devices],
        "device_names": [_device_name(d) for d in devices],
        "dtypes": [str(d).removeprefix("torch.") for d in dtypes],
        "n": n,
        "repeats": repeats,
        "seed": seed,
        "time_range": list(TIME_RANGE),
        "targets": TARGETS,
        "throughput": [
            rec
            for device in devices
            for dtype in dtypes
            for rec in measure_throughput(n, repeats, dtype, device, seed)
        ],
    }
    result["accuracy"] = (
        measure_accuracy(dtypes, quick) if accuracy else {"available": False, "reason": "skipped"}
    )
    # the sphere's small-time log_prob is a 28-node quadrature: a smaller batch
    result["sphere"] = measure_sphere(
        max(n // 20, 1), repeats, dtypes, devices, accuracy, quick, seed
    )
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or "python -m distributions.benchmark",
        description="Throughput of CircleHeatKernel against torch's VonMises and accuracy "
        "against mpmath; prints a table and optionally writes JSON.",
    )
    parser.add_argument("--n", type=int, default=10**6, help="elements per batch (10^6)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per candidate (5)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: the CPU, and CUDA when available",
    )
    parser.add_argument("--quick", action="store_true", help="a reduced accuracy grid")
    parser.add_argument("--no-accuracy", action="store_true", help="skip the mpmath part")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _devices(choice: str, parser: argparse.ArgumentParser) -> list[torch.device] | None:
    if choice == "auto":
        return None
    if choice == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available to torch")
    return [torch.device(choice)]


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Command-line entry point; returns the exit status (argument errors exit with 2).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
    prog : str, optional
        Program name in usage and error messages.
    """
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeats < 1:
        parser.error(f"--n and --repeats must be positive, got {args.n} and {args.repeats}")
    dtypes = list(_DTYPES.values()) if args.dtype == "both" else [_DTYPES[args.dtype]]
    result = run(
        n=args.n,
        repeats=args.repeats,
        dtypes=dtypes,
        devices=_devices(args.device, parser),
        accuracy=not args.no_accuracy,
        quick=args.quick,
        seed=args.seed,
    )
    print(format_report(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
