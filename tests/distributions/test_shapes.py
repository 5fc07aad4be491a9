"""Shapes of every registered distribution: batch/event shapes, expand, broadcasting, samples."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import distributions as D
from distributions.testing import circle_heat_kernels, torus_heat_kernels
from tests.distributions.registry import EXAMPLES

#: Number of event dimensions of each public class.
EVENT_DIMS = {
    D.CircleHeatKernel: 0,
    D.CircleUniform: 0,
    D.TorusHeatKernel: 1,
    D.TorusUniform: 1,
    D.SphereHeatKernel: 1,
    D.SphereUniform: 1,
    D.VonMisesFisher: 1,
    D.PowerSpherical: 1,
    D.HypersphereHeatKernel: 1,
    D.HypersphereUniform: 1,
}
#: Classes with a single mean direction per batch element (a vector event), whose mean
#: resultant length has shape ``batch_shape``; on the circle and tori it is one per factor.
ONE_DIRECTION = {
    D.SphereHeatKernel,
    D.SphereUniform,
    D.VonMisesFisher,
    D.PowerSpherical,
    D.HypersphereHeatKernel,
    D.HypersphereUniform,
}
SAMPLE_SHAPES = [torch.Size(), torch.Size([4]), torch.Size([2, 3])]
DTYPES = [torch.float32, torch.float64]

#: Examples with parameters (the parameterless uniforms expand to any batch shape).
WITH_PARAMETERS = [e for e in EXAMPLES if e.cls.arg_constraints]

examples = pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)


def _heat(loc, time, cls):
    return cls(loc, time, validate_args=True)


@examples
def test_batch_and_event_shape(example, dtype):
    dist = example.make(dtype)
    assert isinstance(dist.batch_shape, torch.Size)
    assert isinstance(dist.event_shape, torch.Size)
    assert len(dist.event_shape) == EVENT_DIMS[example.cls]
    x = dist.sample()
    assert x.shape == dist.batch_shape + dist.event_shape
    assert dist.log_prob(x).shape == dist.batch_shape


@examples
@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES, ids=str)
@pytest.mark.parametrize("method", ["sample", "rsample"])
def test_sample_shape(example, dtype, sample_shape, method):
    dist = example.make(dtype)
    x = getattr(dist, method)(sample_shape)
    assert x.shape == sample_shape + dist.batch_shape + dist.event_shape
    assert x.dtype == dtype
    assert dist.log_prob(x).shape == sample_shape + dist.batch_shape


@examples
def test_log_prob_broadcasts_value_against_batch(example, dtype):
    dist = example.make(dtype)
    one = dist.sample()[(0,) * len(dist.batch_shape)]  # a single event, shape event_shape
    assert one.shape == dist.event_shape
    assert dist.log_prob(one).shape == dist.batch_shape
    expected = dist.log_prob(one.expand(dist.batch_shape + dist.event_shape))
    assert torch.equal(dist.log_prob(one), expected)


@examples
@pytest.mark.parametrize("extra", [(5,), (2, 1)], ids=str)
def test_expand(example, dtype, extra):
    dist = example.make(dtype)
    shape = torch.Size(extra) + dist.batch_shape
    big = dist.expand(shape)
    assert type(big) is type(dist)
    assert big.batch_shape == shape
    assert big.event_shape == dist.event_shape
    assert big._validate_args == dist._validate_args
    for sample_shape in SAMPLE_SHAPES:
        x = big.rsample(sample_shape)
        assert x.shape == sample_shape + shape + dist.event_shape
        assert big.log_prob(x).shape == sample_shape + shape
    x = big.sample()
    assert torch.equal(big.log_prob(x), dist.log_prob(x))
    assert big.entropy().shape == shape
    assert torch.equal(big.entropy(), dist.entropy().expand(shape))


@examples
def test_expand_keeps_validation(example, dtype):
    dist = example.make(dtype)
    big = dist.expand(torch.Size([3]) + dist.batch_shape)
    for value in example.bad_values(dtype):
        with pytest.raises(ValueError):
            big.log_prob(value)


@examples
def test_expand_keeps_validation_off(example, dtype):
    dist = example.make(dtype)
    dist._validate_args = False
    big = dist.expand(torch.Size([3]) + dist.batch_shape)
    assert not big._validate_args
    out_of_support = torch.full(dist.event_shape, 4.0, dtype=dtype)
    assert big.log_prob(out_of_support).shape == big.batch_shape


@pytest.mark.parametrize("example", WITH_PARAMETERS, ids=lambda e: e.name)
def test_expand_with_an_incompatible_shape_fails(example, dtype):
    dist = example.make(dtype)
    dist = dist.expand(torch.Size([3]) + dist.batch_shape)
    bad = torch.Size([4]) + dist.batch_shape[1:]
    with pytest.raises((RuntimeError, ValueError)):
        dist.expand(bad).sample()


@examples
def test_summary_shapes(example, dtype):
    dist = example.make(dtype)
    full = dist.batch_shape + dist.event_shape
    for name in ("mean_direction", "mean_resultant_length", "variance", "mean"):
        value = getattr(dist, name)
        one = name == "mean_resultant_length" and example.cls in ONE_DIRECTION
        assert value.shape == (dist.batch_shape if one else full), name
        assert value.dtype == dtype, name
    assert dist.entropy().shape == dist.batch_shape
    assert dist.entropy().dtype == dtype


@examples
def test_repr_is_readable(example, dtype):
    dist = example.make(dtype)
    text = repr(dist)
    assert text.startswith(example.cls.__name__ + "(")
    assert "\n" not in text
    assert " at 0x" not in text
    assert len(text) < 200
    for name in example.cls.arg_constraints:
        assert name in text


def test_repr_of_a_scalar_kernel_shows_values():
    text = repr(D.CircleHeatKernel(torch.tensor(0.25), torch.tensor(0.5)))
    assert "0.25" in text and "0.5" in text


# --- broadcasting of parameters -------------------------------------------------------------


@pytest.mark.parametrize(
    ("loc_shape", "time_shape", "batch_shape"),
    [
        ((), (), ()),
        ((3,), (), (3,)),
        ((), (4,), (4,)),
        ((3, 1), (4,), (3, 4)),
        ((2, 1, 5), (3, 1), (2, 3, 5)),
    ],
)
def test_circle_parameters_broadcast(loc_shape, time_shape, batch_shape):
    loc = torch.linspace(-3.0, 3.0, math.prod(loc_shape), dtype=torch.float64).reshape(loc_shape)
    time = torch.logspace(-3, 2, math.prod(time_shape), dtype=torch.float64).reshape(time_shape)
    dist = D.CircleHeatKernel(loc, time, validate_args=True)
    assert dist.batch_shape == torch.Size(batch_shape)
    assert dist.loc.shape == dist.time.shape == torch.Size(batch_shape)
    x = dist.sample((2,))
    lp = dist.log_prob(x)
    assert lp.shape == (2, *batch_shape)
    loc_b, time_b = torch.broadcast_tensors(loc, time)
    for i in itertools.product(*map(range, (2, *batch_shape))):
        single = D.CircleHeatKernel(loc_b[i[1:]], time_b[i[1:]])
        assert torch.equal(lp[i], single.log_prob(x[i]))


def test_circle_python_floats_give_a_scalar_batch():
    dist = D.CircleHeatKernel(0.5, 0.25)
    assert dist.batch_shape == torch.Size()
    assert dist.sample((3,)).shape == (3,)


@pytest.mark.parametrize(
    ("time_shape", "batch_shape"),
    [((), (2,)), ((1,), (2,)), ((3,), (2,)), ((2, 1), (2,)), ((2, 3), (2,)), ((4, 1, 1), (4, 2))],
    ids=str,
)
def test_torus_time_broadcasts_to_loc(time_shape, batch_shape):
    loc = torch.tensor([[0.1, -2.0, 3.0], [1.0, 0.0, -3.1]], dtype=torch.float64)
    time = torch.logspace(-2, 1, max(1, math.prod(time_shape)), dtype=torch.float64)
    time = time.reshape(time_shape)
    dist = D.TorusHeatKernel(loc, time, validate_args=True)
    assert dist.batch_shape == torch.Size(batch_shape)
    assert dist.event_shape == (3,)
    assert dist.loc.shape == dist.time.shape == (*batch_shape, 3)
    x = dist.sample((5,))
    assert x.shape == (5, *batch_shape, 3)
    factors = D.CircleHeatKernel(*torch.broadcast_tensors(loc, time)).log_prob(x).sum(-1)
    torch.testing.assert_close(dist.log_prob(x), factors, rtol=0, atol=0)


def test_torus_time_that_does_not_broadcast_raises():
    with pytest.raises(ValueError, match=r"\btime\b"):
        D.TorusHeatKernel(torch.zeros(3), torch.ones(2))


@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    dtype=st.sampled_from(DTYPES),
)
def test_circle_batch_shape_is_the_broadcast_shape(shapes, dtype):
    (loc_shape, time_shape), batch_shape = shapes
    loc = torch.full(loc_shape, 1.0, dtype=dtype)
    time = torch.full(time_shape, 0.3, dtype=dtype)
    dist = D.CircleHeatKernel(loc, time, validate_args=True)
    assert dist.batch_shape == torch.Size(batch_shape)
    x = dist.rsample((2,))
    assert x.shape == (2, *batch_shape)
    lp = dist.log_prob(x)
    assert lp.shape == (2, *batch_shape)
    assert lp.dtype == dtype


@given(
    shapes=mutually_broadcastable_shapes(
        num_shapes=1, base_shape=(2,), min_dims=0, max_dims=3, max_side=3
    ),
    dtype=st.sampled_from(DTYPES),
)
def test_torus_batch_shape_is_the_broadcast_shape(shapes, dtype):
    (time_shape,), loc_shape = shapes
    loc = torch.full(loc_shape, -1.0, dtype=dtype)
    time = torch.full(time_shape, 0.7, dtype=dtype)
    dist = D.TorusHeatKernel(loc, time, validate_args=True)
    assert dist.batch_shape == torch.Size(loc_shape[:-1])
    assert dist.event_shape == (2,)
    assert dist.time.shape == torch.Size(loc_shape)
    assert dist.log_prob(dist.rsample((3,))).shape == (3, *loc_shape[:-1])


@given(
    dist=st.one_of(circle_heat_kernels(), torus_heat_kernels()),
    extra=st.lists(st.integers(1, 3), max_size=2),
)
def test_expand_random_kernels(dist, extra):
    shape = torch.Size(extra) + dist.batch_shape
    big = dist.expand(shape)
    x = big.rsample((2,))
    assert x.shape == (2, *shape, *dist.event_shape)
    assert dist.support.check(x).all()
    assert torch.equal(big.log_prob(x), dist.log_prob(x))
