r"""The Power Spherical distribution on the hypersphere :math:`S^d \subset R^{d+1}`."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import constraints as mconstraints
from ._hyperspherical import DirectionalFamily, chordal_sq, place
from ._quadrature import gauss_legendre

__all__ = ["PowerSpherical", "power_spherical_kl_to_uniform"]

#: Above this first argument the gamma and digamma differences use Stirling's series.
_STIRLING = 100.0
#: Below this concentration the KL is computed as an integral of its derivative.
_INTEGRAL_SWITCH = 2.0
_KL_NODES = 40
#: Recurrence steps before the asymptotic series of the trigamma function.
_SHIFT = 16


def _stirling_correction(z: Tensor) -> Tensor:
    r""":math:`\log\Gamma(z) - (z - \tfrac12)\log z + z - \tfrac12\log 2\pi` for :math:`z \ge 100`
    (four terms, error below :math:`10^{-20}`)."""
    r = 1.0 / (z * z)
    return (1.0 / 12 - r * (1.0 / 360 - r * (1.0 / 1260 - r / 1680))) / z


def log_gamma_ratio(alpha: Tensor, beta: float) -> Tensor:
    r""":math:`\log\Gamma(\alpha + \beta) - \log\Gamma(\alpha)` without cancellation.

    For :math:`\alpha \ge 100`: :math:`(\alpha - \tfrac12)\log(1 + \beta/\alpha) +
    \beta\log(\alpha + \beta) - \beta` plus the difference of Stirling corrections; below, the
    plain difference (both terms below 400, so the absolute error is about 1e-13).
    """
    big = alpha.clamp(min=_STIRLING)
    stirling = (
        (big - 0.5) * torch.log1p(beta / big)
        + beta * torch.log(big + beta)
        - beta
        + _stirling_correction(big + beta)
        - _stirling_correction(big)
    )
    small = alpha.clamp(max=_STIRLING)
    direct = torch.lgamma(small + beta) - torch.lgamma(small)
    return torch.where(alpha >= _STIRLING, stirling, direct)


def digamma_difference(alpha: Tensor, beta: float) -> Tensor:
    r""":math:`\psi(\alpha + \beta) - \psi(\alpha) > 0` without cancellation.

    For :math:`\alpha \ge 100`, from :math:`\psi(z) = \log z - \frac1{2z} - \frac1{12z^2} +
    \frac1{120z^4} - \frac1{252z^6} + O(z^{-8})`: :math:`\log(1 + \beta/\alpha) +
    \frac{\beta}{2\alpha(\alpha + \beta)} + \dots`; below, the plain difference.
    """
    big = alpha.clamp(min=_STIRLING)
    z = big + beta

    def tail(x: Tensor) -> Tensor:
        r = 1.0 / (x * x)
        return -r * (1.0 / 12 - r * (1.0 / 120 - r / 252))

    stirling = torch.log1p(beta / big) + beta / (2.0 * big * z) + tail(z) - tail(big)
    small = alpha.clamp(max=_STIRLING)
    direct = torch.digamma(small + beta) - torch.digamma(small)
    return torch.where(alpha >= _STIRLING, stirling, direct)


def _trigamma(x: Tensor) -> Tensor:
    r""":math:`\psi'(x) = \sum_{j<16} (x + j)^{-2} + \psi'(x + 16)`, the latter by its asymptotic
    series :math:`\frac1z + \frac1{2z^2} + \sum_k B_{2k} z^{-2k-1}` to :math:`B_{12}` (error
    below :math:`10^{-18}`; torch's trigamma is only about 1e-10 accurate)."""
    head = sum(1.0 / (x + j) ** 2 for j in range(_SHIFT))
    z = x + _SHIFT
    r = 1.0 / (z * z)
    bernoulli = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730)
    tail = torch.zeros_like(z)
    for b in reversed(bernoulli):
        tail = (tail + b) * r
    return head + (1.0 + 0.5 / z + tail) / z


