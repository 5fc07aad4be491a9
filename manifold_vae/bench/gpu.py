r"""GPU throughput of every exact kernel against its peers, with the memory bandwidth reached.

Run ``python -m manifold_vae.bench.gpu --out results/bench/gpu.json`` on a machine with CUDA.
For each size ``n`` (default :math:`10^7` and :math:`10^8` elements) and each family it times
``log_prob`` and ``rsample`` in float32, interleaved with its references in the same run
(:mod:`manifold_vae.bench.timing`):

=====================  ===========================================================
kernel                 references
=====================  ===========================================================
``CircleHeatKernel``   ``torch.distributions.VonMises`` (``sample``: not reparameterised)
``TorusHeatKernel``    two independent ``VonMises`` (the same number of angles)
``SphereHeatKernel``   Pyro ``ProjectedNormal``; Power Spherical (``power-spherical``,
                       the ``bench`` extra; skipped with a message when absent); this
                       package's ``VonMisesFisher`` and ``PowerSpherical``
=====================  ===========================================================

The fraction of memory bandwidth reached is the bytes an ideal kernel must move (its inputs
read once and its output written once, :data:`BYTES_PER_ELEMENT`) divided by the time, over the
device-to-device copy bandwidth measured in the same run (a clone of 2 GiB, read plus write).
A kernel far below 1 is bound by arithmetic or by its number of passes over memory, not by the
bytes it must move.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from pyro.distributions import ProjectedNormal
from torch import Tensor
from torch.distributions import VonMises
from torch.nn.functional import normalize

from distributions import CircleHeatKernel, SphereHeatKernel, TorusHeatKernel
from distributions import PowerSpherical as OurPowerSpherical
from distributions import VonMisesFisher as OurVMF
from distributions.angles import PI

from .sphere import PowerSpherical
from .timing import time_groups

__all__ = ["BYTES_PER_ELEMENT", "copy_bandwidth", "format_report", "main", "profile", "run"]

#: float32 values an ideal kernel reads and writes per element: (operation, family) -> count.
#: ``log_prob`` reads the value and the parameters and writes one number; ``rsample`` reads the
#: parameters and writes the value.
BYTES_PER_ELEMENT: dict[tuple[str, str], int] = {
    ("log_prob", "circle"): 4 * 4,  # value, loc, time -> log p
    ("sample", "circle"): 3 * 4,  # loc, time -> value
    ("log_prob", "torus"): 6 * 4,  # value (2), loc (2), time -> log p
    ("sample", "torus"): 5 * 4,  # loc (2), time -> value (2)
    ("log_prob", "sphere"): 8 * 4,  # value (3), loc (3), time -> log p
    ("sample", "sphere"): 7 * 4,  # loc (3), time -> value (3)
}


def copy_bandwidth(device: torch.device, gib: float = 2.0, repeats: int = 10) -> float:
    """Device-to-device copy bandwidth in bytes per second (bytes read plus bytes written)."""
    x = torch.empty(int(gib * 2**30) // 4, dtype=torch.float32, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        y.copy_(x)
    end.record()
    torch.cuda.synchronize(device)
    seconds = start.elapsed_time(end) / 1e3 / repeats
    del x, y
    torch.cuda.empty_cache()
    return 2 * gib * 2**30 / seconds


def _times(n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device) -> Tensor:
    u = torch.rand(n, generator=gen, device=device)
    return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u)


def _angle_groups(
    n: int, device: torch.device, gen: torch.Generator, factors: int | None
) -> dict[str, Any]:
    """The circle (``factors=None``: scalar angles) or the torus of ``factors`` circles, each
    against as many independent von Mises distributions."""
    shape = (n,) if factors is None else (n, factors)
    time = _times(n, 1e-3, 10.0, gen, device)
    if factors is not None:
        time = time.unsqueeze(-1)
    loc = (2 * torch.rand(shape, generator=gen, device=device) - 1) * PI
    value = (2 * torch.rand(shape, generator=gen, device=device) - 1) * PI
    kappa = (0.5 / time).expand(shape)
    kernel = CircleHeatKernel if factors is None else TorusHeatKernel
    ref = "VonMises" if factors is None else f"{factors} x VonMises"

    def heat() -> CircleHeatKernel | TorusHeatKernel:
        return kernel(loc, time, validate_args=False)

    def vm() -> VonMises:
        return VonMises(loc, kappa, validate_args=False)

    def vm_log_prob() -> Tensor:
        log_p = vm().log_prob(value)
        return log_p if factors is None else log_p.sum(-1)

    return {
        "log_prob": (
            f"{ref}.log_prob",
            {
                f"{ref}.log_prob": vm_log_prob,
                f"{kernel.__name__}.log_prob": lambda: heat().log_prob(value),
            },
        ),
        "sample": (
            f"{ref}.sample",
            {
                f"{ref}.sample": lambda: vm().sample(),
                f"{kernel.__name__}.rsample": lambda: heat().rsample(),
            },
        ),
    }


def _sphere_groups(n: int, device: torch.device, gen: torch.Generator) -> dict[str, Any]:
    time = _times(n, 1e-2, 10.0, gen, device)
    loc = normalize(torch.randn(n, 3, generator=gen, device=device), dim=-1)
    value = normalize(torch.randn(n, 3, generator=gen, device=device), dim=-1)
    concentration = loc / torch.sqrt(2.0 * time).unsqueeze(-1)

    def heat() -> SphereHeatKernel:
        return SphereHeatKernel(loc, time, validate_args=False)

    def projected() -> ProjectedNormal:
        return ProjectedNormal(concentration, validate_args=False)

    log_prob: dict[str, Callable[[], object]] = {
        "ProjectedNormal.log_prob": lambda: projected().log_prob(value),
        "SphereHeatKernel.log_prob": lambda: heat().log_prob(value),
    }
    sample: dict[str, Callable[[], object]] = {
        "ProjectedNormal.rsample": lambda: projected().rsample(),
        "SphereHeatKernel.rsample": lambda: heat().rsample(),
    }
    kappa = 0.5 / time  # the same small-time spread as the heat kernel
    log_prob["VonMisesFisher.log_prob (ours)"] = lambda: OurVMF(
        loc, kappa, validate_args=False
    ).log_prob(value)
    sample["VonMisesFisher.rsample (ours)"] = lambda: OurVMF(
        loc, kappa, validate_args=False
    ).rsample()
    log_prob["PowerSpherical.log_prob (ours)"] = lambda: OurPowerSpherical(
        loc, kappa, validate_args=False
    ).log_prob(value)
    sample["PowerSpherical.rsample (ours)"] = lambda: OurPowerSpherical(
        loc, kappa, validate_args=False
    ).rsample()
    if PowerSpherical is not None:
        scale = 0.5 / time
        log_prob["PowerSpherical.log_prob"] = lambda: PowerSpherical(
            loc, scale, validate_args=False
        ).log_prob(value)
        sample["PowerSpherical.rsample"] = lambda: PowerSpherical(
            loc, scale, validate_args=False
        ).rsample()
    return {
        "log_prob": ("ProjectedNormal.log_prob", log_prob),
        "sample": ("ProjectedNormal.rsample", sample),
    }


_FAMILIES: dict[str, Callable[[int, torch.device, torch.Generator], dict[str, Any]]] = {
    "circle": functools.partial(_angle_groups, factors=None),
    "torus": functools.partial(_angle_groups, factors=2),
    "sphere": _sphere_groups,
}


def _add_bandwidth(records: list[dict[str, Any]], family: str, bandwidth: float) -> None:
    for record in records:
        per_element = BYTES_PER_ELEMENT[(record["operation"], family)]
        for summary in record["candidates"].values():
            rate = summary["best_melem_per_s"] * 1e6
            summary["bandwidth_fraction"] = rate * per_element / bandwidth


def run(
    sizes: Sequence[int] = (10**7, 10**8),
    families: Sequence[str] = ("circle", "torus", "sphere"),
    repeats: int = 5,
    seed: int = 0,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Time every family at every size in float32 on ``device`` (default: the current GPU).

    A size that does not fit in memory is recorded with the error and skipped.
    """
    if not torch.cuda.is_available():
        raise ValueError("device: CUDA is not available to torch; this benchmark needs a GPU")
    device = torch.device("cuda") if device is None else device
    bandwidth = copy_bandwidth(device)
    result: dict[str, Any] = {
        "benchmark": "GPU throughput of the exact kernels (float32)",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device_name": torch.cuda.get_device_name(device),
        "copy_bandwidth_bytes_per_s": bandwidth,
        "bytes_per_element": {f"{op}/{fam}": b for (op, fam), b in BYTES_PER_ELEMENT.items()},
        "power_spherical": PowerSpherical is not None,
        "records": [],
        "skipped": [],
    }
    for family in families:
        for n in sizes:
            gen = torch.Generator(device=device).manual_seed(seed)
            try:
                groups = _FAMILIES[family](n, device, gen)
                records = time_groups(groups, n, repeats, torch.float32, device, seed)
            except torch.OutOfMemoryError as error:
                result["skipped"].append({"family": family, "n": n, "error": str(error)[:200]})
                continue
            finally:
                groups = None
                torch.cuda.empty_cache()
            _add_bandwidth(records, family, bandwidth)
            for record in records:
                record.update(family=family, n=n)
            result["records"] += records
    return result


