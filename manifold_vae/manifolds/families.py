r"""Posterior families of the sphere and circle latents: the choice between them, and their spreads.

A latent on :math:`S^d` (:class:`~manifold_vae.manifolds.Hypersphere`,
:class:`~manifold_vae.manifolds.Sphere`) takes ``family=`` one of :data:`SPHERE_FAMILIES`:

* ``"heat"`` (default): the exact heat kernel :math:`p_t(\cdot \mid \mu)`; on :math:`S^d`,
  :math:`d \ge 3`, only times :math:`t \ge T_d` are supported (see
  :class:`distributions.HypersphereHeatKernel`), so the posterior cannot concentrate more than
  that (:math:`E[\mu\cdot x] = e^{-dT_d}`: 0.17 on :math:`S^3`, 0.06 on :math:`S^9`);
* ``"vmf"``: von Mises-Fisher :math:`\propto e^{\kappa\mu\cdot x}`;
* ``"power-spherical"``: Power Spherical :math:`\propto (1 + \mu\cdot x)^\kappa`.

The circle (:class:`~manifold_vae.manifolds.Circle`) takes one of :data:`CIRCLE_FAMILIES`:
``"heat"`` (default, the wrapped normal) or ``"von-mises"`` (:class:`AngleVonMises`: the von
Mises-Fisher distribution on :math:`S^1` read as an angle).

The concentration of every family comes from one raw encoder output (:func:`concentration`):
:math:`s = \operatorname{softplus}(r) + 10^{-6}`, :math:`\kappa = s / (1 + s/10^8)`, i.e.
:math:`\kappa \approx s` below about :math:`10^6` and :math:`\kappa < 10^8` always (the range
over which the families' normalisers are certified, see ``docs/spherical_families.md``; a
posterior standard deviation of :math:`10^{-4}` there), with a gradient that never vanishes.

**Spreads** (:meth:`~manifold_vae.manifolds.LatentManifold.posterior_spread`), exact for every
family: on :math:`S^d` a heat kernel gives :math:`\sqrt{2t}` (the standard deviation of the
unwrapped Brownian motion per tangent direction); vMF and Power Spherical give the standard
deviation of the sample's component along each tangent direction at :math:`\mu`,
:math:`s^2 = E[1 - (\mu\cdot x)^2]/d`: :math:`A_d(\kappa)/\kappa` for vMF,
:math:`2(\kappa + d/2)/((\kappa + d)(\kappa + d + 1))` for Power Spherical (both about
:math:`1/\kappa` and :math:`2/\kappa` at large :math:`\kappa`, as for a heat kernel at
:math:`t = 1/(2\kappa)` and :math:`1/\kappa`). On the circle, the circular standard deviation
:math:`s = \sqrt{-2\log E\cos(\theta - \mu)}`: :math:`\sqrt{2t}` for the heat kernel,
:math:`\sqrt{-2\log A_1(\kappa)}` for the von Mises.

None of these families has a fixed-noise reparameterisation (their samplers use rejection or
gamma variables): ``rsample`` is reparameterised (implicitly or pathwise), so ``fit`` trains
them, but :meth:`~manifold_vae.manifolds.LatentManifold.reparameterize` is not available and
ensembles train member by member. The circle's heat family keeps its reparameterisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import Distribution, constraints, register_kl

from distributions import PowerSpherical, TorusUniform, VonMisesFisher
from distributions import constraints as mconstraints
from distributions.angles import wrap_angle
from distributions.vmf import vmf_kl_to_uniform

__all__ = [
    "CIRCLE_FAMILIES",
    "MAX_CONCENTRATION",
    "MIN_CONCENTRATION",
    "SPHERE_FAMILIES",
    "AngleVonMises",
    "check_family",
    "circle_spread",
    "concentration",
    "sphere_spread",
]

#: Posterior families of the sphere latents (the first is the default).
SPHERE_FAMILIES = ("heat", "vmf", "power-spherical")
#: Posterior families of the circle (the first is the default).
CIRCLE_FAMILIES = ("heat", "von-mises")
#: Smallest concentration produced from raw encoder outputs: softplus(raw) + MIN_CONCENTRATION.
MIN_CONCENTRATION = 1e-6
#: Concentrations from raw outputs stay below this (a smooth cap, :func:`concentration`).
MAX_CONCENTRATION = 1e8


def check_family(family: object, choices: tuple[str, ...], who: str) -> str:
    """``family`` if it is one of ``choices``, else ``ValueError`` naming them."""
    if not isinstance(family, str) or family not in choices:
        raise ValueError(f"family of {who} must be one of {list(choices)}, got {family!r}")
    return family


def concentration(raw: Tensor) -> Tensor:
    r""":math:`\kappa = s / (1 + s/10^8)`, :math:`s = \operatorname{softplus}(r) + 10^{-6}`,
    from raw outputs ``(...)``: in :math:`(10^{-6}, 10^8)` for every finite ``raw``."""
    s = F.softplus(raw) + MIN_CONCENTRATION
    return s / (1.0 + s / MAX_CONCENTRATION)


def sphere_spread(posterior: Distribution) -> Tensor:
    r"""Spread per tangent direction of a posterior on :math:`S^d`, shape ``batch``.

    Heat kernels (a ``time``): :math:`\sqrt{2t}`; :class:`~distributions.VonMisesFisher`:
    :math:`\sqrt{A_d(\kappa)/\kappa}`; :class:`~distributions.PowerSpherical`:
    :math:`\sqrt{2(\kappa + d/2)/((\kappa + d)(\kappa + d + 1))}` (module docstring).
    """
    if isinstance(posterior, VonMisesFisher):
        return torch.sqrt(posterior.mean_resultant_length / posterior.concentration)
    if isinstance(posterior, PowerSpherical):
        kappa, d = posterior.concentration, posterior.dim
        return torch.sqrt(2.0 * (kappa + d / 2) / ((kappa + d) * (kappa + d + 1.0)))
    return torch.sqrt(2.0 * posterior.time)


def circle_spread(posterior: Distribution) -> Tensor:
    r"""Circular standard deviation per angle, shape ``batch + (n,)``.

    :math:`\sqrt{2t}` for heat kernels; :math:`\sqrt{-2\log A_1(\kappa)}` for
    :class:`AngleVonMises` (:math:`A_1 = I_1/I_0`, in float64: at :math:`\kappa = 10^8`,
    :math:`1 - A_1 = 5\cdot 10^{-9}` is below float32's resolution).
    """
    if isinstance(posterior, AngleVonMises):
        kappa = posterior.concentration
        length = VonMisesFisher(
            _unit_vectors(torch.zeros_like(kappa, dtype=torch.float64)),
            kappa.to(torch.float64),
            validate_args=False,
        ).mean_resultant_length
        return torch.sqrt(-2.0 * torch.log(length)).to(kappa.dtype)
    return torch.sqrt(2.0 * posterior.time)


def _unit_vectors(angle: Tensor) -> Tensor:
    """``(cos a, sin a)``, shape ``angle.shape + (2,)``."""
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


class AngleVonMises(TorchDistribution):
    r"""Product of von Mises distributions on angles: :math:`\mathrm{vMF}` on :math:`S^1` as angles.

    Density with respect to the Lebesgue measure of the angles :math:`[-\pi, \pi)^n`:

    .. math::

        p(\theta \mid \mu, \kappa) = \prod_{i=1}^n \frac{e^{\kappa_i\cos(\theta_i - \mu_i)}}
            {2\pi I_0(\kappa_i)}
        = \prod_i p_{\mathrm{vMF}}\big((\cos\mu_i, \sin\mu_i)\big)\,
            e^{-2\kappa_i\sin^2((\theta_i - \mu_i)/2)},

    the second form evaluated (the vMF density at its mode, from the stable normaliser of
    :class:`~distributions.VonMisesFisher`, times a factor free of cancellation at large
    :math:`\kappa`). Arc length on the unit circle is the angle, so this is the vMF density on
    :math:`S^1`. ``rsample``: the angle of a vMF sample :math:`x` relative to the location,
    :math:`\theta = \operatorname{wrap}(\mu + \operatorname{atan2}(x\cdot\mu^\perp, x\cdot\mu))`,
    reparameterised as the vMF sampler is (pathwise in :math:`\mu`, implicitly in
    :math:`\kappa`). The KL to :class:`~distributions.TorusUniform` (the circle's prior) is
    registered: :math:`\sum_i` :func:`~distributions.vmf.vmf_kl_to_uniform` :math:`(\kappa_i, 1)`.

    Parameters
    ----------
    loc : Tensor, shape=[..., n]
        Location angles (finite).
    concentration : Tensor, shape=[..., n]
        :math:`\kappa > 0`, broadcastable to ``loc``.
    validate_args : bool, optional
        Check parameters and values (``ValueError`` naming the argument on failure).
    """

    arg_constraints = {
        "loc": constraints.independent(mconstraints.finite, 1),
        "concentration": constraints.independent(mconstraints.positive_finite, 1),
    }
    support = constraints.independent(mconstraints.angle, 1)
    has_rsample = True

    def __init__(
        self, loc: Tensor, concentration: Tensor | float, validate_args: bool | None = None
    ) -> None:
        loc = torch.as_tensor(loc)
        if loc.dim() < 1:
            raise ValueError(f"loc must have shape (..., n), got {tuple(loc.shape)}")
        kappa = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        self.loc, self.concentration = torch.broadcast_tensors(loc, kappa)
        super().__init__(self.loc.shape[:-1], self.loc.shape[-1:], validate_args=validate_args)

    def _vmf(self) -> VonMisesFisher:
        return VonMisesFisher(_unit_vectors(self.loc), self.concentration, validate_args=False)

    def expand(self, batch_shape: torch.Size, _instance=None) -> AngleVonMises:
        shape = torch.Size(batch_shape) + self.event_shape
        return AngleVonMises(
            self.loc.expand(shape),
            self.concentration.expand(shape),
            validate_args=self._validate_args,
        )

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Angles ``sample_shape + batch_shape + (n,)`` of vMF samples, reparameterised."""
        x = self._vmf().rsample(sample_shape)
        along = _unit_vectors(self.loc)
        across = torch.stack([-along[..., 1], along[..., 0]], dim=-1)
        offset = torch.atan2((x * across).sum(-1), (x * along).sum(-1))
        return wrap_angle(self.loc + offset)

    def log_prob(self, value: Tensor) -> Tensor:
        """Exact log density of angles ``(..., *batch_shape, n)``, shape ``(..., *batch_shape)``."""
        if self._validate_args:
            self._validate_sample(value)
        at_mode = self._vmf().log_prob(_unit_vectors(self.loc))
        half = 0.5 * wrap_angle(value - self.loc)
        return (at_mode - 2.0 * self.concentration * torch.sin(half) ** 2).sum(-1)

    @property
    def mean_direction(self) -> Tensor:
        """The location angles, ``(..., n)``."""
        return self.loc

    @property
    def mode(self) -> Tensor:
        return wrap_angle(self.loc)

    def kl_to_uniform(self) -> Tensor:
        """Exact KL to the uniform distribution on the angles, shape ``batch_shape``."""
        return vmf_kl_to_uniform(self.concentration, 1).sum(-1)

    def __repr__(self) -> str:
        n = self.loc.shape[-1]
        return f"{type(self).__name__}(batch_shape={tuple(self.batch_shape)}, n={n})"


@register_kl(AngleVonMises, TorusUniform)
def _kl_angle_von_mises_uniform(p: AngleVonMises, q: TorusUniform) -> Tensor:
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"KL between distributions on tori of different dimension: event shapes "
            f"{tuple(p.event_shape)} and {tuple(q.event_shape)}"
        )
    kl = p.kl_to_uniform()
    shape = torch.broadcast_shapes(p.batch_shape, q.batch_shape)
    return kl if kl.shape == shape else kl.expand(shape)
