r"""Benchmark of the exact distributions: speed against torch and Pyro, accuracy against mpmath.

Run ``python -m manifold_vae.bench.distributions --help`` (or ``manifold-vae bench``). In one
run it measures, on every device and dtype,

* the circle heat kernel against ``torch.distributions.VonMises`` and the mpmath references
  (:mod:`manifold_vae.bench.circle`);
* the sphere heat kernel against Pyro's ``ProjectedNormal`` and the mpmath references
  (:mod:`manifold_vae.bench.sphere`).

Timed candidates are interleaved (A B C A B C ...) so that a noisy machine slows them alike;
the report gives the median and the best of the repeats and the throughput ratios to the
baseline measured in the same run (:mod:`manifold_vae.bench.timing`). CUDA is timed too when
available (synchronised).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .circle import (
    TARGETS,
    TIME_RANGE,
    accuracy_lines,
    measure_accuracy,
    measure_throughput,
    throughput_lines,
)
from .sphere import measure_sphere, sphere_lines

__all__ = ["format_report", "main", "run"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ---------------------------------------------------------------------------------------------
# Report


def format_report(result: dict[str, Any]) -> str:
    """The human-readable table of a :func:`run` result."""
    lines = [f"distributions benchmark, torch {result['torch_version']}, {result['timestamp']}"]
    lines += throughput_lines(result["throughput"], result["n"], result["repeats"])
    lines.append("")
    lines += accuracy_lines(result["accuracy"])
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
    # the sphere is slower than the circle (table or quadrature per element): a smaller batch
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
        prog=prog or "python -m manifold_vae.bench.distributions",
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
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, as docs/performance.md)"
    )
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
    if args.threads < 1:
        parser.error(f"--threads must be positive, got {args.threads}")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
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
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
