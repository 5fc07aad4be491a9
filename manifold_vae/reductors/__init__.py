r"""Delta-reduction of generative models (thesis Ch. 8, 9 and Sec. 11.5).

A map :math:`M: Z_1 \to Z_2` between the latent spaces of two generative models is a
:math:`\Delta`-reductor when
:math:`\mathbb E_{z \sim p_1(z)} \mathrm{KL}(p_1(x \mid z) \,\|\, p_2(x \mid M(z))) \le \Delta`
(Definition 8.1.1, Lemma 4). This package estimates :math:`\Delta` (:func:`delta`), offers map
families that respect the geometry of source and target (:mod:`.maps`, one registry
:data:`MAP_FAMILIES` that a user family joins by ``MAP_FAMILIES.register``), fits them by the
thesis's Algorithm 2 with vectorised restarts (:func:`fit_reductor`) and tabulates all ordered
pairs of a set of models (:func:`reduction_table`, :func:`plot_reduction_grid`). Models are
anything with the :class:`~manifold_vae.latent_model.LatentVariableModel` protocol.
"""

from .decoder_kl import bernoulli_kl, decoder_kl, normal_kl
from .delta import DeltaEstimate, delta, delta_samples, pointwise_optimum, sample_prior
from .figure import plot_reduction_grid
from .fitting import Fit, fit_reductor
from .maps import (
    MAP_FAMILIES,
    AngleIsometry,
    ChartMap,
    IdentityMap,
    LinearMap,
    ProjectedLinearMap,
    ProjectedMLP,
    ReductorMap,
    default_families,
    make_map,
    map_family,
    project,
)
from .table import DEFAULT_FAMILIES, Reduction, ReductionTable, reduction_table

__all__ = [
    "DEFAULT_FAMILIES",
    "MAP_FAMILIES",
    "AngleIsometry",
    "ChartMap",
    "DeltaEstimate",
    "Fit",
    "IdentityMap",
    "LinearMap",
    "ProjectedLinearMap",
    "ProjectedMLP",
    "Reduction",
    "ReductionTable",
    "ReductorMap",
    "bernoulli_kl",
    "decoder_kl",
    "default_families",
    "delta",
    "delta_samples",
    "fit_reductor",
    "make_map",
    "map_family",
    "normal_kl",
    "plot_reduction_grid",
    "pointwise_optimum",
    "project",
    "reduction_table",
    "sample_prior",
]