def _kl_integral(kappa: Tensor, beta: float) -> Tensor:
    r""":math:`\int_0^\kappa s\,[\psi'(\beta + s) - \psi'(2\beta + s)]\,ds` by
    :data:`_KL_NODES`-point Gauss-Legendre (the integrand is analytic within :math:`\beta` of
    :math:`[0, \kappa]`, so for :math:`\kappa \le 2` the error is below :math:`2.6^{-2n}`)."""
    nodes, weights = gauss_legendre(_KL_NODES, torch.float64, kappa.device)
    s = 0.5 * kappa.unsqueeze(-1) * (nodes + 1.0)
    integrand = s * (_trigamma(beta + s) - _trigamma(2.0 * beta + s))
    return 0.5 * kappa * (weights * integrand).sum(-1)


def power_spherical_kl_to_uniform(concentration: Tensor, d: int) -> Tensor:
    r"""Exact :math:`\mathrm{KL}(\mathrm{PS}(\mu, \kappa) \,\|\, \mathrm{Uniform}(S^d))`.

    With :math:`\beta = d/2`, :math:`\alpha = \beta + \kappa`,

    .. math::

        \mathrm{KL} = (1 - 2\beta)\log 2 + \tfrac12\log\pi - \log\Gamma(\beta + \tfrac12)
            + [\log\Gamma(\alpha + \beta) - \log\Gamma(\alpha)]
            - \kappa\,[\psi(\alpha + \beta) - \psi(\alpha)]

    (:func:`log_gamma_ratio`, :func:`digamma_difference`). For :math:`\kappa < 2` the closed
    form cancels (the KL is :math:`O(\kappa^2)`), so the KL is computed as the integral of its
    derivative, :math:`\mathrm{KL} = \int_0^\kappa s\,[\psi'(\beta + s) -
    \psi'(2\beta + s)]\,ds` (positive integrand; :func:`_kl_integral`). Computed in float64;
    clamped at 0.
    """
    dtype = concentration.dtype
    kappa = concentration.to(torch.float64)
    beta = d / 2.0
    big = kappa.clamp(min=_INTEGRAL_SWITCH)
    alpha = beta + big
    closed = (
        (1.0 - 2.0 * beta) * math.log(2.0)
        + 0.5 * math.log(math.pi)
        - math.lgamma(beta + 0.5)
        + log_gamma_ratio(alpha, beta)
        - big * digamma_difference(alpha, beta)
    )
    small = _kl_integral(kappa.clamp(max=_INTEGRAL_SWITCH), beta)
    kl = torch.where(kappa < _INTEGRAL_SWITCH, small, closed)
    return kl.clamp(min=0.0).to(dtype)


