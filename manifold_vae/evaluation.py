r"""Evaluation of trained VAEs: the thesis's metrics and the recovered latent structure.

* :func:`thesis_metrics`: negative ELBO, KL, reconstruction error and MSE on a dataset (meant for
  :math:`X_{Vis}`), the columns of the thesis's Tables 5.1 and 7.1, with the correct Gaussian
  negative log-likelihood and, for comparison, the thesis's printed Eq. 5.9.
* :func:`summarize` and :func:`format_mean_std`: mean and standard deviation over repetitions,
  formatted like the tables.
* :func:`circular_correlation`, :func:`recovered_angles`, :func:`factor_correlations`,
  :func:`phase_recovery`: how well the encoder recovers the true phases, with a one-to-one
  assignment of true factors to recovered angles (the factors may be swapped and reflected).
  The recovered angles are read off the latent manifold's declared capabilities (its angle
  coordinates, or angles around the centre on a vector space); :func:`has_recovered_angles`
  says whether a latent has them, and :func:`recovered_angles` raises ``ValueError`` naming
  the missing capability otherwise.
* :func:`winding_number`, :func:`loop_winding`, :func:`grid_windings`: whether the encoded loop
  of :math:`X_{Vis}` goes once around the latent circle(s).

All statistics are computed in float64 on the CPU, whatever the model's dtype and device.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import Tensor

from distributions.angles import wrap_angle

from .manifolds import LatentManifold
from .manifolds.base import require
from .vae import VAE

__all__ = [
    "GridWindings",
    "circular_correlation",
    "encoding_nonuniformity",
    "factor_assignment",
    "factor_correlations",
    "format_mean_std",
    "grid_windings",
    "has_recovered_angles",
    "loop_winding",
    "phase_recovery",
    "recovered_angles",
    "summarize",
    "thesis_metrics",
    "unwound_phase_correlations",
    "winding_matrix",
    "winding_number",
]

#: Keys of :func:`thesis_metrics`, in the order of the thesis's tables and then the extras.
METRIC_KEYS = (
    "neg_elbo",
    "kl",
    "reconstruction",
    "mse",
    "neg_elbo_thesis",
    "reconstruction_thesis",
)

#: Latent samples decoded at once by :func:`thesis_metrics` (bounds the memory).
_SAMPLE_CHUNK = 10


# --- the thesis's metrics ------------------------------------------------------------------
def _model_device_dtype(vae: VAE) -> tuple[torch.device, torch.dtype]:
    p = next(vae.parameters())
    return p.device, p.dtype


def _check_data(vae: VAE, data: Tensor) -> None:
    if not torch.is_tensor(data) or not data.is_floating_point():
        raise ValueError(
            f"data must be a floating torch.Tensor, got {getattr(data, 'dtype', type(data))}"
        )
    if data.dim() != len(vae.data_shape) + 1 or data.shape[1:] != vae.data_shape:
        raise ValueError(
            f"data must have shape (N, {', '.join(map(str, vae.data_shape))}) to match "
            f"vae.data_shape, got {tuple(data.shape)}"
        )
    if data.shape[0] == 0:
        raise ValueError("data is empty: it has no datapoints")


@contextmanager
def _seeded_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Fork the RNG of the CPU and of ``device``, seed both, restore them on exit.

    Only the generators of the CPU and of the model's device are touched, so that no other
    accelerator's RNG is seeded (``torch.manual_seed`` would seed every one, lazily).
    """
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            yield
        return
    module = getattr(torch, device.type)
    index = device.index if device.index is not None else module.current_device()
    with torch.random.fork_rng(devices=[index], device_type=device.type):
        torch.random.default_generator.manual_seed(seed)
        with module.device(index):
            module.manual_seed(seed)
        yield


