"""The float32 table of the S^2 heat kernel (distributions._sphere_table): its error bound against
the float64 image quadrature on a dense grid and against mpmath, the power of that check (a
perturbed coefficient is detected), the switch to the quadrature, and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from distributions import _sphere_series as series
from distributions import _sphere_table as table
from distributions import reference

F64 = torch.float64
EPS32 = torch.finfo(torch.float32).eps


def _dense_grid(n: int = 20_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random points of the table's domain: uniform angles, the antipodal layer (pi - theta
    log-uniform down to 1e-12 t), log-uniform times, and the corners of the domain."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = math.log(table.TABLE_MIN_TIME), math.log(table.TABLE_MAX_TIME)
    time = torch.exp(lo + (hi - lo) * torch.rand(n, generator=g, dtype=F64))
    theta = torch.rand(n, generator=g, dtype=F64) * math.pi
    layer = torch.exp(math.log(1e-12) + math.log(1e13) * torch.rand(n // 2, generator=g, dtype=F64))
    theta[: n // 2] = (math.pi - layer * time[: n // 2]).clamp(min=0.0)
    corners_t = torch.tensor([table.TABLE_MIN_TIME, table.TABLE_MAX_TIME], dtype=F64)
    corners_a = torch.tensor([0.0, 0.5 * math.pi, math.pi - 1e-9, math.pi], dtype=F64)
    ct, ca = torch.meshgrid(corners_t, corners_a, indexing="ij")
    return torch.cat([theta, ca.reshape(-1)]), torch.cat([time, ct.reshape(-1)])


@pytest.fixture(scope="module")
def dense():
    theta, time = _dense_grid()
    return theta, time, series.image_residual(theta, time)


def test_table_is_within_its_bound_of_the_quadrature(dense):
    theta, time, exact = dense
    error = (table.table_residual(theta, time) - exact).abs()
    worst = error.argmax()
    assert error.max() <= table.TABLE_ERROR, (error.max(), theta[worst], time[worst])
    assert table.TABLE_ERROR <= EPS32 / 4  # a fraction of a float32 unit roundoff


def test_table_log_density_against_mpmath():
    """Float64 evaluation of the table against the mpmath reference, relative to max(1, |log p|)."""
    points = [(0.0, 2e-4), (0.4, 1e-3), (2.0, 0.01), (3.1, 0.03), (math.pi, 0.05), (1.0, 0.2),
              (2.9, 0.45), (math.pi - 1e-4, 0.3)]  # fmt: skip
    theta = torch.tensor([a for a, _ in points], dtype=F64)
    time = torch.tensor([t for _, t in points], dtype=F64)
    ref = torch.tensor([float(reference.sphere_log_density(a, t)) for a, t in points], dtype=F64)
    error = (table.table_log_density(theta, time) - ref).abs() / ref.abs().clamp(min=1.0)
    assert error.max() <= table.TABLE_ERROR, error


@pytest.mark.parametrize("seed", range(4))
def test_a_perturbed_coefficient_is_detected(dense, seed):
    """The grid check has power: any used cell, any coefficient, moved by 5x the bound."""
    g = torch.Generator().manual_seed(seed)
    coefficients = table._coefficients(F64, torch.device("cpu")).clone()
    theta, time, exact = dense
    v, u = table.table_coordinates(theta, time)
    cell = (v.floor().clamp(0, table._ANGLE_CELLS - 1) * table._TIME_CELLS).long()
    cell = cell + u.floor().clamp(0, table._TIME_CELLS - 1).long()
    hit = cell[torch.randint(len(cell), (1,), generator=g)].item()  # a cell the grid reaches
    k = int(torch.randint(table.POINTS**2, (1,), generator=g))
    coefficients[hit, k] += 5 * table.TABLE_ERROR
    error = (table.table_residual(theta, time, coefficients) - exact).abs()
    assert error.max() > table.TABLE_ERROR


def test_unused_cells_are_zero_and_used_cells_are_not():
    used = table._used_cells()
    coefficients = table._coefficients64()
    assert (coefficients[~used] == 0).all()
    assert (coefficients[used].abs().amax((-1, -2)) > 0).all()


def test_float32_uses_the_table_and_float64_the_quadrature():
    assert table.uses_table(torch.float32) and not table.uses_table(F64)
    theta = torch.tensor([0.3, 2.0, 3.1], dtype=torch.float32)
    time = torch.tensor([1e-3, 0.02, 0.4], dtype=torch.float32)
    torch.testing.assert_close(
        series.sphere_log_density(theta, time), table.table_log_density(theta, time), rtol=0, atol=0
    )
    exact = series._log_images(theta.double(), time.double())
    assert torch.equal(series.sphere_log_density(theta.double(), time.double()), exact)


def test_float32_is_continuous_at_the_table_switch():
    theta = torch.tensor([0.0, 1.0, 3.0, math.pi], dtype=torch.float32)
    below = torch.full_like(theta, table.TABLE_MIN_TIME)
    above = torch.nextafter(below, torch.ones_like(below))
    a, b = series.sphere_log_density(theta, below), series.sphere_log_density(theta, above)
    assert ((a - b).abs() <= 4 * EPS32 * a.abs().clamp(min=1.0)).all(), (a, b)


def test_float32_gradients_match_the_float64_quadrature():
    """d/dtheta and d/dt of the float32 table against the exact float64 gradients at the same
    (float32-rounded) inputs, including the antipodal layer, where ``PI - theta`` in float32
    carries the rounding of pi (the float32 quadrature has the same worst case: measured 1.0e-3
    and 2.2e-7 there, the table 6.9e-4 and 2.6e-7)."""
    theta, time = _dense_grid(2000, seed=5)
    theta = theta.clamp(max=math.pi - 1e-6).float().double()
    time = time.float().double()
    results = []
    for dtype in (torch.float32, F64):
        th = theta.to(dtype).requires_grad_(True)
        t = time.to(dtype).requires_grad_(True)
        log_p = series.sphere_log_density(th, t)
        results.append([g.double() for g in torch.autograd.grad(log_p.sum(), (th, t))])
    (g_theta32, g_t32), (g_theta64, g_t64) = results
    # scale of the terms: theta / 2t and theta^2 / 4t^2 + 1/t
    scale_theta = (theta / (2 * time)).clamp(min=1.0)
    scale_t = (theta**2 / (4 * time**2) + 1 / time).clamp(min=1.0)
    assert ((g_theta32 - g_theta64).abs() / scale_theta).max() < 2e-3
    assert ((g_t32 - g_t64).abs() / scale_t).max() < 1e-6
