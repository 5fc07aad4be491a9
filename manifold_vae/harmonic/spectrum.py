r"""A spectrum: expansion coefficients of a function in an orthonormal basis, by frequency.

For a function :math:`f: M \to \mathbb R^D` square-integrable under a probability measure
:math:`\mu` (the uniform measure on a torus, the standard normal on :math:`\mathbb R^d`) and an
orthonormal basis :math:`\{\phi_k\}` of :math:`L^2(\mu)` (Fourier modes, Hermite polynomials),

.. math::

    f = \sum_k c_k \phi_k, \qquad c_k = E_\mu[f\,\bar\phi_k] \in \mathbb C^D, \qquad
    E_\mu \lVert f\rVert^2 = \sum_k \lVert c_k\rVert^2 \quad\text{(Parseval)}.

Each basis function has a frequency :math:`\nu_k \ge 0` (:math:`\max_i |m_i|` for the Fourier
mode :math:`m`, the total degree :math:`|\alpha|` for the Hermite multi-index :math:`\alpha`);
the constant has frequency 0. The **high-frequency content** above a cut-off :math:`K` is the
share of the variance carried by frequencies above :math:`K`:

.. math::

    \mathrm{HFC}_K(f) = \frac{\sum_{\nu_k > K} \lVert c_k\rVert^2}
                             {\sum_{\nu_k > 0} \lVert c_k\rVert^2}
    = 1 - \frac{\sum_{0 < \nu_k \le K} \lVert c_k\rVert^2}{E_\mu\lVert f - E_\mu f\rVert^2}
    \in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Spectrum"]


@dataclass(frozen=True)
class Spectrum:
    """Coefficients of a vector-valued function in an orthonormal basis.

    Attributes
    ----------
    basis : str
        ``"fourier"`` or ``"hermite"``.
    modes : Tensor, shape=[K, d]
        Integer labels of the basis functions: Fourier modes :math:`m` or Hermite
        multi-indices :math:`\\alpha`.
    frequency : Tensor, shape=[K]
        Their frequencies (see the module docstring), float64.
    coefficients : Tensor, shape=[K, *out_shape]
        :math:`c_k` (complex for Fourier, real for Hermite).
    total_energy : float
        :math:`E_\\mu\\lVert f\\rVert^2`, including any frequencies beyond the listed modes.
    """

    basis: str
    modes: Tensor
    frequency: Tensor
    coefficients: Tensor
    total_energy: float

    @property
    def energy(self) -> Tensor:
        r""":math:`\lVert c_k\rVert^2` summed over the output, shape ``(K,)``, float64."""
        flat = self.coefficients.reshape(self.coefficients.shape[0], -1)
        return (flat.abs().double() ** 2).sum(-1)

    def energy_by_frequency(self) -> tuple[Tensor, Tensor]:
        """The distinct frequencies, increasing, and the energy at each; two ``(F,)`` tensors."""
        values, inverse = torch.unique(self.frequency, sorted=True, return_inverse=True)
        energy = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, self.energy)
        return values, energy

    def high_frequency_content(self, cutoff: float) -> float:
        r""":math:`\mathrm{HFC}_K`: the share of the variance above frequency ``cutoff``.

        0 for a constant function. The energy of the modes above ``cutoff`` plus any energy
        beyond the listed modes (``total_energy`` minus the listed energies), over the variance;
        rounding can take the quotient a few ulp outside :math:`[0, 1]`; it is clipped.

        Parameters
        ----------
        cutoff : float
            :math:`K \ge 0`.
        """
        if not (math.isfinite(cutoff) and cutoff >= 0):
            raise ValueError(f"cutoff must be a finite frequency >= 0, got {cutoff}")
        energy = self.energy
        constant = float(energy[self.frequency == 0].sum())
        high = float(energy[self.frequency > cutoff].sum())
        # energy beyond the listed modes (Hermite degrees above the listed ones); for a full
        # Fourier grid it is zero by Parseval, up to rounding, which is dropped
        beyond = self.total_energy - float(energy.sum())
        if beyond <= 1e-12 * self.total_energy:
            beyond = 0.0
        variance = self.total_energy - constant
        if variance <= 1e-12 * max(self.total_energy, 1e-300):
            return 0.0
        return min(1.0, max(0.0, (high + beyond) / variance))