def thesis_metrics(
    vae: VAE, data: Tensor, num_samples: int = 100, seed: int = 0
) -> dict[str, float]:
    r"""The thesis's evaluation metrics on a dataset, per datapoint averaged over the data.

    Meant for :math:`X_{Vis}` (Sec. 5.5, 7.4, 11). With posterior :math:`q(z \mid x)`,
    :math:`L` = ``num_samples`` reparameterised samples :math:`z^{(l)} \sim q(z \mid x)`, decoder
    mean :math:`\mu_X` and :math:`D` features per datapoint:

    ``kl`` -- column "KL Regularization" of Tables 5.1 / 7.1
        :math:`\frac1N \sum_x \mathrm{KL}(q(z \mid x) \,\|\, p(z))`, exact (``vae.kl``). On
        :math:`\mathbb R^d` this is Eq. 5.10 (with the plain sum of the log-variances, see
        NOTES correction 4), so it is comparable with Table 5.1. On the circle the thesis used the
        biased Monte Carlo estimator of Eq. 7.9; the exact value is reported here.
    ``reconstruction`` -- column "Reconstruction" (correct definition)
        The negative log-likelihood :math:`-\frac{1}{NL} \sum_x \sum_l \log p(x \mid z^{(l)})`;
        for the fixed-scale Gaussian
        :math:`\frac{\|x - \mu_X(z)\|^2}{2\sigma_X^2} + \frac D2 \log(2\pi\sigma_X^2)`.
    ``neg_elbo`` -- column "-ELBO" (correct definition)
        ``reconstruction + kl``.
    ``mse`` -- column "MSE" (Eqs. 5.7-5.8)
        :math:`\frac1N \sum_x \|x - \mu_X(\mu_Z(x))\|^2` (squared error summed over features),
        decoding the posterior location (``vae(x)``).
    ``reconstruction_thesis`` -- column "Reconstruction" as printed (Eq. 5.9)
        For a fixed-scale :class:`~manifold_vae.likelihoods.Gaussian` likelihood only:
        :math:`\frac{1}{NL}\sum_x\sum_l \frac{\|x - \mu_X(z^{(l)})\|^2}{\sigma_X^2}
        + \frac D2 \log(2\pi\sigma_X^2)`, without the 1/2 on the squared error (NOTES
        correction 5). With :math:`c = \frac D2 \log(2\pi\sigma_X^2)` it equals
        ``2 * reconstruction - c``. ``nan`` for other likelihoods.
    ``neg_elbo_thesis`` -- column "-ELBO" as printed
        ``reconstruction_thesis + kl`` (``nan`` for other likelihoods).

    Evaluated under ``torch.no_grad()``, in eval mode (the previous mode is restored), with the
    RNG forked and seeded with ``seed`` (the global RNG state is left untouched, so the result
    depends on ``seed`` only). The data are moved to the model's device and dtype; the averages
    are taken in float64.

    Parameters
    ----------
    vae : VAE
        A trained model.
    data : Tensor, shape=[N, *data_shape]
        Datapoints.
    num_samples : int
        :math:`L \ge 1`, latent samples per datapoint for the reconstruction (thesis: 100).
    seed : int
        Seed of the latent samples.

    Returns
    -------
    dict of str to float
        The keys ``neg_elbo, kl, reconstruction, mse, neg_elbo_thesis, reconstruction_thesis``.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    _check_data(vae, data)
    device, dtype = _model_device_dtype(vae)
    x = data.to(device=device, dtype=dtype)
    features = math.prod(vae.data_shape)
    gaussian = vae.likelihood.gaussian_metrics
    was_training = vae.training
    vae.eval()
    try:
        with torch.no_grad(), _seeded_rng(device, seed):
            posterior = vae.encode(x)
            z = posterior.rsample(torch.Size([num_samples]))
            kl = vae.kl(posterior, z).double().cpu()
            nll = torch.zeros(len(x), dtype=torch.float64)
            squared = torch.zeros(len(x), dtype=torch.float64)
            for chunk in z.split(_SAMPLE_CHUNK):
                likelihood = vae.decode(chunk)
                nll -= likelihood.log_prob(x).double().sum(0).cpu()
                if gaussian:
                    error = (x - likelihood.mean).double().flatten(2).square().sum(-1)
                    squared += error.sum(0).cpu()
            reconstruction = nll / num_samples
            mse = (x - vae(x)).double().flatten(1).square().sum(-1).cpu()
    finally:
        vae.train(was_training)
    result = {
        "neg_elbo": (reconstruction + kl).mean().item(),
        "kl": kl.mean().item(),
        "reconstruction": reconstruction.mean().item(),
        "mse": mse.mean().item(),
        "neg_elbo_thesis": math.nan,
        "reconstruction_thesis": math.nan,
    }
    if gaussian:
        sigma = float(vae.likelihood.sigma)
        constant = 0.5 * features * math.log(2.0 * math.pi * sigma**2)
        thesis = (squared / num_samples / sigma**2 + constant).mean().item()
        result["reconstruction_thesis"] = thesis
        result["neg_elbo_thesis"] = thesis + result["kl"]
    return result


def summarize(runs: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    r"""Mean and sample standard deviation of each metric over repetitions (thesis tables).

    For each key (in first-seen order over the runs) the values :math:`v_1..v_n` that are not
    NaN (a key missing from a run counts as NaN) give

    .. math::

        \bar v = \frac1n \sum_i v_i, \qquad
        s = \sqrt{\frac{1}{n-1} \sum_i (v_i - \bar v)^2} \quad (\text{ddof} = 1),

    with :math:`s = 0` for a single run (:math:`n = 1`, no spread can be estimated) and
    ``mean = std = nan`` when the key is NaN in every run (:math:`n = 0`).

    Parameters
    ----------
    runs : sequence of mappings from str to float
        One mapping per repetition, e.g. the results of :func:`thesis_metrics`.

    Returns
    -------
    dict of str to dict
        ``{key: {"mean": ..., "std": ..., "n": ...}}`` with ``n`` the number of non-NaN values
        (a float, so that the result is a mapping to floats throughout).
    """
    if isinstance(runs, Mapping) or not isinstance(runs, Sequence) or len(runs) == 0:
        raise ValueError("runs must be a non-empty sequence of mappings from metric name to value")
    keys: dict[str, None] = {}
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping):
            raise ValueError(f"runs[{i}] must be a mapping, got {type(run).__name__}")
        keys.update(dict.fromkeys(run))
    summary: dict[str, dict[str, float]] = {}
    for key in keys:
        values = []
        for i, run in enumerate(runs):
            value = run.get(key, math.nan)
            try:
                value = float(value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"runs[{i}][{key!r}] must be a number, got {value!r}") from error
            if not math.isnan(value):
                values.append(value)
        n = len(values)
        if n == 0:
            mean = std = math.nan
        else:
            mean = math.fsum(values) / n
            std = 0.0 if n == 1 else math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        summary[key] = {"mean": mean, "std": std, "n": float(n)}
    return summary


def format_mean_std(mean: float, std: float, digits: int = 2, small: float = 1e-2) -> str:
    """Format ``mean ± std`` like the thesis's tables.

    Fixed point (``-79.90 ± 0.19``) unless ``0 < |mean| < small`` or ``|mean| >= 1e4``; then
    with a shared power of ten chosen from the mean so that its mantissa lies in ``[1, 10)``
    (``(1.59 ± 0.64) × 10^-5``). A mean of exactly 0 takes its power of ten from ``std`` by the
    same rule. NaN or infinite values are written as Python writes them (``nan ± nan``). The
    thesis's tables write every ``|mean| < 1`` in scientific form (``(4.22 ± 0.34) × 10^-2``,
    ``(7.69 ± 0.01) × 10^-1``): pass ``small=1`` to match them.

    Parameters
    ----------
    mean, std : float
        The values.
    digits : int
        Digits after the decimal point (of the mantissas in scientific form), ``>= 0``.
    small : float
        Magnitudes of the mean below this (and above 0) are written in scientific form, ``> 0``.
    """
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be an integer >= 0, got {digits!r}")
    if not (isinstance(small, (int, float)) and 0 < small <= 1e4):
        raise ValueError(f"small must be a number in (0, 1e4], got {small!r}")
    mean, std = float(mean), float(std)
    scale = abs(mean) if mean != 0 else abs(std)
    if not math.isfinite(scale) or scale == 0 or small <= scale < 1e4:
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    exponent = math.floor(math.log10(scale))
    if round(scale / 10.0**exponent, digits) >= 10:  # 9.999e-6 rounds to 10.00e-6
        exponent += 1
    factor = 10.0**exponent
    return f"({mean / factor:.{digits}f} ± {std / factor:.{digits}f}) × 10^{exponent}"


# --- recovered structure -------------------------------------------------------------------
def circular_correlation(a: Tensor, b: Tensor) -> Tensor:
    r"""Fisher-Lee circular correlation between two samples of angles.

    .. math::

        \rho = \frac{\sum_{i<j} \sin(a_i - a_j)\sin(b_i - b_j)}
                    {\sqrt{\sum_{i<j} \sin^2(a_i - a_j)\,\sum_{i<j}\sin^2(b_i - b_j)}},

    computed in :math:`O(N)` through
    :math:`\sum_{i,j}\sin(a_i-a_j)\sin(b_i-b_j) = 2[(\sum s t)(\sum c d) - (\sum s d)(\sum c t)]`
    with :math:`s, c = \sin a, \cos a` and :math:`t, d = \sin b, \cos b`. It is invariant to
    rotating either sample, equals :math:`+1` when :math:`b = a + \text{const}` and :math:`-1`
    when :math:`b = -a + \text{const}` (reversed orientation), and needs no mean direction, so it
    is well defined for uniformly spread angles.

    Parameters
    ----------
    a, b : Tensor, shape=[N]
        Angles (radians), ``N >= 2``.

    Returns
    -------
    Tensor, shape=[]
        The correlation in :math:`[-1, 1]`.
    """
    if a.shape != b.shape or a.dim() != 1 or a.shape[0] < 2:
        raise ValueError(
            f"a and b must be 1-D of the same length >= 2, got shapes {tuple(a.shape)}, "
            f"{tuple(b.shape)}"
        )
    a, b = a.double(), b.double()
    s, c, t, d = torch.sin(a), torch.cos(a), torch.sin(b), torch.cos(b)
    num = (s * t).sum() * (c * d).sum() - (s * d).sum() * (c * t).sum()
    den_a = (s * s).sum() * (c * c).sum() - (s * c).sum() ** 2
    den_b = (t * t).sum() * (d * d).sum() - (t * d).sum() ** 2
    return num / torch.sqrt(den_a * den_b)


#: What :func:`recovered_angles` needs, in words (the ``ValueError`` names it).
_ANGLES = (
    "angle coordinates (angle_radii with a radius for some coordinate) or a vector space of "
    "dimension >= 2 (is_vector_space)"
)


def has_recovered_angles(latent: LatentManifold) -> bool:
    r"""Whether :func:`recovered_angles` applies to ``latent``, by its declared capabilities.

    True when some coordinate is an angle (``angle_radii``) or when the latent is a vector
    space (``is_vector_space``) of dimension at least 2; e.g. not on the sphere or on
    :math:`\mathbb R^1`.
    """
    has_angle = any(r is not None for r in latent.angle_radii)
    return has_angle or (latent.is_vector_space and latent.dim >= 2)


@torch.no_grad()
def recovered_angles(vae: VAE, data: Tensor) -> Tensor:
    r"""The angles the encoder gives the data, read off the latent's declared capabilities.

    * **angle coordinates** (``latent.angle_radii`` has a radius for them: the circle, tori,
      products with a circle): the angle coordinates of the posterior locations themselves,
      wrapped to :math:`[-\pi, \pi)`, one per angle coordinate in coordinate order;
    * otherwise, on a **vector space** (``latent.is_vector_space``) of dimension
      :math:`d \ge 2`: the posterior locations are centred on their mean and each consecutive
      coordinate pair gives one angle by ``atan2`` (:math:`\lfloor d/2 \rfloor` angles), the
      angle around the centre of the encoded loop.

    The model is evaluated in eval mode (its previous mode is restored) on its own device and
    dtype.

    Parameters
    ----------
    vae : VAE
        A model whose latent declares angle coordinates or a vector space of dimension >= 2
        (:func:`has_recovered_angles`).
    data : Tensor, shape=[N, *data_shape]
        Datapoints.

    Returns
    -------
    Tensor, shape=[N, m]
        float64, on the CPU; ``m`` the number of angle coordinates, or :math:`\lfloor d/2
        \rfloor` on a vector space.

    Raises
    ------
    ValueError
        If the latent declares neither (e.g. the sphere, :math:`\mathbb R^1`), naming the
        capabilities.
    """
    _check_data(vae, data)
    latent = vae.latent
    require(latent, _ANGLES, has_recovered_angles(latent), "recovered_angles")
    device, dtype = _model_device_dtype(vae)
    was_training = vae.training
    vae.eval()
    try:
        posterior = vae.encode(data.to(device=device, dtype=dtype))
        location = latent.posterior_location(posterior)
    finally:
        vae.train(was_training)
    angles = [i for i, r in enumerate(latent.angle_radii) if r is not None]
    if angles:  # wrapped in the model's dtype, so that its -pi stays -pi
        return wrap_angle(location[:, angles]).double().cpu()
    location = location.double().cpu()
    location = location - location.mean(0)
    pairs = location[:, : 2 * (location.shape[-1] // 2)].unflatten(-1, (-1, 2))
    return torch.atan2(pairs[..., 1], pairs[..., 0])


def _as_columns(angles: Tensor, name: str) -> Tensor:
    if not torch.is_tensor(angles) or angles.dim() not in (1, 2):
        raise ValueError(
            f"{name} must be a tensor of shape (N,) or (N, k), got "
            f"{tuple(angles.shape) if torch.is_tensor(angles) else type(angles).__name__}"
        )
    angles = angles.detach().double().cpu()
    return angles.unsqueeze(-1) if angles.dim() == 1 else angles


def _correlation_matrix(true_angles: Tensor, recovered: Tensor) -> Tensor:
    """``|circular_correlation|`` of every true column with every recovered column, (k, m)."""
    true_angles = _as_columns(true_angles, "true_angles")
    recovered = _as_columns(recovered, "recovered_angles")
    if len(true_angles) != len(recovered):
        raise ValueError(
            f"true_angles and recovered_angles must have the same number of datapoints, got "
            f"{len(true_angles)} and {len(recovered)}"
        )
    return torch.stack(
        [
            torch.stack([circular_correlation(t, r).abs() for r in recovered.T])
            for t in true_angles.T
        ]
    )


def _best_matching(corr: Tensor) -> list[tuple[int, int]]:
    """Injective matching of rows to columns of size ``min(k, m)`` maximising the total.

    Exhaustive search (``k``, ``m`` are tiny); NaN counts as the worst correlation; ties go to the
    lexicographically first matching (the identity when it is optimal).
    """
    k, m = corr.shape
    scores = torch.nan_to_num(corr, nan=-1.0).tolist()
    best: list[tuple[int, int]] = []
    best_total = -math.inf
    if m >= k:
        candidates = (
            list(zip(range(k), cols, strict=True)) for cols in itertools.permutations(range(m), k)
        )
    else:
        candidates = (
            list(zip(rows, range(m), strict=True)) for rows in itertools.permutations(range(k), m)
        )
    for pairs in candidates:
        total = math.fsum(scores[i][j] for i, j in pairs)
        if total > best_total + 1e-12:
            best, best_total = pairs, total
    return sorted(best)


def _assignment(corr: Tensor) -> tuple[int, ...]:
    """Recovered column of each true factor (rows of ``corr``), one-to-one."""
    k, m = corr.shape
    if m < k:
        raise ValueError(
            f"recovered_angles must have at least as many columns as true_angles to assign them "
            f"one-to-one, got {m} recovered and {k} true"
        )
    return tuple(j for _, j in _best_matching(corr))


def factor_assignment(true_angles: Tensor, recovered_angles: Tensor) -> tuple[int, ...]:
    r"""The one-to-one assignment of true factors to recovered angles used by
    :func:`factor_correlations`: ``assignment[i]`` is the recovered column of true factor ``i``.

    Parameters
    ----------
    true_angles : Tensor, shape=[N, k] or [N]
        True phases.
    recovered_angles : Tensor, shape=[N, m] or [N]
        Recovered angles, ``m >= k``.

    Returns
    -------
    tuple of int, length k
        Distinct column indices maximising :math:`\sum_i |\rho(\varphi_i, \theta_{a(i)})|`.
    """
    return _assignment(_correlation_matrix(true_angles, recovered_angles))


def factor_correlations(true_angles: Tensor, recovered_angles: Tensor) -> Tensor:
    r"""Absolute circular correlation of each true factor with its assigned recovered angle.

    With :math:`C_{ij} = |\rho(\varphi_i, \theta_j)|` (Fisher-Lee, :func:`circular_correlation`;
    the absolute value allows a reflection), the assignment :math:`a` is the injective map from
    true factors to recovered angles maximising :math:`\sum_i C_{i a(i)}` (exhaustive search; the
    factors may be swapped), so that two true factors never claim the same recovered angle, as a
    greedy per-factor maximum could.

    Parameters
    ----------
    true_angles : Tensor, shape=[N, k] or [N]
        True phases.
    recovered_angles : Tensor, shape=[N, m] or [N]
        Recovered angles (e.g. :func:`recovered_angles`), ``m >= k``.

    Returns
    -------
    Tensor, shape=[k]
        :math:`C_{i a(i)}` in the order of the true factors, float64 on the CPU.
    """
    corr = _correlation_matrix(true_angles, recovered_angles)
    return torch.stack([corr[i, j] for i, j in enumerate(_assignment(corr))])


def phase_recovery(vae: VAE, data: Tensor, true_angles: Tensor) -> Tensor:
    """Absolute circular correlation of each true angle with its assigned recovered angle.

    The recovered angles are :func:`recovered_angles`, assigned one-to-one to the true angles as
    in :func:`factor_correlations` (for one true angle: the best recovered angle). When the
    latent space gives fewer angles than there are true angles, the best matching of all the
    recovered angles is used and the true angles left over get ``nan``.

    Parameters
    ----------
    vae : VAE
        A trained model.
    data : Tensor, shape=[N, *data_shape]
        Datapoints.
    true_angles : Tensor, shape=[N, k]
        The angles that generated them.

    Returns
    -------
    Tensor, shape=[k]
        For each true angle, ``|circular_correlation|`` with its assigned recovered angle.
    """
    recovered = recovered_angles(vae, data)
    corr = _correlation_matrix(true_angles.reshape(len(data), -1), recovered)
    result = torch.full((corr.shape[0],), math.nan, dtype=torch.float64)
    for i, j in _best_matching(corr):
        result[i] = corr[i, j]
    return result


# --- winding numbers -----------------------------------------------------------------------
def _winding_along(angles: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Winding numbers and largest jumps of closed loops running along ``dim``."""
    steps = wrap_angle(angles.roll(-1, dims=dim) - angles)
    winding = torch.round(steps.sum(dim) / (2.0 * math.pi)).long()
    return winding, steps.abs().amax(dim)


