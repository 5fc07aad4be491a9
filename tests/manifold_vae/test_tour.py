"""The tour of the distributions (``make demo``): files written and numbers consistent."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch
from torch.distributions import kl_divergence

from distributions import CircleHeatKernel, CircleUniform
from manifold_vae.tour import TIMES, run_tour, thesis_eq_7_5

N_SAMPLES = 20_000


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    rng = torch.get_rng_state()
    result = run_tour(tmp_path_factory.mktemp("tour") / "demo", n_samples=N_SAMPLES)
    assert torch.equal(torch.get_rng_state(), rng), "the tour changed the global RNG state"
    return result


def test_files_are_written(tour):
    for path in (tour.table_path, tour.plot_path, tour.record_path):
        assert path.is_file() and path.parent.name == "demo"


def test_plot_is_a_png_of_reasonable_size(tour):
    data = tour.plot_path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 300
    assert 10_000 < len(data) < 5_000_000


def test_table_has_a_row_per_time(tour):
    text = tour.table_path.read_text()
    assert text == tour.table
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(TIMES)
    assert "KL to uniform" in rows[0] and "p(-pi)" in rows[0]


def test_record_matches_the_distributions(tour):
    record = json.loads(tour.record_path.read_text())
    assert record == json.loads(json.dumps(tour.record))
    time = torch.tensor(record["times"], dtype=torch.float64).unsqueeze(-1)
    angles = torch.tensor(record["angles"], dtype=torch.float64)
    kernel = CircleHeatKernel(torch.zeros_like(time), time)
    density = torch.tensor(record["density"], dtype=torch.float64)
    torch.testing.assert_close(density, kernel.log_prob(angles).exp(), rtol=1e-12, atol=0)
    kl = torch.tensor(record["kl_to_uniform"], dtype=torch.float64)
    entropy = torch.tensor(record["entropy"], dtype=torch.float64)
    torch.testing.assert_close(kl, math.log(2 * math.pi) - entropy, rtol=0, atol=1e-12)
    torch.testing.assert_close(kl, kl_divergence(kernel, CircleUniform()).squeeze(-1))
    mrl = torch.tensor(record["mean_resultant_length"], dtype=torch.float64)
    torch.testing.assert_close(mrl, torch.exp(-time.squeeze(-1)), rtol=1e-12, atol=0)
    assert (kl > 0).all() and (kl.diff() < 0).all()  # the kernel spreads out with time


def test_record_shows_the_thesis_eq_7_5_is_half_uniform_half_kernel(tour):
    comparison = tour.record["thesis_eq_7_5"]
    assert comparison["max_abs_error_of_half_uniform_half_kernel"] < 1e-12
    assert comparison["max_abs_difference"] > 0.1
    expected_peak = 0.5 * (comparison["kernel_at_0"] + 1 / (2 * math.pi))
    assert comparison["eq_7_5_at_0"] == pytest.approx(expected_peak, rel=1e-12)


def test_samples_match_the_density(tour):
    samples = tour.record["samples"]
    assert samples["n"] == N_SAMPLES
    tolerance = 5 / math.sqrt(N_SAMPLES)
    assert abs(samples["empirical_mean_resultant_length"] - math.exp(-samples["time"])) < tolerance
    widths = torch.tensor(samples["bin_edges"]).diff()
    mass = (torch.tensor(samples["histogram_density"]) * widths).sum()
    assert mass.item() == pytest.approx(1.0, abs=1e-6)


def test_thesis_eq_7_5_formula():
    theta = torch.linspace(-math.pi, math.pi, 101, dtype=torch.float64)
    p = CircleHeatKernel(torch.tensor(0.0, dtype=torch.float64), 0.3).log_prob(theta[:-1]).exp()
    wrong = thesis_eq_7_5(theta[:-1], 0.3)
    torch.testing.assert_close(wrong, 0.5 * (p + 1 / (2 * math.pi)), rtol=0, atol=1e-14)
