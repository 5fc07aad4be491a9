"""The distributions benchmark (``python -m manifold_vae.bench.distributions``), small budget."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import distributions
from manifold_vae.bench import distributions as benchmark
from manifold_vae.bench.circle import TARGETS
from manifold_vae.bench.reference import MPMATH_MISSING
from manifold_vae.bench.timing import time_interleaved

#: Accuracy bounds, in units of the dtype's eps (the package promises a few eps; the issue's
#: float64 target, 1e-12 relative, is 4500 eps).
LOG_PROB_EPS = 100
KL_TO_UNIFORM_EPS = 100
#: The heat-vs-heat KL is documented to 1e-13 * max(1, KL), i.e. 450 float64 eps.
KL_HEAT_HEAT_EPS = 450


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "nested" / "distributions.json"
    argv = ["--n", "1000", "--repeats", "1", "--quick", "--device", "cpu", "--out", str(out)]
    assert benchmark.main(argv) == 0
    return json.loads(out.read_text())


def test_record_describes_the_run(record):
    for key in ("torch_version", "timestamp", "devices", "dtypes", "n", "repeats", "num_threads"):
        assert key in record
    assert record["torch_version"] == torch.__version__
    assert record["n"] == 1000 and record["repeats"] == 1
    assert record["devices"] == ["cpu"] and record["dtypes"] == ["float32", "float64"]


def test_throughput_records(record):
    seen = {(r["device"], r["dtype"], r["operation"]) for r in record["throughput"]}
    assert seen == {("cpu", d, op) for d in ("float32", "float64") for op in ("log_prob", "sample")}
    for rec in record["throughput"]:
        assert rec["baseline"] in rec["candidates"] and len(rec["candidates"]) >= 2
        assert rec["target"] == TARGETS[rec["operation"]]
        for summary in rec["candidates"].values():
            assert len(summary["times_s"]) == 1
            assert summary["best_s"] <= summary["median_s"]
            assert summary["median_melem_per_s"] > 0 and summary["ratio_median"] > 0
        assert rec["candidates"][rec["baseline"]]["ratio_median"] == 1.0
    names = {n for r in record["throughput"] for n in r["candidates"]}
    assert {"CircleHeatKernel.log_prob", "log_prob, torch.where path"} <= names
    assert {"CircleHeatKernel.rsample", "VonMises.sample", "VonMises.log_prob"} <= names


def test_accuracy_is_within_a_few_eps(record):
    accuracy = record["accuracy"]
    assert accuracy["available"]
    for dtype in ("float32", "float64"):
        log_prob = accuracy["log_prob"][dtype]
        assert log_prob["max_error_eps"] < LOG_PROB_EPS
        assert log_prob["where_max_error_eps"] < LOG_PROB_EPS
        assert accuracy["kl_to_uniform"][dtype]["max_rel_error_eps"] < KL_TO_UNIFORM_EPS
        assert accuracy["kl_heat_heat"][dtype]["max_error_eps"] < KL_HEAT_HEAT_EPS
    grid = accuracy["grid"]
    assert min(grid["times"]) == pytest.approx(1e-8) and max(grid["times"]) == pytest.approx(1e4)
    assert min(grid["angles"]) == pytest.approx(-torch.pi) and 0.0 in grid["angles"]
    assert accuracy["log_prob"]["float64"]["limit_eps"] == pytest.approx(1e-12 / 2**-52)


def test_report_is_printed(record, capsys):
    text = benchmark.format_report(record)
    assert "x baseline" in text and "CircleHeatKernel.rsample" in text
    assert "log_prob: max |error|" in text and "KL(heat || uniform)" in text


def test_candidates_are_interleaved():
    calls: list[str] = []
    candidates = {name: (lambda name=name: calls.append(name)) for name in "AB"}
    times = time_interleaved(candidates, 3, torch.device("cpu"))
    assert calls == ["A", "B"] + ["A", "B"] * 3  # one warm-up call each, then interleaved
    assert {k: len(v) for k, v in times.items()} == {"A": 3, "B": 3}


def test_accuracy_is_skipped_without_mpmath(monkeypatch):
    monkeypatch.delitem(sys.modules, "distributions.reference", raising=False)
    monkeypatch.delattr(distributions, "reference", raising=False)
    monkeypatch.setitem(sys.modules, "mpmath", None)
    result = benchmark.run(n=100, repeats=1, dtypes=[torch.float64], devices=[torch.device("cpu")])
    assert result["accuracy"] == {"available": False, "reason": MPMATH_MISSING}
    assert "mpmath is not installed" in benchmark.format_report(result)


def test_gpu_benchmark_needs_cuda(monkeypatch, capsys):
    from manifold_vae.bench import gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as error:
        gpu.main(["--sizes", "1000"])
    assert error.value.code == 2
    assert "CUDA is not available" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs a GPU"):
        gpu.run(sizes=(1000,))


def test_gpu_benchmark_bandwidth_fractions():
    """Bytes per element times the rate over the bandwidth, for every candidate."""
    from manifold_vae.bench import gpu

    records = [
        {
            "operation": "log_prob",
            "candidates": {"a": {"best_melem_per_s": 1000.0}, "b": {"best_melem_per_s": 10.0}},
        }
    ]
    gpu._add_bandwidth(records, "sphere", 32e9)
    fractions = [c["bandwidth_fraction"] for c in records[0]["candidates"].values()]
    assert fractions == pytest.approx([1.0, 0.01])