def winding_number(
    angles: Tensor, return_max_jump: bool = False
) -> int | Tensor | tuple[int, float] | tuple[Tensor, Tensor]:
    r"""Winding number of a closed loop of angles.

    With the angles :math:`\theta_1..\theta_N` in loop order and the steps
    :math:`\delta_i = \operatorname{wrap}(\theta_{i+1} - \theta_i)` into :math:`[-\pi, \pi)`,
    including the closing step :math:`\theta_N \to \theta_1`,

    .. math::

        w = \operatorname{round}\Big(\frac{1}{2\pi} \sum_{i=1}^{N} \delta_i\Big)

    (the sum is an exact multiple of :math:`2\pi` up to rounding). For the encoded loop of
    :math:`X_{Vis}` (phases in increasing order), :math:`w = \pm 1` when the encoding goes once
    around (the sign is the orientation: :math:`-1` for a reflected encoding), :math:`0` when it
    folds back on itself, :math:`\pm 2` when it goes around twice. It is only meaningful when
    consecutive points are closer than :math:`\pi` apart (otherwise the direction of a step is
    ambiguous): check the largest jump :math:`\max_i |\delta_i|`, which ``return_max_jump``
    returns as well (well below :math:`\pi`, e.g. :math:`< \pi/2`, for a trustworthy value).

    Parameters
    ----------
    angles : Tensor, shape=[N] or [N, k]
        Angles (radians) in loop order, ``N >= 2``; one loop per column.
    return_max_jump : bool
        Also return the largest :math:`|\delta_i|`.

    Returns
    -------
    int, or Tensor of int64 with shape [k]
        The winding number(s) (an ``int`` for 1-D input).
    float or Tensor of float64 with shape [k]
        The largest jump(s), only with ``return_max_jump``.
    """
    if not torch.is_tensor(angles) or angles.dim() not in (1, 2) or angles.shape[0] < 2:
        raise ValueError(
            "angles must be a tensor of shape (N,) or (N, k) with N >= 2 points along the loop, "
            f"got {tuple(angles.shape) if torch.is_tensor(angles) else type(angles).__name__}"
        )
    angles = angles.detach().double().cpu()
    if not torch.isfinite(angles).all():
        raise ValueError("angles must be finite, got nan or inf values")
    winding, jump = _winding_along(angles, 0)
    if angles.dim() == 1:
        return (int(winding), float(jump)) if return_max_jump else int(winding)
    return (winding, jump) if return_max_jump else winding


