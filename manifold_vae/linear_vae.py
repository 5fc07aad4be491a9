r"""The linear VAE of thesis Ch. 6 and its optimum (Theorem 3, corrected).

Data: the frequency-domain sinusoids :math:`x = (\sin\varphi, \cos\varphi) + \sigma\varepsilon`
in :math:`\mathbb R^2` (Eq. 6.5-6.6), with :math:`\varphi` uniform, so that
:math:`E[x] = 0` and :math:`E[x x^T] = \Gamma I_2`, :math:`\Gamma = \tfrac12 + \sigma^2`.

Model (Sec. 6.2): prior :math:`N(0, I_2)`, encoder :math:`q(z|x) = N(Gx, \sigma_Z^2 I_2)` with
a *fixed* :math:`\sigma_Z`, decoder :math:`p(x|z) = N(Hz, \sigma_X^2 I_2)`,
:math:`G, H \in \mathbb R^{2\times 2}` and no biases.

Expected negative ELBO. With :math:`E_\varepsilon\|x - H(Gx + \sigma_Z\varepsilon)\|^2 =
\|(I - HG)x\|^2 + \sigma_Z^2\|H\|_F^2`,

.. math::

    E_x[-\mathcal L] = \tfrac12\big(\Gamma\|G\|_F^2 + 2\sigma_Z^2 - 2 - 2\log\sigma_Z^2\big)
      + \frac{\Gamma\|HG - I\|_F^2 + \sigma_Z^2\|H\|_F^2}{2\sigma_X^2} + \log(2\pi\sigma_X^2).

Optimum. For fixed :math:`G` the best :math:`H` is the ridge solution
:math:`H = \Gamma G^T(\Gamma G G^T + \sigma_Z^2 I)^{-1}`; substituting, the loss separates
over the singular values :math:`g_i` of :math:`G` into the same strictly convex function of
:math:`u_i = g_i^2`,

.. math::

    \ell(u) = \Gamma u + \frac{\Gamma\sigma_Z^2/\sigma_X^2}{\Gamma u + \sigma_Z^2},
    \qquad
    u^\star = \max\Big\{\frac{\sigma_Z(\sqrt\Gamma - \sigma_X\sigma_Z)}{\Gamma\,\sigma_X},
    0\Big\},

so both singular values equal :math:`g^\star = \sqrt{u^\star}`, :math:`G = g^\star Q` for any
orthogonal :math:`Q`, and the encoder maps the data circle :math:`\|x\| = 1` onto a circle of
radius :math:`\|Gx\| = g^\star` (or collapses it to a point when
:math:`\sqrt\Gamma \le \sigma_X\sigma_Z`).

The thesis prints (Eq. 6.12) :math:`\|Gx\| = \max\{\frac{\sigma_Z}{\Gamma}
\frac{\sqrt\Gamma - \sigma_X\sigma_Z}{\sigma_X\sigma_Z}, 0\}`: a squared norm presented as a
norm, and an extra :math:`\sigma_Z` in the denominator (its gradient, Eq. 6.15, carries a
spurious factor :math:`\Gamma`). :func:`thesis_printed_radius` keeps that formula so a test can
show it disagrees with direct optimisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .likelihoods import Gaussian
from .manifolds import Euclidean
from .vae import VAE

__all__ = [
    "FixedScaleLinearEncoder",
    "LinearOptimum",
    "encoder_matrix",
    "expected_neg_elbo",
    "linear_vae",
    "optimal_radius",
    "optimise_expected_loss",
    "thesis_printed_radius",
]


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _gamma(noise: float) -> float:
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise!r}")
    return 0.5 + noise**2


def optimal_radius(noise: float, sigma_x: float, sigma_z: float) -> float:
    r"""Radius :math:`\|Gx\|` of the encoded data circle at the optimum (corrected Theorem 3).

    .. math::

        g^\star = \sqrt{\max\Big\{\frac{\sigma_Z(\sqrt\Gamma - \sigma_X\sigma_Z)}
        {\Gamma\sigma_X}, 0\Big\}}, \qquad \Gamma = \tfrac12 + \sigma^2.

    Parameters
    ----------
    noise : float
        Data noise :math:`\sigma \ge 0`.
    sigma_x, sigma_z : float
        Decoder and (fixed) encoder standard deviations, positive.
    """
    gamma = _gamma(noise)
    _check_positive(sigma_x=sigma_x, sigma_z=sigma_z)
    u = sigma_z * (math.sqrt(gamma) - sigma_x * sigma_z) / (gamma * sigma_x)
    return math.sqrt(max(u, 0.0))


def thesis_printed_radius(noise: float, sigma_x: float, sigma_z: float) -> float:
    r"""Eq. 6.12 exactly as printed (wrong unless :math:`\sigma_Z = 1`, and then it is the
    *squared* radius); kept only to show the error."""
    gamma = _gamma(noise)
    _check_positive(sigma_x=sigma_x, sigma_z=sigma_z)
    value = sigma_z / gamma * (math.sqrt(gamma) - sigma_x * sigma_z) / (sigma_x * sigma_z)
    return max(value, 0.0)


def expected_neg_elbo(G: Tensor, H: Tensor, noise: float, sigma_x: float, sigma_z: float) -> Tensor:
    r"""Exact :math:`E_x[-\mathcal L(x)]` of the linear VAE (module docstring), differentiable.

    Parameters
    ----------
    G, H : Tensor, shape=[..., 2, 2]
        Encoder and decoder matrices.
    noise, sigma_x, sigma_z : float
        :math:`\sigma`, :math:`\sigma_X`, :math:`\sigma_Z`.

    Returns
    -------
    Tensor, shape=[...]
    """
    gamma = _gamma(noise)
    _check_positive(sigma_x=sigma_x, sigma_z=sigma_z)
    eye = torch.eye(2, dtype=G.dtype, device=G.device)
    sq = (G * G).sum((-2, -1))
    misfit = ((H @ G - eye) ** 2).sum((-2, -1))
    h_sq = (H * H).sum((-2, -1))
    kl = 0.5 * (gamma * sq + 2 * sigma_z**2 - 2 - 2 * math.log(sigma_z**2))
    nll = (gamma * misfit + sigma_z**2 * h_sq) / (2 * sigma_x**2) + math.log(
        2 * math.pi * sigma_x**2
    )
    return kl + nll


def _closure(optimiser, G: Tensor, H: Tensor, noise: float, sigma_x: float, sigma_z: float):
    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = expected_neg_elbo(G, H, noise, sigma_x, sigma_z)
        loss.backward()
        return loss

    return closure


@dataclass
class LinearOptimum:
    """Result of :func:`optimise_expected_loss`."""

    #: Optimal encoder and decoder matrices, shape ``(2, 2)`` each.
    G: Tensor
    H: Tensor
    #: Singular values of ``G`` (the encoded circle is round when they agree).
    singular_values: Tensor
    #: Minimal expected negative ELBO found.
    loss: float
    #: Expected negative ELBO at the closed-form optimum.
    closed_form_loss: float


def optimise_expected_loss(
    noise: float,
    sigma_x: float,
    sigma_z: float,
    restarts: int = 8,
    seed: int = 0,
    max_iter: int = 500,
) -> LinearOptimum:
    """Minimise :func:`expected_neg_elbo` over ``(G, H)`` directly (L-BFGS, float64, restarts).

    An independent check of the closed form: nothing here uses it except to report
    ``closed_form_loss``.
    """
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    g = torch.Generator().manual_seed(seed)
    best: tuple[float, Tensor, Tensor] | None = None
    for _ in range(restarts):
        G = torch.randn(2, 2, generator=g, dtype=torch.float64).requires_grad_()
        H = torch.randn(2, 2, generator=g, dtype=torch.float64).requires_grad_()
        optimiser = torch.optim.LBFGS(
            [G, H],
            max_iter=max_iter,
            tolerance_grad=1e-13,
            tolerance_change=1e-15,
            line_search_fn="strong_wolfe",
        )

        optimiser.step(_closure(optimiser, G, H, noise, sigma_x, sigma_z))
        loss = expected_neg_elbo(G, H, noise, sigma_x, sigma_z).item()
        if best is None or loss < best[0]:
            best = (loss, G.detach().clone(), H.detach().clone())
    assert best is not None
    loss, G, H = best
    gamma = _gamma(noise)
    r = optimal_radius(noise, sigma_x, sigma_z)
    G_star = r * torch.eye(2, dtype=torch.float64)
    H_star = (
        gamma
        * G_star.T
        @ torch.linalg.inv(
            gamma * G_star @ G_star.T + sigma_z**2 * torch.eye(2, dtype=torch.float64)
        )
    )
    closed = expected_neg_elbo(G_star, H_star, noise, sigma_x, sigma_z).item()
    return LinearOptimum(G, H, torch.linalg.svdvals(G), loss, closed)


class FixedScaleLinearEncoder(nn.Module):
    r"""Encoder of Sec. 6.2: outputs ``(Gx, log sigma_Z^2)`` with ``G`` learned, no bias.

    ``log sigma_Z^2`` is a buffer (not trained), as in the theorem.

    Parameters
    ----------
    sigma_z : float
        The fixed posterior standard deviation :math:`\sigma_Z`.
    """

    def __init__(self, sigma_z: float) -> None:
        super().__init__()
        _check_positive(sigma_z=sigma_z)
        self.sigma_z = float(sigma_z)
        self.G = nn.Linear(2, 2, bias=False)
        self.register_buffer("log_var", torch.full((2,), 2.0 * math.log(sigma_z)))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 2)`` data to ``(N, 4)`` raw posterior parameters ``(mu, log sigma^2)``."""
        mu = self.G(x)
        return torch.cat([mu, self.log_var.to(mu.dtype).expand_as(mu)], dim=-1)


def linear_vae(sigma_x: float, sigma_z: float) -> VAE:
    r"""The linear VAE: ``VAE(Euclidean(2), (2,), Gaussian(sigma_x))`` with ``z = Gx`` encoder
    of fixed scale ``sigma_z`` and decoder ``x = Hz`` (no biases)."""
    return VAE(
        Euclidean(2),
        (2,),
        Gaussian(sigma_x),
        encoder=FixedScaleLinearEncoder(sigma_z),
        decoder=nn.Linear(2, 2, bias=False),
    )


def encoder_matrix(vae: VAE) -> Tensor:
    """The learned ``G`` of a :func:`linear_vae`, shape ``(2, 2)``."""
    encoder = vae.encoder
    if not isinstance(encoder, FixedScaleLinearEncoder):
        raise ValueError("vae must be built by linear_vae() (its encoder is not linear)")
    return encoder.G.weight.detach()