def profile(family: str, n: int, seed: int = 0, rows: int = 12) -> str:
    """``torch.profiler`` tables (by CUDA time) of one ``log_prob`` and one ``rsample`` call of
    the ``family``'s kernel on ``n`` elements: where the time goes."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as _profile

    device = torch.device("cuda")
    gen = torch.Generator(device=device).manual_seed(seed)
    groups = _FAMILIES[family](n, device, gen)
    tables = []
    for operation, (_, candidates) in groups.items():
        name = next(k for k in candidates if "HeatKernel" in k)  # the heat kernel's own
        fn = candidates[name]
        with torch.no_grad():
            fn()  # warm-up: caches and tables are built outside the profile
            torch.cuda.synchronize(device)
            with _profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                fn()
                torch.cuda.synchronize(device)
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows)
        tables.append(f"{name}, n = {n:.0e} ({operation}):\n{table}")
    return "\n".join(tables)


def format_report(result: dict[str, Any]) -> str:
    """The human-readable table of a :func:`run` result."""
    lines = [
        f"GPU benchmark on {result['device_name']}, torch {result['torch_version']}, float32",
        f"device-to-device copy: {result['copy_bandwidth_bytes_per_s'] / 1e12:.2f} TB/s "
        "(read + write)",
        f"{'family':<7} {'n':>10} {'candidate':<32} {'Gelem/s':>8} {'vs ref':>7} {'BW frac':>8}",
    ]
    for record in result["records"]:
        for name, s in record["candidates"].items():
            lines.append(
                f"{record['family']:<7} {record['n']:>10.0e} {name:<32} "
                f"{s['best_melem_per_s'] / 1e3:>8.3f} {s['ratio_best']:>6.2f}x "
                f"{s['bandwidth_fraction']:>8.3f}"
            )
    for skip in result["skipped"]:
        lines.append(f"skipped {skip['family']} n={skip['n']:.0e}: {skip['error']}")
    if not result["power_spherical"]:
        lines.append("Power Spherical not installed (pip install -e .[bench]): its rows skipped")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m manifold_vae.bench.gpu",
        description="float32 GPU throughput of the exact kernels against their peers, with the "
        "fraction of the measured copy bandwidth reached.",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10**7, 10**8], help="elements per call"
    )
    parser.add_argument("--families", nargs="+", choices=sorted(_FAMILIES), default=list(_FAMILIES))
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per candidate (5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    parser.add_argument(
        "--profile",
        choices=sorted(_FAMILIES),
        default=None,
        help="instead of timing, print torch.profiler tables of this family's kernel at the "
        "first size",
    )
    args = parser.parse_args(argv)
    if min(args.sizes) < 1 or args.repeats < 1:
        parser.error("--sizes and --repeats must be positive")
    if not torch.cuda.is_available():
        parser.error("CUDA is not available to torch; this benchmark needs a GPU")
    if args.profile is not None:
        print(profile(args.profile, args.sizes[0], args.seed))
        return 0
    result = run(args.sizes, args.families, args.repeats, args.seed)
    print(format_report(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