def encoding_nonuniformity(angles: Tensor) -> float:
    r"""How far the encoding of a loop at regular phases is from uniform, in nats.

    For encoded angles :math:`\theta_1..\theta_N` of :math:`N` regularly spaced true phases
    (:math:`X_{Vis}` in order) on a loop of winding number :math:`w = \pm 1`, the relative
    speeds :math:`r_i = \delta_i N / (2\pi w)` of the steps
    :math:`\delta_i = \operatorname{wrap}(\theta_{i+1} - \theta_i)` average to 1, and

    .. math::

        G = -\frac1N \sum_i \log r_i \;\ge\; 0

    (Jensen), with equality exactly for a uniform encoding :math:`\theta = \pm\varphi + c`.
    :math:`G` discretises :math:`-E_\varphi \log|\theta'(\varphi)|`, which is what a
    uniform re-encoding would gain in ELBO (nats per datapoint) when the posteriors are narrow:
    with the posterior time fitted to each point, the ELBO of a point is
    :math:`\log|\theta'(\varphi)|` plus terms that do not depend on the encoding. So a
    small :math:`G` means that the objective barely distinguishes a non-uniform encoding.

    Parameters
    ----------
    angles : Tensor, shape=[N]
        Encoded angles in the order of the regular true phases, ``N >= 3``.

    Returns
    -------
    float
        :math:`G`; ``inf`` if the encoding is not monotone (a step against the orientation),
        ``nan`` if the loop does not wind exactly once.
    """
    if not torch.is_tensor(angles) or angles.dim() != 1 or angles.shape[0] < 3:
        raise ValueError(
            "angles must be a 1-D tensor of N >= 3 encoded angles, got "
            f"{tuple(angles.shape) if torch.is_tensor(angles) else type(angles).__name__}"
        )
    angles = angles.detach().double().cpu()
    steps = wrap_angle(angles.roll(-1) - angles)
    winding = round(float(steps.sum()) / (2.0 * math.pi))
    if abs(winding) != 1:
        return math.nan
    speed = steps * angles.shape[0] / (2.0 * math.pi * winding)
    if bool((speed <= 0).any()):
        return math.inf
    return float(-torch.log(speed).mean())


