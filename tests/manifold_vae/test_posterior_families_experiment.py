"""``manifold-vae reproduce posterior-families`` with the tiny budget: structure and sanity."""

from __future__ import annotations

import json
import math

import pytest
import torch

from manifold_vae.datasets import digits
from manifold_vae.reproduce import EXPERIMENTS, reproduce
from manifold_vae.reproduce.posterior_families import COLUMNS, NAME, TASKS

CELLS = {f"{t.name}/{f}" for t in TASKS for f in t.families}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("posterior-families")
    report = reproduce(NAME, out, "tiny", progress=False)
    return report, out


def test_it_is_registered():
    assert EXPERIMENTS[NAME].tiny.epochs == 1 and EXPERIMENTS[NAME].tiny.reps == 1


def test_every_family_of_every_sphere_is_trained_and_measured(tiny):
    report, out = tiny
    results = json.loads((out / "results.json").read_text())
    assert set(results["summary"]) == CELLS
    assert {"S^1 sinusoids/von-mises", "S^9 digits/power-spherical"} <= CELLS
    assert len(results["members"]) == len(CELLS)
    for member in results["members"]:
        assert member["history"]["loss"]
        metrics = member["metrics"]
        for key in ("iwae", "elbo", "kl", "spread", "recovery", "ms_per_step", "iwae_mc_se"):
            assert math.isfinite(metrics[key]), (member["cell"], key)
        assert metrics["kl"] >= 0 and metrics["ms_per_step"] > 0
        assert 0 < metrics["ess_fraction"] <= 1
    text = (out / "report.md").read_text()
    assert all(cell in text for cell in CELLS)
    assert all(header in text for _, header, _ in COLUMNS)
    for figure in report.figures:
        assert figure.is_file() and figure.stat().st_size > 1000


def test_the_importance_weighted_estimate_is_above_the_elbo_on_average(tiny):
    report, _ = tiny
    members = report.data["members"]
    gaps = [m["metrics"]["iwae"] - m["metrics"]["elbo"] for m in members]
    assert sum(gaps) / len(gaps) > 0


def test_digits_are_grey_levels_with_labels():
    images, labels = digits(torch.float64)
    assert images.shape == (1797, 64) and images.dtype == torch.float64
    assert images.min() == 0 and images.max() == 1
    assert labels.shape == (1797,) and set(labels.tolist()) == set(range(10))
    first = [0, 0, 5, 13, 9, 1, 0, 0]  # scikit-learn's first image, first row
    assert (images[0, :8] * 16).tolist() == first and labels[:3].tolist() == [0, 1, 2]
