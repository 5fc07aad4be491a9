"""Interleaved wall-clock timing of candidate functions against a baseline.

Candidates are called A B C A B C ... after one warm-up call each, so that a noisy machine slows
them alike; a summary gives the median and the best of the repeats and the throughput ratios to
the baseline measured in the same run. CUDA devices are synchronised around every call.
"""

from __future__ import annotations

import statistics
import time as _time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["time_groups", "time_interleaved"]


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


def time_groups(
    groups: dict[str, tuple[str, dict[str, Any]]],
    n: int,
    repeats: int,
    dtype: torch.dtype,
    device: torch.device,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Time each operation's candidates against its baseline, in a forked, seeded RNG.

    Parameters
    ----------
    groups : dict of str to (str, dict of str to callable)
        Operation -> ``(baseline name, {candidate name: function})``, the baseline among the
        candidates; each function works on ``n`` elements.
    n : int
        Elements per call (for the throughputs).
    repeats : int
        Timed calls of each candidate.
    dtype : torch.dtype
        Recorded with the results.
    device : torch.device
        Where the functions run (synchronised if CUDA; its RNG is forked too).
    seed : int
        Seed of torch's global RNG during the timing; the caller's RNG state is unchanged.

    Returns
    -------
    list of dict
        One record per operation: ``device``, ``dtype``, ``operation``, ``baseline`` and, per
        candidate, the times and the throughput ratios to the baseline.
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
