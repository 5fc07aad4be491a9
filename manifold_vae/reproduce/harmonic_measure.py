r"""The measurement of the harmonic experiment (:mod:`.harmonic`): what is recorded per model.

For each trained member (:func:`measure`): the decoder's high-frequency content (Fourier on a
manifold latent, Hermite on :math:`\mathbb R^d`, by the declared capability
``latent.is_vector_space``), the decoder's Lipschitz estimate on tangent directions at the
encoded data, the encoder's high-frequency content along the true phase(s) and its Lipschitz
estimate (:mod:`manifold_vae.harmonic`); how much of the data its latent carries
(:func:`reconstruction`); and for the fixed-time manifold models the exact Fourier-domain
posterior-averaged decoder against Monte Carlo (:func:`smoothing_check`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from ..harmonic import (
    decoder_jacobian_norms,
    decoder_spectrum,
    encoder_jacobian_norms,
    encoder_spectrum,
    heat_smoothed_decoder,
    monte_carlo_smoothed_decoder,
)
from .common import Member, convergence
from .harmonic_setup import COLLAPSE_SHARE, LIPSCHITZ_RTOL, RECONSTRUCTION_SAMPLES, Setup

__all__ = ["measure", "reconstruction", "smoothing_check"]


def measure(m: Member, setup: Setup) -> None:
    """The four harmonic quantities of a trained member and its fit's health, into
    ``m.metrics``.

    Parameters
    ----------
    m : Member
        A trained member of ``setup``'s grid (its cell has ``time``: ``None`` or the fixed
        posterior time).
    setup : Setup
        Its benchmark: the visualisation grid, the cut-offs and the Hermite quadrature.
    """
    vae = m.vae.eval()
    dtype = next(vae.parameters()).dtype
    vis = setup.vis.data.to(dtype)
    fourier = not vae.latent.is_vector_space
    spectrum = decoder_spectrum(
        vae,
        grid_shape=64 if vae.latent.dim == 1 else 32,
        degree=max(setup.hermite_cutoff, 1),
        nodes=setup.hermite_nodes,
    )
    cutoff = setup.fourier_cutoff if fourier else setup.hermite_cutoff
    with torch.no_grad():
        locations = vae.latent.posterior_location(vae.encode(vis))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        decoder_lip = decoder_jacobian_norms(vae, locations, rtol=LIPSCHITZ_RTOL)
        encoder_lip = encoder_jacobian_norms(vae, vis, rtol=LIPSCHITZ_RTOL)
    hfc = spectrum.high_frequency_content(cutoff)
    variance = spectrum.total_energy - float(spectrum.energy[spectrum.frequency == 0].sum())
    m.metrics.update(reconstruction(m, setup.train.to(dtype)))
    m.metrics.update(
        {
            "decoder_hfc": hfc,
            "decoder_variance": variance,
            "decoder_high_energy": hfc * variance,
            "decoder_basis": spectrum.basis,
            "decoder_cutoff": cutoff,
            "decoder_lipschitz": float(decoder_lip.max()),
            "encoder_hfc": encoder_spectrum(vae, vis, setup.grid_shape).high_frequency_content(
                setup.fourier_cutoff
            ),
            "encoder_lipschitz": float(encoder_lip.max()),
            "power_iteration_unconverged": len(caught),
            "final_loss": m.history.loss[-1] if m.history and m.history.loss else math.nan,
            "final_kl": m.history.kl[-1] if m.history and m.history.kl else math.nan,
            "stopped": m.history.stopped if m.history else None,
            "convergence": convergence(m.history) if m.history else math.nan,
        }
    )
    if fourier and m.cell["time"] is not None:
        smoothing_check(m, locations)


def reconstruction(m: Member, data: Tensor) -> dict[str, Any]:
    r"""How much of the data the member's latent carries: reconstruction share, KL, collapse.

    .. math::

        R = 1 - \frac{E_x E_{q(z \mid x)} \lVert x - f(z)\rVert^2}
                      {E_x \lVert x - \bar x\rVert^2}

    on the clean training data (:data:`~.harmonic_setup.RECONSTRUCTION_SAMPLES` posterior
    samples per point, seeded by the member's seed): 1 for a perfect reconstruction, about 0
    when the decoder ignores the latent (posterior collapse), negative when it is worse than
    the data mean. ``collapsed`` when :math:`R <` :data:`~.harmonic_setup.COLLAPSE_SHARE`.

    Parameters
    ----------
    m : Member
        A trained member.
    data : Tensor, shape=[N, *data_shape]
        Its clean training data, in the model's dtype.

    Returns
    -------
    dict
        ``reconstruction_share`` (:math:`R`), ``kl`` (the mean exact KL, nats) and
        ``collapsed``.
    """
    vae = m.vae
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(m.seed)
        posterior = vae.encode(data)
        z = posterior.sample(torch.Size([RECONSTRUCTION_SAMPLES]))
        residual = ((data - vae.decoder_mean(z)) ** 2).flatten(2).sum(-1).mean()
        spread = ((data - data.mean(0)) ** 2).flatten(1).sum(-1).mean()
        kl = vae.kl(posterior, z).mean()
    share = 1.0 - float(residual) / max(float(spread), 1e-300)
    return {
        "reconstruction_share": share,
        "kl": float(kl),
        "collapsed": not share >= COLLAPSE_SHARE,
    }


def smoothing_check(m: Member, locations: Tensor) -> None:
    """Exact Fourier-domain posterior mean of the decoder against 1000-sample Monte Carlo.

    At 4 of the encoded ``locations`` (``(N, dim)`` angles) of a fixed-time manifold member:
    ``smoothing_max_z``, the largest ``|exact - MC| / standard error`` over all outputs, and
    ``smoothing_mean_abs_difference``, into ``m.metrics``.
    """
    loc = locations[:: max(1, len(locations) // 4)][:4]
    time = torch.full(loc.shape[:-1], m.cell["time"], dtype=loc.dtype)
    exact = heat_smoothed_decoder(m.vae, loc, time, 64 if loc.shape[-1] == 1 else 32)
    mc, error = monte_carlo_smoothed_decoder(m.vae, loc, time, samples=1000, seed=m.seed)
    z = ((exact.to(mc.dtype) - mc).abs() / error.clamp_min(1e-12)).flatten()
    m.metrics["smoothing_max_z"] = float(z.max())
    m.metrics["smoothing_mean_abs_difference"] = float((exact.to(mc.dtype) - mc).abs().mean())
