"""A reductor map family registered from outside the package, and the registry's contract."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from manifold_vae.datasets import GenerativeModel, sinusoid_mean, sinusoid_model
from manifold_vae.manifolds import Circle, Euclidean, LatentManifold, Product, Sphere
from manifold_vae.reductors import (
    DEFAULT_FAMILIES,
    MAP_FAMILIES,
    ReductorMap,
    default_families,
    fit_reductor,
    make_map,
    reduction_table,
)


class AffineMap(ReductorMap):
    r"""A user family: :math:`M(p) = C p + b` into a vector space, one class and a register."""

    name = "affine"
    default_lr = 0.05
    default_rank = 10

    def __init__(self, source: LatentManifold, target: LatentManifold, copies: int = 1) -> None:
        super().__init__(source, target, copies)
        d_in, d_out = source.ambient_dim, target.ambient_dim
        self.weight = nn.Parameter(torch.randn(copies, d_out, d_in) / math.sqrt(d_in))
        self.bias = nn.Parameter(torch.zeros(copies, d_out))

    @classmethod
    def refusal(cls, source: LatentManifold, target: LatentManifold) -> str:
        if not target.is_vector_space:
            return f"the affine family needs a vector-space target, got {target!r}"
        return ""

    def _map(self, point: Tensor) -> Tensor:
        weight, bias = self.weight.to(point.dtype), self.bias.to(point.dtype)
        out = torch.einsum("coi,...i->c...o", weight, point)
        return out + bias.view(self.copies, *([1] * (point.dim() - 1)), -1)


@pytest.fixture
def affine() -> Iterator[type[AffineMap]]:
    """``AffineMap`` registered for one test, unregistered afterwards."""
    MAP_FAMILIES.register(AffineMap)
    yield AffineMap
    MAP_FAMILIES.unregister("affine")


def _planar_sinusoids() -> GenerativeModel:
    """The sinusoids seen through a point of the plane: ``F(atan2(w))``, ``w ~ N(0, I)``."""

    def mean(w: Tensor) -> Tensor:
        return sinusoid_mean(torch.atan2(w[..., 1], w[..., 0]))

    return GenerativeModel(Euclidean(2), mean, 0.1, (25,), "planar")


OPTIONS = {"restarts": 2, "num_samples": 64, "eval_samples": 500, "progress": False}


def test_a_user_family_is_fitted_by_fit_reductor(affine, one_thread):
    source, target = sinusoid_model(noise=0.1), _planar_sinusoids()
    initial = fit_reductor(source, target, "affine", steps=0, **OPTIONS)
    fit = fit_reductor(source, target, "affine", steps=40, **OPTIONS)
    assert isinstance(fit.map, affine) and fit.map.copies == 1 and fit.family == "affine"
    assert fit.restarts.shape == (2,) and len(fit.losses) == 40
    assert math.isfinite(fit.delta.value) and math.isfinite(fit.delta.stderr)
    assert fit.delta.value < initial.delta.value  # Adam at default_lr moved the user's C and b
    assert default_families() == (*DEFAULT_FAMILIES, "affine")  # default_rank 10: tried last


def test_a_user_family_joins_the_reduction_table(affine, one_thread):
    models = {"Phi": sinusoid_model(noise=0.1), "planar": _planar_sinusoids()}
    table = reduction_table(
        models,
        {("Phi", "planar"): ["affine"], ("planar", "Phi"): ["affine", "chart"]},
        steps=2,
        **OPTIONS,
    )
    assert [r.fit.family for r in table.fits[("Phi", "planar")]] == ["affine"]
    assert [r.fit.family for r in table.fits[("planar", "Phi")]] == ["chart"]
    assert "vector-space target" in table.skipped[("planar", "Phi")]["affine"]


def test_an_unsupported_pair_is_refused_through_the_capabilities(affine):
    assert affine.supports(Circle(), Euclidean(3)) and not affine.supports(Euclidean(2), Circle())
    with pytest.raises(ValueError, match=r"affine family needs a vector-space target, got Circ"):
        make_map("affine", Euclidean(2), Circle())
    with pytest.raises(ValueError, match="vector-space target"):
        fit_reductor(_planar_sinusoids(), sinusoid_model(noise=0.1), "affine", **OPTIONS)
    # built-in families read the declared capabilities too, for any manifold
    mixed = Product(Circle(), Euclidean(1))  # one angle, one line: not a product of circles
    with pytest.raises(ValueError, match="products of the same number of circles"):
        make_map("isometry", mixed, mixed)
    with pytest.raises(ValueError, match="onto a circle"):
        make_map("chart", Euclidean(2), Sphere())
    with pytest.raises(ValueError, match="not a vector space"):
        make_map("linear", Circle(), Sphere())


def test_an_unregistered_family_is_refused_by_name(affine):
    MAP_FAMILIES.unregister("affine")
    try:
        message = r"family must be one of the registered map families \[.*'chart'.*\], got 'aff"
        with pytest.raises(ValueError, match=message):
            fit_reductor(sinusoid_model(), _planar_sinusoids(), "affine", **OPTIONS)
        with pytest.raises(ValueError, match="got 'affine'"):
            reduction_table({"a": sinusoid_model(), "b": _planar_sinusoids()}, ["affine"])
        assert "affine" not in default_families()
    finally:
        MAP_FAMILIES.register(AffineMap)


def test_the_registry_refuses_bad_families():
    before = MAP_FAMILIES.as_dict()

    class NotAMap(nn.Module):
        name = "not-a-map"

    class Duplicate(ReductorMap):
        name = "linear"

    class Unnamed(ReductorMap):
        pass

    class BadRank(ReductorMap):
        name = "bad-rank"
        default_rank = 1.5

    with pytest.raises(ValueError, match="subclass of ReductorMap"):
        MAP_FAMILIES.register(NotAMap)
    with pytest.raises(ValueError, match="subclass of ReductorMap"):
        MAP_FAMILIES.register(lambda source, target, copies: None, name="function")
    with pytest.raises(ValueError, match="'linear' is already registered"):
        MAP_FAMILIES.register(Duplicate)
    with pytest.raises(ValueError, match="non-empty class attribute 'name'"):
        MAP_FAMILIES.register(Unnamed)
    with pytest.raises(ValueError, match="default_rank must be an int or None"):
        MAP_FAMILIES.register(BadRank)
    assert MAP_FAMILIES.as_dict() == before


def test_the_built_in_declarations_keep_the_defaults():
    """Today's default families, in order, and learning rates, now declared by the classes."""
    assert DEFAULT_FAMILIES == ("linear", "projected-linear", "isometry", "chart", "mlp")
    assert default_families() == DEFAULT_FAMILIES
    rates = {name: cls.default_lr for name, cls in MAP_FAMILIES.items()}
    assert rates == {
        "chart": 0.05,
        "identity": 0.0,
        "isometry": 0.05,
        "linear": 0.05,
        "mlp": 0.02,
        "projected-linear": 0.05,
    }
    assert MAP_FAMILIES["identity"].max_copies == 1
    assert MAP_FAMILIES["projected-linear"].redundancy(Circle(), Euclidean(2))
    assert not MAP_FAMILIES["projected-linear"].redundancy(Euclidean(2), Circle())
