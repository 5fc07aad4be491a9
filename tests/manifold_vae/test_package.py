"""The top-level package exposes VAE, fit and History lazily."""

from __future__ import annotations

import pytest

import manifold_vae


def test_lazy_public_names():
    from manifold_vae.ensemble import fit_ensemble
    from manifold_vae.training import History, fit
    from manifold_vae.vae import VAE, seeded

    assert manifold_vae.seeded is seeded
    assert manifold_vae.fit_ensemble is fit_ensemble
    assert manifold_vae.VAE is VAE
    assert manifold_vae.fit is fit
    assert manifold_vae.History is History
    public = {"VAE", "History", "__version__", "fit", "fit_ensemble", "seeded"}
    assert set(manifold_vae.__all__) == public


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Sphere'"):
        manifold_vae.Sphere  # noqa: B018