class PowerSpherical(DirectionalFamily):
    r"""Power Spherical distribution on :math:`S^d`, :math:`d \ge 1` (``loc`` in :math:`R^{d+1}`).

    Density with respect to the surface measure of :math:`S^d` (De Cao and Aziz, 2020):

    .. math::

        p(x \mid \mu, \kappa) = C\,(1 + \mu\cdot x)^\kappa, \qquad
        C^{-1} = 2^{\alpha + \beta}\pi^\beta\,\frac{\Gamma(\alpha)}{\Gamma(\alpha + \beta)},
        \quad \alpha = \tfrac d2 + \kappa,\ \beta = \tfrac d2 .

    ``log_prob`` reads :math:`\log(1 + \mu\cdot x)` as :math:`\log 2 +
    \operatorname{log1p}(-\lVert x - \mu\rVert^2/4)` near the location and as
    :math:`\log(\lVert x + \mu\rVert^2/2)` near the antipode (equal on the sphere; each exact on
    its side); the normaliser uses :func:`log_gamma_ratio`. ``rsample`` is exact and fully
    reparameterised: :math:`1 - \mu\cdot x = 2z`, :math:`z = G_\beta/(G_\beta + G_\alpha)
    \sim \mathrm{Beta}(\beta, \alpha)` with torch's reparameterised gamma variables (drawn on
    this side so that :math:`1 - w` keeps its precision at large :math:`\kappa`), and a
    uniform tangent direction. The KL to
    :class:`~distributions.hypersphere.HypersphereUniform` is registered and exact
    (:func:`power_spherical_kl_to_uniform`). :math:`E[\mu\cdot x] = \kappa/(\kappa + d)`.

    Parameters
    ----------
    loc : Tensor, shape=[..., d + 1]
        Unit vectors :math:`\mu`.
    concentration : Tensor or float, shape=[...]
        :math:`\kappa > 0`, broadcastable with ``loc.shape[:-1]``.
    validate_args : bool, optional
        Check parameters and values (``ValueError`` naming the argument on failure).

    Examples
    --------
    >>> import torch
    >>> p = PowerSpherical(torch.tensor([1.0, 0.0]), torch.tensor(2.0))
    >>> p.mean  # kappa / (kappa + d) loc
    tensor([0.6667, 0.0000])

    References
    ----------
    De Cao, N. and Aziz, W. (2020). The Power Spherical distribution. arXiv:2006.04437.
    """

    arg_constraints = {"loc": mconstraints.sphere, "concentration": mconstraints.positive_finite}
    _scalar = "concentration"

    def __init__(
        self, loc: Tensor, concentration: Tensor | float, validate_args: bool | None = None
    ) -> None:
        self._setup(loc, concentration, validate_args)

    def _log_normalizer(self) -> Tensor:
        r""":math:`\log C + \kappa\log 2 = \log\frac{\Gamma(\alpha+\beta)}{\Gamma(\alpha)}
        - 2\beta\log 2 - \beta\log\pi`, in float64 (no term grows like :math:`\kappa`)."""
        beta = self.dim / 2.0
        alpha = beta + self.concentration.to(torch.float64)
        log_c = log_gamma_ratio(alpha, beta) - beta * (2.0 * math.log(2.0) + math.log(math.pi))
        return log_c.to(self.concentration.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Exact :math:`\log p(x \mid \mu, \kappa)` with respect to the surface measure.

        Evaluated as :math:`(\log C + \kappa\log 2) + \kappa\log\frac{1 + \mu\cdot x}{2}`.

        Parameters
        ----------
        value : Tensor, shape=[..., *batch_shape, d + 1]
            Unit vectors; :math:`-\infty` at the antipode :math:`-\mu` (density 0).
        """
        value, loc = self._on_sphere(value)
        near = chordal_sq(value, loc)
        antipodal = chordal_sq(value, -loc)
        log_half_cos = torch.where(
            near <= 2.0,
            torch.log1p(-near.clamp(max=2.0) / 4.0),
            torch.log(antipodal.clamp(max=2.0) / 4.0),
        )
        return self._log_normalizer() + self.concentration * log_half_cos

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        r"""Exact reparameterised samples :math:`x = (1 - 2z)\mu + 2\sqrt{z(1 - z)}\,v`.

        Returns
        -------
        Tensor, shape=sample_shape + batch_shape + (d + 1,)
        """
        shape = self._extended_shape(sample_shape)
        kappa = self.concentration.expand(shape[:-1])
        beta = torch.full_like(kappa, self.dim / 2.0)
        # Beta(beta, alpha) as a ratio of reparameterised gammas: torch's Beta gradient is nan
        # or 0 in float32 at alpha >= 1e6, the gamma gradients are exact
        g_beta = torch.distributions.Gamma(beta, torch.ones_like(beta)).rsample()
        g_alpha = torch.distributions.Gamma(beta + kappa, torch.ones_like(beta)).rsample()
        return place(2.0 * g_beta / (g_beta + g_alpha), self.loc.expand(shape))

    def kl_to_uniform(self) -> Tensor:
        """Exact KL to the uniform distribution (:func:`power_spherical_kl_to_uniform`)."""
        return power_spherical_kl_to_uniform(self.concentration, self.dim)

    @property
    def mean_resultant_length(self) -> Tensor:
        r""":math:`E[\mu\cdot x] = (\alpha - \beta)/(\alpha + \beta) = \kappa/(\kappa + d)`."""
        return self.concentration / (self.concentration + self.dim)

    def _radial_moments(self) -> tuple[Tensor, Tensor]:
        r"""With :math:`1 - w = 2z`, :math:`z \sim \mathrm{Beta}(\beta, \alpha)`:
        :math:`\operatorname{Var} w = 4\alpha\beta/((\alpha+\beta)^2(\alpha+\beta+1))`,
        :math:`E[1 - w^2] = 4E[z(1-z)] = 4\alpha\beta/((\alpha+\beta)(\alpha+\beta+1))`."""
        beta = self.dim / 2.0
        alpha = self.concentration + beta
        total = alpha + beta
        spread = 4.0 * alpha * beta / (total * (total + 1.0))
        return spread / total, spread
