r"""The von Mises-Fisher distribution on the hypersphere :math:`S^d \subset R^{d+1}`."""

from __future__ import annotations

import torch
from torch import Tensor

from . import constraints as mconstraints
from ._bessel import bessel_parts
from ._hyperspherical import DirectionalFamily, log_sphere_volume, place
from ._vmf_sampling import radial_slope, sample_radial

__all__ = ["VonMisesFisher", "vmf_kl_to_uniform"]

#: At and below this concentration the KL is :math:`\kappa A - g`, above it
#: :math:`-\kappa(1 - A) - (g - \kappa)`: each form is free of cancellation on its side.
_KL_SWITCH = 1.0


def vmf_kl_to_uniform(concentration: Tensor, d: int) -> Tensor:
    r"""Exact :math:`\mathrm{KL}(\mathrm{vMF}(\mu, \kappa) \,\|\, \mathrm{Uniform}(S^d))`.

    .. math::

        \mathrm{KL} = \kappa A_d(\kappa) - g(\kappa)
        = -\kappa\,(1 - A_d(\kappa)) - (g(\kappa) - \kappa) \ge 0,

    with :math:`A_d = I_{(d+1)/2}/I_{(d-1)/2}` and
    :math:`g = \log {}_0F_1(;\tfrac{d+1}{2};\kappa^2/4)` from :mod:`distributions._bessel`; the
    first form for :math:`\kappa \le 1`, the second above (at :math:`\kappa = 10^8` the KL is
    about :math:`\tfrac d2\log\kappa` while :math:`\kappa A` and :math:`g` are :math:`10^8`).
    Computed in float64, clamped at 0 against rounding.

    Parameters
    ----------
    concentration : Tensor, shape=[...]
        :math:`\kappa > 0`.
    d : int
        Sphere dimension.

    Returns
    -------
    Tensor, shape=concentration.shape
    """
    kappa = concentration.to(torch.float64)
    parts = bessel_parts((d - 1) / 2.0, kappa)
    small = kappa * parts.ratio - parts.log_hyp
    large = -kappa * parts.ratio_complement - parts.log_hyp_minus_kappa
    kl = torch.where(kappa <= _KL_SWITCH, small, large).clamp(min=0.0)
    return kl.to(concentration.dtype)


class VonMisesFisher(DirectionalFamily):
    r"""Von Mises-Fisher distribution on :math:`S^d`, :math:`d \ge 1` (``loc`` in :math:`R^{d+1}`).

    Density with respect to the surface measure of :math:`S^d` (total :math:`|S^d|`):

    .. math::

        p(x \mid \mu, \kappa) = C_d(\kappa)\, e^{\kappa\mu\cdot x}, \qquad
        \log C_d(\kappa) = -\log|S^d| - \log {}_0F_1\big(;\tfrac{d+1}{2};\tfrac{\kappa^2}{4}\big)
        = \nu\log\kappa - \tfrac{d+1}{2}\log 2\pi - \log I_\nu(\kappa),
        \quad \nu = \tfrac{d-1}{2}.

    ``log_prob`` evaluates :math:`-\tfrac\kappa2\lVert x - \mu\rVert^2 - (g - \kappa) -
    \log|S^d|` (equal on the sphere, and free of the cancellation of :math:`\kappa\mu\cdot x`
    against :math:`g \approx \kappa` at large :math:`\kappa`), with the stable normaliser of
    :mod:`distributions._bessel`: relative error about 1e-12 or better in float64 for
    :math:`\kappa \in [10^{-8}, 10^8]` and :math:`d \le 64`. ``rsample`` is exact (Wood's
    rejection sampler for :math:`w = \mu\cdot x`, a uniform tangent direction) and
    reparameterised: pathwise in ``loc``, implicit in ``concentration``
    (:func:`distributions._vmf_sampling.radial_slope`). The KL to
    :class:`~distributions.hypersphere.HypersphereUniform` is registered and exact
    (:func:`vmf_kl_to_uniform`). :math:`E[x] = A_d(\kappa)\mu` (``mean``).

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
    >>> p = VonMisesFisher(torch.tensor([0.0, 0.0, 1.0]), torch.tensor(10.0))
    >>> p.log_prob(torch.tensor([0.0, 0.0, 1.0]))  # log(kappa / (2 pi (1 - e^{-2 kappa})))
    tensor(0.4647)
    >>> p.rsample((4,)).shape
    torch.Size([4, 3])

    References
    ----------
    Wood, A. T. A. (1994). Simulation of the von Mises Fisher distribution. Commun. Stat.
    Simul. Comput. 23(1). Figurnov, M. et al. (2018). Implicit reparameterization gradients.
    """

    arg_constraints = {"loc": mconstraints.sphere, "concentration": mconstraints.positive_finite}
    _scalar = "concentration"

    def __init__(
        self, loc: Tensor, concentration: Tensor | float, validate_args: bool | None = None
    ) -> None:
        self._setup(loc, concentration, validate_args)

    def _parts(self):
        return bessel_parts((self.dim - 1) / 2.0, self.concentration)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Exact :math:`\log p(x \mid \mu, \kappa)` with respect to the surface measure.

        Parameters
        ----------
        value : Tensor, shape=[..., *batch_shape, d + 1]
            Unit vectors (read through :math:`\lVert x - \mu\rVert^2`).
        """
        chordal = self._chordal(value)
        offset = self._parts().log_hyp_minus_kappa + log_sphere_volume(self.dim)
        return -0.5 * self.concentration * chordal - offset

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        r"""Exact samples :math:`x = w\mu + \sqrt{1 - w^2}\,v`, reparameterised.

        Returns
        -------
        Tensor, shape=sample_shape + batch_shape + (d + 1,)
        """
        shape = self._extended_shape(sample_shape)
        kappa = self.concentration.expand(shape[:-1])
        y = sample_radial(kappa, self.dim)
        if kappa.requires_grad and torch.is_grad_enabled():
            complement = self._parts().ratio_complement.detach().expand(shape[:-1])
            slope = radial_slope(y, kappa, complement, self.dim)  # dw/dkappa
            y = y - slope * (kappa - kappa.detach())
        return place(y, self.loc.expand(shape))

    def kl_to_uniform(self) -> Tensor:
        """Exact KL to the uniform distribution (:func:`vmf_kl_to_uniform`)."""
        return vmf_kl_to_uniform(self.concentration, self.dim)

    @property
    def mean_resultant_length(self) -> Tensor:
        r""":math:`E[\mu\cdot x] = A_d(\kappa) = I_{(d+1)/2}(\kappa)/I_{(d-1)/2}(\kappa)`."""
        return self._parts().ratio

    def _radial_moments(self) -> tuple[Tensor, Tensor]:
        r""":math:`E[1 - w^2] = dA/\kappa` and :math:`\operatorname{Var} w = A'(\kappa) =
        (1 - A)(1 + A) - dA/\kappa` (computed in float64; at :math:`\kappa = 10^8` the
        difference keeps about 8 digits)."""
        kappa = self.concentration.to(torch.float64)
        parts = bessel_parts((self.dim - 1) / 2.0, kappa)
        spread = self.dim * parts.ratio / kappa
        var_w = (parts.ratio_complement * (1.0 + parts.ratio) - spread).clamp(min=0.0)
        dtype = self.concentration.dtype
        return var_w.to(dtype), spread.to(dtype)
