"""Test configuration: hypothesis profiles and shared fixtures."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# 'ci' is derandomized and bounded (the default under `make test`); 'dev' explores more.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Under pytest-xdist every worker is a process of its own: one intra-op thread each keeps the
# workers from oversubscribing the cores (tiny tensors gain nothing from threads anyway).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_and_check_global_state():
    """Seed torch for every test and fail a test that leaves the default dtype changed."""
    torch.manual_seed(0)
    dtype = torch.get_default_dtype()
    yield
    assert torch.get_default_dtype() == dtype, "a test changed torch's default dtype"


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test (also outside xdist), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param
