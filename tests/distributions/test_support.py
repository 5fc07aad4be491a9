"""Supports, validation of parameters and values for every registered distribution; constraints."""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import distributions as D
from distributions.angles import wrap_angle
from distributions.constraints import angle, finite, positive_finite
from distributions.testing import angles, circle_heat_kernels, torus_heat_kernels
from tests.distributions.registry import EXAMPLES

DTYPES = [torch.float32, torch.float64]
#: Every constructor argument an error message may name.
PARAM_NAMES = ("loc", "time", "concentration", "n", "d")
_PARAM_WORD = re.compile(r"\b(" + "|".join(PARAM_NAMES) + r")\b")

examples = pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
with_bad_params = pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if e.bad_params], ids=lambda e: e.name
)


def _without_validation(dist):
    dist = copy.copy(dist)
    dist._validate_args = False
    return dist


def _first_param_named(message: str) -> str | None:
    """The parameter name that occurs first (as a word) in an error message."""
    hits = [(m.start(), m.group(0)) for m in _PARAM_WORD.finditer(message)]
    return min(hits)[1] if hits else None


def _failing_params(dist) -> set[str]:
    return {
        name
        for name, constraint in dist.arg_constraints.items()
        if not constraint.check(getattr(dist, name)).all()
    }


# --- samples lie in the support ---------------------------------------------------------------


@examples
@pytest.mark.parametrize("method", ["sample", "rsample"])
def test_samples_satisfy_support(example, dtype, method):
    dist = example.make(dtype)
    x = getattr(dist, method)((2000,))
    assert dist.support.check(x).all()
    assert dist.support is example.cls.support
    lp = dist.log_prob(x)  # validated: must not raise
    assert torch.isfinite(lp).all()


@given(
    dist=st.sampled_from(DTYPES).flatmap(
        lambda dtype: st.one_of(circle_heat_kernels(dtype), torus_heat_kernels(dtype=dtype))
    )
)
def test_random_kernels_sample_in_support(dist):
    x = dist.rsample((200,))
    assert x.dtype == dist.loc.dtype
    assert dist.support.check(x).all()
    assert torch.isfinite(dist.log_prob(x)).all()


@pytest.mark.parametrize("loc", [math.pi, -math.pi, 3.1415926, -3.1415926, 1e6, -1e6])
@pytest.mark.parametrize("time", [1e-30, 1e-12, 1e-8])
def test_samples_near_the_cut_stay_in_support(loc, time, dtype):
    dist = D.CircleHeatKernel(torch.tensor(loc, dtype=dtype), torch.tensor(time, dtype=dtype))
    x = dist.rsample((4000,))
    assert angle.check(x).all()


# --- bad parameters ---------------------------------------------------------------------------


@with_bad_params
def test_bad_params_raise_naming_the_argument(example, dtype):
    for make_bad in example.bad_params:
        failing = _failing_params(make_bad(dtype, False))
        assert failing, "a registered bad parameter satisfies every constraint"
        with pytest.raises(ValueError) as info:
            make_bad(dtype, True)
        assert _first_param_named(str(info.value)) in failing, str(info.value)


@with_bad_params
def test_bad_params_pass_without_validation(example, dtype):
    for make_bad in example.bad_params:
        dist = make_bad(dtype, False)
        assert not dist._validate_args
        dist.log_prob(torch.zeros(dist.event_shape, dtype=dtype))


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_torus_uniform_needs_a_positive_integer(n):
    with pytest.raises(ValueError) as info:
        D.TorusUniform(n)
    assert _first_param_named(str(info.value)) == "n"


@pytest.mark.parametrize("validate_args", [True, False])
def test_torus_heat_kernel_rejects_a_scalar_loc(validate_args):
    with pytest.raises(ValueError) as info:
        D.TorusHeatKernel(torch.tensor(0.3), torch.tensor(1.0), validate_args=validate_args)
    assert _first_param_named(str(info.value)) == "loc"


def test_torus_heat_kernel_rejects_a_time_of_the_wrong_length():
    with pytest.raises(ValueError) as info:
        D.TorusHeatKernel(torch.zeros(3), torch.ones(2))
    assert "time" in str(info.value)


# --- bad values ---------------------------------------------------------------------------------


@examples
def test_bad_values_raise(example, dtype):
    dist = example.make(dtype)
    values = example.bad_values(dtype)
    assert values
    for value in values:
        with pytest.raises(ValueError, match="value"):
            dist.log_prob(value)


@examples
def test_value_not_broadcastable_with_batch_raises(example, dtype):
    dist = example.make(dtype)
    dist = dist.expand(torch.Size([3]) + dist.batch_shape)
    shape = torch.Size([4]) + dist.batch_shape[1:]
    with pytest.raises(ValueError):
        dist.log_prob(torch.zeros(shape + dist.event_shape, dtype=dtype))


@examples
def test_bad_values_pass_without_validation(example, dtype):
    dist = _without_validation(example.make(dtype))
    n_event = len(dist.event_shape)
    tested = 0
    for value in example.bad_values(dtype):
        if value.shape[value.dim() - n_event :] != dist.event_shape:
            continue  # a wrong event shape cannot be evaluated at all
        lp = dist.log_prob(value)
        tested += 1
        assert lp.shape == torch.broadcast_shapes(
            value.shape[: value.dim() - n_event], dist.batch_shape
        )
        if torch.isfinite(value).all():
            # outside [-pi, pi) a value is read as an angle modulo 2 pi (a vector radially)
            torch.testing.assert_close(
                lp,
                dist.log_prob(example.to_support(value)),
                rtol=1e-4 if dtype == torch.float32 else 1e-9,
                atol=1e-6,
            )
    assert tested


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.angular], ids=lambda e: e.name)
def test_validated_log_prob_accepts_the_cut(example, dtype):
    dist = example.make(dtype)
    value = torch.full(dist.event_shape, -math.pi, dtype=dtype)
    assert torch.isfinite(dist.log_prob(value)).all()
    with pytest.raises(ValueError):
        dist.log_prob(torch.full(dist.event_shape, math.pi, dtype=dtype))


