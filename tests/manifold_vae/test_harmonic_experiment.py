"""The harmonic experiment's sweeps, measurement, collapse flag and report.

The trend test and the verdict rule are in test_stats.py, the run itself in test_reproduce.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle, Euclidean, FixedTime
from manifold_vae.reproduce import Budget
from manifold_vae.reproduce.common import Member, Report
from manifold_vae.reproduce.harmonic import EXPERIMENT, TITLE
from manifold_vae.reproduce.harmonic_measure import measure, reconstruction
from manifold_vae.reproduce.harmonic_report import report_body
from manifold_vae.reproduce.harmonic_setup import (
    BETAS,
    COLLAPSE_SHARE,
    INPUT_NOISES,
    TIMES,
    TINY,
    knob_cells,
    settings,
    setups,
)
from manifold_vae.vae import VAE


def test_sweeps_share_the_base_setting_and_cover_every_knob_value():
    all_settings = settings()
    assert len(all_settings) == len({tuple(sorted(s.items(), key=str)) for s in all_settings})
    for knob, values in (("beta", BETAS), ("time", TIMES), ("input_noise", INPUT_NOISES)):
        cells = knob_cells(knob)
        assert [v for v, _ in cells] == list(values)
        assert all(cell in all_settings for _, cell in cells)
    with pytest.raises(ValueError, match="knob"):
        knob_cells("sigma_x")


def test_the_committed_report_is_rendered_from_its_results():
    """report.md is a function of results.json: the committed one comes back byte for byte."""
    folder = Path(__file__).parents[2] / "docs" / "results" / "harmonic"
    results = json.loads((folder / "results.json").read_text())
    budget = Budget(**results["budget"])
    body = report_body(budget, setups(budget), results["members"], results["train_seconds"])
    figures = [folder / f"{name}.png" for name in ("harmonic", "spectra", "training")]
    report = Report(EXPERIMENT.name, TITLE, budget, body, {}, figures, results["seconds"])
    text = report.markdown(folder, results["command"], results["environment"])
    assert text == (folder / "report.md").read_text()


@pytest.mark.parametrize(("latent", "basis"), [(Circle(), "fourier"), (Euclidean(2), "hermite")])
def test_measure_reads_the_basis_off_the_declared_latent_kind(latent, basis):
    setup = setups(TINY)[0]  # the sinusoids
    torch.manual_seed(0)
    vae = VAE(FixedTime(latent, 0.1), (25,), Gaussian(0.1), hidden=8)
    member = Member({"time": 0.1}, 0, vae, setup.train, seed=0)
    measure(member, setup)
    metrics = member.metrics
    assert metrics["decoder_basis"] == basis
    assert metrics["decoder_cutoff"] == (
        setup.fourier_cutoff if basis == "fourier" else setup.hermite_cutoff
    )
    assert ("smoothing_max_z" in metrics) == (basis == "fourier")  # fixed time on a manifold
    assert all(0 <= metrics[k] <= 1 for k in ("decoder_hfc", "encoder_hfc"))


class _Constant(nn.Module):
    """A decoder that ignores the latent: always ``value``."""

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.value = nn.Parameter(value.clone())

    def forward(self, points: Tensor) -> Tensor:
        return self.value.expand(points.shape[0], *self.value.shape) + 0.0 * points[:, :1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_decoder_that_ignores_the_latent_is_collapsed(dtype):
    data = torch.rand(64, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)
    mean = VAE(Euclidean(2), (5,), Gaussian(0.1), decoder=_Constant(data.mean(0))).to(dtype)
    far = VAE(Euclidean(2), (5,), Gaussian(0.1), decoder=_Constant(data.mean(0) + 1)).to(dtype)
    for vae, share in ((mean, 0.0), (far, None)):
        member = Member({}, 0, vae, data, seed=3)
        out = reconstruction(member, data)
        assert out["collapsed"] and math.isfinite(out["kl"]) and out["kl"] >= 0
        if share is not None:
            assert out["reconstruction_share"] == pytest.approx(share, abs=1e-5)
        else:
            assert out["reconstruction_share"] < COLLAPSE_SHARE - 1
