"""The registry lists every public distribution, and only public ones, with usable examples."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch
from torch.distributions import Distribution

import distributions as D
from tests.distributions.registry import EXAMPLES, PUBLIC_DISTRIBUTIONS


def _public_submodule_distributions() -> set[type]:
    """Distribution classes named in the ``__all__`` of any public submodule of the package."""
    found = set()
    for info in pkgutil.iter_modules(D.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"distributions.{info.name}")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, Distribution):
                found.add(obj)
    return found


def test_public_distributions_are_found():
    assert len(PUBLIC_DISTRIBUTIONS) >= 4
    assert {D.CircleHeatKernel, D.CircleUniform, D.TorusHeatKernel, D.TorusUniform} <= set(
        PUBLIC_DISTRIBUTIONS
    )


def test_submodule_distributions_are_exported():
    missing = _public_submodule_distributions() - set(PUBLIC_DISTRIBUTIONS)
    assert not missing, f"distributions defined in public modules but not exported: {missing}"


@pytest.mark.parametrize("cls", PUBLIC_DISTRIBUTIONS, ids=lambda c: c.__name__)
def test_every_public_distribution_has_an_example(cls):
    assert any(example.cls is cls for example in EXAMPLES), f"{cls.__name__} is not registered"


@pytest.mark.parametrize("cls", PUBLIC_DISTRIBUTIONS, ids=lambda c: c.__name__)
def test_every_public_distribution_has_bad_examples(cls):
    examples = [example for example in EXAMPLES if example.cls is cls]
    assert any(example.bad_values(torch.float64) for example in examples)
    if cls.arg_constraints:
        assert any(example.bad_params for example in examples), (
            f"{cls.__name__} has parameter constraints but no registered bad parameters"
        )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_example_class_is_public(example):
    assert example.cls in PUBLIC_DISTRIBUTIONS


def test_example_names_are_unique():
    names = [example.name for example in EXAMPLES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_example_builds_its_class_with_validation(example, dtype):
    dist = example.make(dtype)
    assert type(dist) is example.cls
    assert dist._validate_args
    assert example.differentiable == bool(example.cls.arg_constraints)