# --- constraints --------------------------------------------------------------------------------


def test_float32_pi_lies_above_pi():
    assert torch.tensor(math.pi, dtype=torch.float32).item() > math.pi


def test_angle_is_half_open(dtype):
    pi = torch.tensor(math.pi, dtype=dtype)
    inside = torch.stack([-pi, torch.nextafter(pi, -pi), torch.zeros((), dtype=dtype)])
    outside = torch.stack(
        [pi, torch.nextafter(-pi, -2 * pi), -2 * pi, 2 * pi, pi * float("inf"), pi * float("nan")]
    )
    assert angle.check(inside).all()
    assert not angle.check(outside).any()
    assert angle.event_dim == 0
    assert not angle.is_discrete
    assert "pi" in repr(angle)


def test_angle_rejects_float32_pi_as_a_float64_value():
    pi32 = torch.tensor(math.pi, dtype=torch.float32).double()
    assert not angle.check(pi32)
    assert angle.check(-torch.tensor(math.pi, dtype=torch.float64))
    assert not angle.check(-pi32)  # -float32(pi) < -pi in float64


def test_finite(dtype):
    good = torch.tensor([0.0, -1.0, 1e30, -1e-30], dtype=dtype)
    bad = torch.tensor([float("inf"), -float("inf"), float("nan")], dtype=dtype)
    assert finite.check(good).all()
    assert not finite.check(bad).any()
    assert "finite" in repr(finite)


def test_positive_finite(dtype):
    tiny = torch.finfo(dtype).tiny
    good = torch.tensor([tiny, 1e-30, 1.0, 1e30], dtype=dtype)
    bad = torch.tensor([0.0, -0.0, -tiny, -1.0, float("inf"), float("nan")], dtype=dtype)
    assert positive_finite.check(good).all()
    assert not positive_finite.check(bad).any()
    assert "positive" in repr(positive_finite)


# --- wrap_angle ---------------------------------------------------------------------------------

F32_PI = torch.tensor(math.pi, dtype=torch.float32).item()
AWKWARD = [
    math.pi,
    -math.pi,
    F32_PI,
    -F32_PI,
    3 * math.pi,
    -3 * math.pi,
    1e-30,
    -1e-30,
    1e20,
    -1e20,
    2 * math.pi,
    1e7 + 0.5,
]


def _in_support(w: torch.Tensor) -> bool:
    lo = torch.tensor(-math.pi, dtype=w.dtype)
    hi = torch.tensor(math.pi, dtype=w.dtype)
    return bool(((w >= lo) & (w < hi)).all()) and bool(angle.check(w).all())


@pytest.mark.parametrize("x", AWKWARD)
def test_wrap_angle_lands_in_support(x, dtype):
    assert _in_support(wrap_angle(torch.tensor(x, dtype=dtype)))


def test_wrap_angle_of_a_huge_float64():
    for x in (-1e300, 1e300, 1e16, -1e16):
        assert _in_support(wrap_angle(torch.tensor(x, dtype=torch.float64)))


def test_wrap_angle_maps_pi_to_minus_pi(dtype):
    pi = torch.tensor(math.pi, dtype=dtype)
    assert wrap_angle(pi) == -pi
    assert wrap_angle(-pi) == -pi


@pytest.mark.parametrize("x", [1e-20, -1e-20, 1e-30, 1e-38, 1e-45])
def test_wrap_angle_keeps_small_angles_exactly(x, dtype):
    t = torch.tensor(x, dtype=dtype)
    assert wrap_angle(t) == t
    assert wrap_angle(t).item() == t.item()


def test_wrap_angle_keeps_tiny_float64_angles():
    for x in (1e-20, 1e-300, 5e-324):
        assert wrap_angle(torch.tensor(x, dtype=torch.float64)).item() == x


def test_wrap_angle_has_unit_derivative(dtype):
    x = torch.tensor([-10.0, -math.pi, 0.0, 1e-20, 3.0, math.pi, 100.0], dtype=dtype)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(wrap_angle(x).sum(), x)
    assert torch.equal(grad, torch.ones_like(grad))


@given(x=angles(), dtype=st.sampled_from(DTYPES))
def test_wrap_angle_is_the_identity_on_the_support(x, dtype):
    t = torch.tensor(x, dtype=dtype)
    if angle.check(t):  # float64 angles just below pi round up to float32(pi)
        assert wrap_angle(t) == t


@given(x=st.floats(-1e6, 1e6), dtype=st.sampled_from(DTYPES))
def test_wrap_angle_is_congruent_modulo_two_pi(x, dtype):
    t = torch.tensor(x, dtype=dtype)
    w = wrap_angle(t)
    assert _in_support(w)
    turns = (t.double() - w.double()) / (2 * math.pi)
    tolerance = 1e-9 if dtype == torch.float64 else 3e-7 * max(1.0, abs(x))
    assert abs(turns - turns.round()) * 2 * math.pi <= tolerance