def loop_winding(
    vae: VAE, data: Tensor, return_max_jump: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Winding numbers of the encoded loop of ``data`` around each recovered angle.

    The data must be ordered along a closed loop (as :math:`X_{Vis}`, phases in increasing
    order); the angles are :func:`recovered_angles` (on the circle and tori the latent angles
    themselves; on a vector space the angles around the centroid in each coordinate plane).

    Parameters
    ----------
    vae : VAE
        A trained model.
    data : Tensor, shape=[N, *data_shape]
        Datapoints in loop order.
    return_max_jump : bool
        Also return the largest step of each loop (see :func:`winding_number`).

    Returns
    -------
    Tensor of int64, shape=[m]
        One winding number per recovered angle (and the largest jumps, float64, with
        ``return_max_jump``).
    """
    return winding_number(recovered_angles(vae, data), return_max_jump=return_max_jump)


class GridWindings(NamedTuple):
    """Result of :func:`grid_windings`: per true phase ``i`` (``k`` of them)."""

    #: ``windings[i]``: winding number of every loop along which only phase ``i`` varies, with
    #: respect to the recovered angle assigned to phase ``i``; int64 of shape
    #: ``(N / shape[i],)``, loops in C order of the other grid indices.
    windings: tuple[Tensor, ...]
    #: ``max_jumps[i]``: the largest step of each of those loops (float64, same shape).
    max_jumps: tuple[Tensor, ...]
    #: ``assignment[i]``: the recovered angle (column of :func:`recovered_angles`) of phase ``i``.
    assignment: tuple[int, ...]
    #: ``fraction[i]``: fraction of the loops of phase ``i`` with ``|winding| == 1``, shape (k,).
    fraction: Tensor


def grid_windings(
    vae: VAE,
    data: Tensor,
    shape: tuple[int, ...],
    true_angles: Tensor | None = None,
) -> GridWindings:
    r"""Winding numbers of the encoded grid loops of a torus :math:`X_{Vis}`.

    The data are the phases :math:`(\varphi_1, \dots, \varphi_k)` on a regular grid of size
    ``shape`` in C order (the first phase varies slowest): datapoint
    :math:`(i_1, \dots, i_k) \mapsto \sum_j i_j \prod_{l > j} n_l`. For each phase :math:`i`, every
    line of the grid along which only :math:`\varphi_i` varies is a closed loop; its winding number
    (:func:`winding_number`) is taken in the recovered angle assigned to :math:`\varphi_i` by
    :func:`factor_assignment` (so that swapped factors are handled). A model that separates the
    phases has :math:`|w| = 1` on every loop of every phase (the sign is the orientation);
    ``fraction`` summarises this, ``windings`` and ``max_jumps`` give the per-loop values.

    Parameters
    ----------
    vae : VAE
        A trained model with at least ``k`` recovered angles (e.g. a torus latent).
    data : Tensor, shape=[N, *data_shape]
        The grid datapoints, ``N = prod(shape)``.
    shape : tuple of int
        Grid size per phase ``(n_1, ..., n_k)``, each ``>= 2``.
    true_angles : Tensor, shape=[N, k], optional
        The phases (used for the assignment only). Default: the regular grid
        :math:`2\pi i_j / n_j` in increasing order (the circular correlation does not depend on the
        offset).

    Returns
    -------
    GridWindings
    """
    shape = tuple(shape)
    if len(shape) == 0 or any(
        isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in shape
    ):
        raise ValueError(f"shape must be a non-empty tuple of integers >= 2, got {shape!r}")
    if len(data) != math.prod(shape):
        raise ValueError(
            f"data must have prod(shape) = {math.prod(shape)} datapoints for shape {shape}, "
            f"got {len(data)}"
        )
    k = len(shape)
    if true_angles is None:
        axes = [2.0 * math.pi * torch.arange(n, dtype=torch.float64) / n for n in shape]
        true_angles = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, k)
    elif not torch.is_tensor(true_angles) or tuple(true_angles.shape) != (len(data), k):
        raise ValueError(
            f"true_angles must have shape ({len(data)}, {k}), got "
            f"{tuple(true_angles.shape) if torch.is_tensor(true_angles) else true_angles!r}"
        )
    recovered = recovered_angles(vae, data)
    assignment = factor_assignment(true_angles, recovered)
    grid = recovered.reshape(*shape, recovered.shape[-1])
    windings, jumps, fraction = [], [], []
    for i, column in enumerate(assignment):
        loops = grid[..., column].movedim(i, -1).reshape(-1, shape[i])
        winding, jump = _winding_along(loops, -1)
        windings.append(winding)
        jumps.append(jump)
        fraction.append((winding.abs() == 1).double().mean())
    return GridWindings(tuple(windings), tuple(jumps), assignment, torch.stack(fraction))


def winding_matrix(recovered: Tensor, shape: tuple[int, int]) -> Tensor:
    r"""Integer winding matrix of an encoded torus grid: the map on the torus's loops.

    For phases on a regular ``shape = (n_1, n_2)`` grid in C order (first phase slowest),
    :math:`W_{ji}` is the median over the grid loops along which only phase :math:`i` varies of
    the winding number of recovered angle :math:`j`. A model whose latent angles follow
    :math:`\theta \approx W\varphi + c` has this :math:`W`; the encoder is a homeomorphism of
    the torus (up to homotopy) exactly when :math:`|\det W| = 1`, and it separates the phases
    factor by factor when :math:`W` is a signed permutation (factors swapped or reflected).

    Parameters
    ----------
    recovered : Tensor, shape=[n_1 * n_2, 2]
        Recovered angles (:func:`recovered_angles`) of the grid datapoints, in grid order.
    shape : tuple of int
        ``(n_1, n_2)``, each ``>= 2``.

    Returns
    -------
    Tensor, shape=[2, 2], dtype int64
    """
    shape = tuple(shape)
    if len(shape) != 2 or any(
        isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in shape
    ):
        raise ValueError(f"shape must be two integers >= 2, got {shape!r}")
    recovered = _as_columns(recovered, "recovered")
    if recovered.shape != (math.prod(shape), 2):
        raise ValueError(
            f"recovered must have shape ({math.prod(shape)}, 2) for a {shape} grid, "
            f"got {tuple(recovered.shape)}"
        )
    grid = recovered.reshape(*shape, 2)
    columns = []
    for i in range(2):
        loops = grid.movedim(i, -2).reshape(-1, shape[i], 2)
        winding, _ = _winding_along(loops, 1)
        columns.append(winding.median(0).values)
    return torch.stack(columns, dim=1)


def unwound_phase_correlations(
    true_angles: Tensor, recovered: Tensor, shape: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    r"""Phase correlations after undoing the torus map's winding matrix.

    With :math:`W` from :func:`winding_matrix` and :math:`|\det W| = 1`, the integer inverse
    :math:`W^{-1}` maps the recovered angles to phase estimates
    :math:`\hat\varphi = W^{-1}\theta` (wrapped), whose absolute circular correlation with each
    true phase is returned. A shear such as :math:`\theta = (\varphi_1 + \varphi_2, \varphi_2)`
    recovers the torus but mixes the phases: :func:`factor_correlations` is then low, this is
    close to 1. ``nan`` when :math:`|\det W| \ne 1` (the torus is not recovered).

    Returns
    -------
    (Tensor, Tensor)
        The winding matrix ``(2, 2)`` and the correlations ``(2,)``.
    """
    true_angles = _as_columns(true_angles, "true_angles")
    recovered = _as_columns(recovered, "recovered")
    W = winding_matrix(recovered, shape)
    det = int(W[0, 0] * W[1, 1] - W[0, 1] * W[1, 0])
    if abs(det) != 1:
        return W, torch.full((2,), math.nan, dtype=torch.float64)
    inverse = det * torch.stack(
        [torch.stack([W[1, 1], -W[0, 1]]), torch.stack([-W[1, 0], W[0, 0]])]
    )
    estimate = wrap_angle(recovered @ inverse.double().T)
    corr = torch.stack(
        [circular_correlation(true_angles[:, i], estimate[:, i]).abs() for i in range(2)]
    )
    return W, corr
