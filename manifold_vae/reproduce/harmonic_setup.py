r"""The grid of the harmonic experiment (:mod:`.harmonic`): benchmarks, sweeps and settings.

Three benchmarks (:func:`setups`), each with a Euclidean latent and the matching manifold latent,
and three one-at-a-time sweeps around the base setting :math:`\beta = 1`, learned posterior
variance, no input noise (:func:`settings`, :func:`knob_cells`). The constants below are the
experiment's settings; the report quotes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..datasets import LatentDataset, pixel_shift, sinusoids, sinusoids_grid, toroidal_grid
from ..manifolds import Circle, CliffordTorus, Euclidean, LatentManifold
from ..networks import default_hidden
from ..stats import ALPHA
from .budget import Budget

__all__ = [
    "ALPHA",
    "BETAS",
    "CELL_COLUMNS",
    "CLAIMS",
    "COLLAPSE_SHARE",
    "DEFAULT",
    "HEALTH",
    "INPUT_NOISES",
    "KNOBS",
    "LIPSCHITZ_RTOL",
    "LR",
    "POOR_FIT",
    "QUANTITIES",
    "RECONSTRUCTION_SAMPLES",
    "SIGMA_X",
    "TIMES",
    "TINY",
    "Setup",
    "is_tiny",
    "knob_cells",
    "settings",
    "setups",
]

#: ``epochs`` of the sinusoid models; the image models train for a multiple (see :func:`setups`).
DEFAULT = Budget(epochs=100, reps=3, n=1000)
TINY = Budget(epochs=1, reps=1, n=64)
BETAS = (0.25, 1.0, 4.0)
TIMES = (0.01, 0.1, 0.5)
INPUT_NOISES = (0.0, 0.1, 0.3)
SIGMA_X = 0.1
LR = 1e-3
#: Power-iteration tolerance of the Lipschitz estimates.
LIPSCHITZ_RTOL = 1e-4
#: A member is (nearly) collapsed when its reconstruction explains less than this share of the
#: training data's variance (its latent carries little about the data).
COLLAPSE_SHARE = 0.2
#: Posterior samples per training point in the reconstruction share.
RECONSTRUCTION_SAMPLES = 8
QUANTITIES = {
    "decoder_hfc": "decoder high-frequency content",
    "decoder_lipschitz": "decoder Lipschitz estimate",
    "encoder_hfc": "encoder high-frequency content",
    "encoder_lipschitz": "encoder Lipschitz estimate",
}
#: Health of a fit, reported per cell beside the harmonic quantities.
HEALTH = {
    "decoder_high_energy": "decoder energy above K",
    "reconstruction_share": "R",
    "kl": "KL",
}
#: The report columns that name a grid cell.
CELL_COLUMNS = ("benchmark", "latent", "beta", "time", "input noise")
#: A member fits poorly when its reconstruction share is this far below its cell's median.
POOR_FIT = 0.25
KNOBS = {"beta": "KL weight beta", "time": "fixed posterior time t", "input_noise": "input noise"}
#: The claims judged: ``(knob, quantity, claim)``, each saying that the knob lowers the quantity.
CLAIMS = (
    ("time", "decoder_hfc", "larger encoder variance lowers the decoder's high frequencies"),
    (
        "time",
        "decoder_lipschitz",
        "larger encoder variance lowers the decoder's Lipschitz constant",
    ),
    ("input_noise", "encoder_hfc", "input noise lowers the encoder's high frequencies"),
    ("input_noise", "encoder_lipschitz", "input noise lowers the encoder's Lipschitz constant"),
    ("beta", "decoder_hfc", "a larger KL weight lowers the decoder's high frequencies"),
    ("beta", "encoder_hfc", "a larger KL weight lowers the encoder's high frequencies"),
)
_BASE = {"beta": 1.0, "input_noise": 0.0, "time": None}


@dataclass
class Setup:
    """One benchmark: data, the grid of its true phases, the two latents, networks, cut-offs."""

    name: str
    train: Tensor
    vis: LatentDataset
    grid_shape: tuple[int, ...]
    latents: tuple[LatentManifold, LatentManifold]  # (R^d, manifold)
    hidden: int
    depth: int
    batch_size: int
    epochs: int
    fourier_cutoff: int
    hermite_cutoff: int
    hermite_nodes: int


def is_tiny(budget: Budget) -> bool:
    """Whether ``budget`` is a tiny one (at most 2 epochs, one repetition): smaller images."""
    return budget.epochs <= 2 and budget.reps == 1


def setups(budget: Budget) -> list[Setup]:
    """The three benchmarks at ``budget``: sinusoids, the toroidal grid, the pixel shift.

    The toroidal models train ``2 budget.epochs`` epochs and the pixel-shift models
    ``6 budget.epochs`` (they take 2 and 1 minibatch steps per epoch); a tiny budget
    (:func:`is_tiny`) shrinks the toroidal grid to 8 x 8 and the images to 16 x 16 pixels.
    """
    tiny = is_tiny(budget)
    side, pixels = (8, 16) if tiny else (16, 32)
    sines = sinusoids(n=budget.n, noise=0.1, seed=0)
    torus = toroidal_grid(n_per_axis=side)
    shift = pixel_shift(size=pixels)
    return [
        Setup(
            "sinusoids",
            sines.data,
            sinusoids_grid(64),
            (64,),
            (Euclidean(2), Circle()),
            8,
            2,
            128,
            budget.epochs,
            1,
            1,
            24,
        ),
        Setup(
            "toroidal",
            torus.data,
            torus,
            (side, side),
            (Euclidean(4), CliffordTorus()),
            default_hidden(torus.data.shape[1:]),
            2,
            128,
            2 * budget.epochs,
            1,
            1,
            8 if tiny else 12,
        ),
        Setup(
            "pixel shift",
            shift.data,
            shift,
            (pixels,),
            (Euclidean(2), Circle()),
            default_hidden(shift.data.shape[1:]),
            3,
            pixels,
            6 * budget.epochs,
            3,
            3,
            24,
        ),
    ]


def settings() -> list[dict[str, Any]]:
    """The (beta, input noise, time) settings: three one-at-a-time sweeps around the base."""
    out = [dict(_BASE, beta=b) for b in BETAS]
    out += [dict(_BASE, input_noise=s) for s in INPUT_NOISES if s != 0.0]
    out += [dict(_BASE, time=t) for t in TIMES]
    return out


def knob_cells(knob: str) -> list[tuple[float, dict[str, Any]]]:
    """The settings of the sweep of ``knob`` (a key of :data:`KNOBS`), by knob value."""
    if knob not in KNOBS:
        raise ValueError(f"knob must be one of {list(KNOBS)}, got {knob!r}")
    values = {"beta": BETAS, "time": TIMES, "input_noise": INPUT_NOISES}[knob]
    return [(v, dict(_BASE, **{knob: v})) for v in values]
