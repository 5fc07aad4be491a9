r"""Harmonic analysis of trained VAEs: the claims of Camuto & Willetts (AISTATS 2022).

On three benchmarks (noisy sinusoids, the toroidal images, the pixel-shift images), for a
Euclidean latent and the matching manifold latent (:math:`\mathbb R^2` / :math:`S^1`,
:math:`\mathbb R^4` / Clifford torus), models are trained over three one-at-a-time sweeps
around the base setting (:math:`\beta = 1`, learned posterior variance, no input noise):

* the KL weight :math:`\beta`;
* a fixed posterior time :math:`t` (:class:`~manifold_vae.manifolds.FixedTime`; the encoder
  variance is :math:`2t` on :math:`\mathbb R^d`);
* the standard deviation of Gaussian noise added to the encoder's input during training.

For each model: the decoder's high-frequency content (Fourier on the manifold, Hermite on
:math:`\mathbb R^d`), the decoder's Lipschitz estimate on tangent directions at the encoded
data, the encoder's high-frequency content along the true phase(s), and the encoder's
Lipschitz estimate on the data (:mod:`manifold_vae.harmonic`). For the fixed-time manifold
models the exact Fourier-domain posterior-averaged decoder is checked against Monte Carlo.
"""

from __future__ import annotations

import functools
import math
import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..datasets import LatentDataset, pixel_shift, sinusoids, sinusoids_grid, toroidal_grid
from ..harmonic import (
    decoder_jacobian_norms,
    decoder_spectrum,
    encoder_jacobian_norms,
    encoder_spectrum,
    heat_smoothed_decoder,
    monte_carlo_smoothed_decoder,
)
from ..likelihoods import Gaussian
from ..manifolds import Circle, CliffordTorus, Euclidean, FixedTime, LatentManifold
from ..networks import default_hidden
from ..vae import VAE
from .budget import Budget
from .common import (
    Member,
    Report,
    build_members,
    by_cell,
    cell_key,
    convergence,
    markdown_table,
    member_records,
    plot_histories,
    train_members,
)

__all__ = ["DEFAULT", "TINY", "harmonic"]

#: ``epochs`` of the sinusoid models; the image models train for a multiple (see ``_setups``).
DEFAULT = Budget(epochs=100, reps=3, n=1000)
TINY = Budget(epochs=1, reps=1, n=64)
BETAS = (0.25, 1.0, 4.0)
TIMES = (0.01, 0.1, 0.5)
INPUT_NOISES = (0.0, 0.1, 0.3)
SIGMA_X = 0.1
LR = 1e-3
#: Power-iteration tolerance of the Lipschitz estimates.
LIPSCHITZ_RTOL = 1e-4
#: Significance level of each one-sided trend test (per pair and direction).
ALPHA = 0.05
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
#: The report columns that name a grid cell (:func:`_cell_columns`).
CELL_COLUMNS = ("benchmark", "latent", "beta", "time", "input noise")
#: A member fits poorly when its reconstruction share is this far below its cell's median.
POOR_FIT = 0.25
KNOBS = {"beta": "KL weight beta", "time": "fixed posterior time t", "input_noise": "input noise"}
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


@dataclass
class _Setup:
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


def _setups(budget: Budget, tiny: bool) -> list[_Setup]:
    side, pixels = (8, 16) if tiny else (16, 32)
    sines = sinusoids(n=budget.n, noise=0.1, seed=0)
    torus = toroidal_grid(n_per_axis=side)
    shift = pixel_shift(size=pixels)
    return [
        _Setup(
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
        _Setup(
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
        _Setup(
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


def _settings() -> list[dict[str, Any]]:
    """The (beta, input noise, time) settings: three one-at-a-time sweeps around the base."""
    base = {"beta": 1.0, "input_noise": 0.0, "time": None}
    settings = [dict(base, beta=b) for b in BETAS]
    settings += [dict(base, input_noise=s) for s in INPUT_NOISES if s != 0.0]
    settings += [dict(base, time=t) for t in TIMES]
    return settings


def _knob_cells(knob: str) -> list[tuple[float, dict[str, Any]]]:
    """The settings of a sweep, by knob value."""
    base = {"beta": 1.0, "input_noise": 0.0, "time": None}
    values = {"beta": BETAS, "time": TIMES, "input_noise": INPUT_NOISES}[knob]
    return [(v, dict(base, **{knob: v})) for v in values]


def _kind(latent: LatentManifold) -> str:
    return "R^d" if math.isinf(latent.volume) else "manifold"


def _measure(m: Member, setup: _Setup) -> None:
    """The four harmonic quantities of a trained member, into ``m.metrics``."""
    vae = m.vae.eval()
    dtype = next(vae.parameters()).dtype
    vis = setup.vis.data.to(dtype)
    fourier = _kind(vae.latent) == "manifold"
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
    m.metrics.update(_reconstruction(m, setup.train.to(dtype)))
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
        _smoothing_check(m, locations)


def _reconstruction(m: Member, data: Tensor) -> dict[str, Any]:
    r"""How much of the data the member's latent carries: reconstruction share, KL, collapse.

    .. math::

        R = 1 - \frac{E_x E_{q(z \mid x)} \lVert x - f(z)\rVert^2}
                      {E_x \lVert x - \bar x\rVert^2}

    on the clean training data (:data:`RECONSTRUCTION_SAMPLES` posterior samples per point,
    seeded by the member's seed): 1 for a perfect reconstruction, about 0 when the decoder
    ignores the latent (posterior collapse), negative when it is worse than the data mean.
    ``collapsed`` when :math:`R <` :data:`COLLAPSE_SHARE`.

    Parameters
    ----------
    m : Member
        A trained member.
    data : Tensor, shape=[N, *data_shape]
        Its clean training data, in the model's dtype.
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


def _smoothing_check(m: Member, locations: Tensor) -> None:
    """Exact Fourier-domain posterior mean of the decoder against 1000-sample Monte Carlo."""
    loc = locations[:: max(1, len(locations) // 4)][:4]
    time = torch.full(loc.shape[:-1], m.cell["time"], dtype=loc.dtype)
    exact = heat_smoothed_decoder(m.vae, loc, time, 64 if loc.shape[-1] == 1 else 32)
    mc, error = monte_carlo_smoothed_decoder(m.vae, loc, time, samples=1000, seed=m.seed)
    z = ((exact.to(mc.dtype) - mc).abs() / error.clamp_min(1e-12)).flatten()
    m.metrics["smoothing_max_z"] = float(z.max())
    m.metrics["smoothing_mean_abs_difference"] = float((exact.to(mc.dtype) - mc).abs().mean())


def _summary(values: Sequence[float]) -> tuple[float, float, int]:
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std, n


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3g} ± {std:.2g}"


def _check_groups(groups: Sequence[Sequence[float]]) -> None:
    if len(groups) < 2:
        raise ValueError(f"groups: need at least 2 sweep levels, got {len(groups)}")
    for values in groups:
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"groups: values must be finite, got {list(values)}")


@functools.cache
def _jonckheere_null(sizes: tuple[int, ...]) -> tuple[int, ...]:
    r"""Exact null distribution of the Jonckheere-Terpstra statistic for untied data.

    Under no effect every ordering of the pooled values over the sweep levels is equally
    likely. Placing the values from the smallest up, a value of level :math:`l` adds the
    number of values already placed at lower levels; a recursion over how many values of each
    level have been placed counts the orderings with each statistic.

    Parameters
    ----------
    sizes : tuple of int
        The number of values at each sweep level, in sweep order.

    Returns
    -------
    tuple of int
        ``counts[j]``: the number of distinct orderings with statistic ``j``; they sum to the
        multinomial coefficient :math:`N! / \prod_l n_l!`.
    """
    table: dict[tuple[int, ...], dict[int, int]] = {tuple(0 for _ in sizes): {0: 1}}
    for _ in range(sum(sizes)):
        grown: dict[tuple[int, ...], dict[int, int]] = {}
        for placed, counts in table.items():
            for level, size in enumerate(sizes):
                if placed[level] == size:
                    continue
                gain = sum(placed[:level])
                state = (*placed[:level], placed[level] + 1, *placed[level + 1 :])
                target = grown.setdefault(state, {})
                for j, c in counts.items():
                    target[j + gain] = target.get(j + gain, 0) + c
        table = grown
    (final,) = table.values()
    return tuple(final.get(j, 0) for j in range(max(final) + 1))


def _trend_test(groups: Sequence[Sequence[float]]) -> tuple[float, float, float]:
    r"""Exact one-sided Jonckheere-Terpstra tests of a monotone trend across a sweep.

    .. math::

        J = \sum_{l < l'} \sum_{a \in G_l} \sum_{b \in G_{l'}}
            \bigl(\mathbb 1[b > a] + \tfrac12 \mathbb 1[b = a]\bigr),

    the number of pairs of repetitions at two sweep levels that increase with the knob (Kendall's
    tau between knob and value, ties within a level not counted). Large :math:`J`: the quantity
    rises with the knob. The p-values are exact under no effect for untied values (the
    measurements are continuous; a tie counts 1/2 against the untied null distribution).

    Parameters
    ----------
    groups : sequence of sequences of float
        The repetitions' values at each sweep level, in increasing knob order; empty levels
        (every member excluded) are dropped.

    Returns
    -------
    tuple of float
        ``(J, p_lower, p_higher)``: :math:`P(J' \le J)` and :math:`P(J' \ge J)` under no
        effect.
    """
    _check_groups(groups)
    kept = [list(g) for g in groups if g]
    if len(kept) < 2:
        return math.nan, 1.0, 1.0
    j = 0.0
    for low in range(len(kept)):
        for high in range(low + 1, len(kept)):
            for a in kept[low]:
                for b in kept[high]:
                    j += 1.0 if b > a else 0.5 if b == a else 0.0
    counts = _jonckheere_null(tuple(len(g) for g in kept))
    total = sum(counts)
    p_lower = sum(c for k, c in enumerate(counts) if k <= j) / total
    p_higher = sum(c for k, c in enumerate(counts) if k >= j) / total
    return j, p_lower, p_higher


def _trend(groups: Sequence[Sequence[float]], alpha: float = ALPHA) -> str:
    """``lower``/``higher`` when the one-sided trend test is significant at ``alpha``.

    Parameters
    ----------
    groups : sequence of sequences of float
        The repetitions' values at each sweep level, in increasing knob order.
    alpha : float
        Significance level of each one-sided test.
    """
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
    _, p_lower, p_higher = _trend_test(groups)
    if p_lower <= alpha:
        return "lower"
    if p_higher <= alpha:
        return "higher"
    return "no significant trend"


def _needed(pairs: int) -> int:
    """Significant pairs a claim needs: at least half of them (and at least one)."""
    return max(1, math.ceil(pairs / 2))


def _overall(lower: int, higher: int, pairs: int) -> str:
    """The verdict on a claim from its pairs' significant trends; the rule is in the report.

    Parameters
    ----------
    lower, higher : int
        Pairs with a significant decrease / increase along the sweep.
    pairs : int
        All (benchmark, latent) pairs of the claim.
    """
    if min(lower, higher) < 0 or lower + higher > pairs:
        raise ValueError(
            f"lower, higher: need 0 <= lower + higher <= pairs, got {lower}, {higher}, {pairs}"
        )
    if lower >= _needed(pairs) and higher == 0:
        return "supported"
    if higher >= _needed(pairs) and lower == 0:
        return "contradicted"
    return "not supported"


def _false_positive_bound(pairs: int, alpha: float = ALPHA) -> float:
    r"""Upper bound on the chance that the rule calls a claim "supported" under no effect.

    .. math::

        P(\text{supported}) \le P\bigl(\mathrm{Bin}(P, \alpha) \ge \lceil P/2 \rceil\bigr)

    for :math:`P` independent pairs whose exact tests have size at most :math:`\alpha` (the
    condition "none significant the other way" only lowers it).
    """
    need = _needed(pairs)
    return math.fsum(
        math.comb(pairs, k) * alpha**k * (1.0 - alpha) ** (pairs - k)
        for k in range(need, pairs + 1)
    )


def _values(cells: Mapping[tuple, list[Member]], cell: Mapping[str, Any], key: str) -> list[float]:
    return [float(m.metrics[key]) for m in cells.get(cell_key(cell), [])]


def _claims(
    cells: Mapping[tuple, list[Member]],
    setups: Sequence[_Setup],
    keep: Callable[[Member], bool],
) -> dict[str, dict[str, Any]]:
    """Per claim: the trend test of every (benchmark, latent) pair on the kept members.

    Returns, per claim text, the counts ``lower``/``higher``/``pairs``, the ``verdict``
    (:func:`_overall`), the per-pair ``tests`` (for the JSON) and the report ``rows``
    ``(benchmark, latent, sweep, means, J / J_max, p-values, effect)``.
    """
    out = {}
    for knob, key, text in CLAIMS:
        sweep = _knob_cells(knob)
        tests, rows = [], []
        for setup in setups:
            for latent in setup.latents:
                groups = [
                    [
                        float(m.metrics[key])
                        for m in cells.get(
                            cell_key({"dataset": setup.name, "latent": repr(latent), **c}), []
                        )
                        if keep(m) and math.isfinite(float(m.metrics[key]))
                    ]
                    for _, c in sweep
                ]
                j, p_lower, p_higher = _trend_test(groups)
                effect = _trend(groups)
                sizes = [len(g) for g in groups]
                j_max = sum(a * b for i, a in enumerate(sizes) for b in sizes[i + 1 :])
                means = " -> ".join(_fmt(*_summary(g)[:2]) if g else "-" for g in groups)
                tests.append(
                    {
                        "benchmark": setup.name,
                        "latent": repr(latent),
                        "sizes": sizes,
                        "J": j,
                        "p_lower": p_lower,
                        "p_higher": p_higher,
                        "effect": effect,
                    }
                )
                rows.append(
                    (
                        setup.name,
                        repr(latent),
                        f"{sweep[0][0]:g} -> {sweep[-1][0]:g}",
                        means,
                        f"{j:g} / {j_max}" if math.isfinite(j) else "-",
                        f"{p_lower:.2g}, {p_higher:.2g}",
                        effect,
                    )
                )
        lower = sum(t["effect"] == "lower" for t in tests)
        higher = sum(t["effect"] == "higher" for t in tests)
        out[text] = {
            "lower": lower,
            "higher": higher,
            "pairs": len(tests),
            "verdict": _overall(lower, higher, len(tests)),
            "tests": tests,
            "rows": rows,
        }
    return out


def _cell_columns(cell: Mapping[str, Any]) -> tuple[str, ...]:
    """A grid cell as report cells, in the order of :data:`CELL_COLUMNS`."""
    time = "learned" if cell["time"] is None else f"{cell['time']:g}"
    return (
        cell["dataset"],
        cell["latent"],
        f"{cell['beta']:g}",
        time,
        f"{cell['input_noise']:g}",
    )


def _poor_fits(cells: Mapping[tuple, list[Member]]) -> list[tuple[str, ...]]:
    """Report rows of the collapsed members and of those far below their cell's median R."""
    rows = []
    for group in cells.values():
        shares = [m.metrics["reconstruction_share"] for m in group]
        losses = [m.metrics["final_loss"] for m in group]
        median_share, median_loss = statistics.median(shares), statistics.median(losses)
        for m in group:
            share = m.metrics["reconstruction_share"]
            if m.metrics["collapsed"] or share < median_share - POOR_FIT:
                rows.append(
                    (
                        *_cell_columns(m.cell),
                        str(m.rep),
                        f"{share:.3f}",
                        f"{median_share:.3f}",
                        f"{m.metrics['kl']:.3g}",
                        f"{m.metrics['final_loss']:.4g}",
                        f"{median_loss:.4g}",
                        "yes" if m.metrics["collapsed"] else "no",
                    )
                )
    return rows


def _plot(members: Sequence[Member], setups: Sequence[_Setup], path: Path) -> Path:
    from ..plots import _figure

    cells = by_cell(members)
    figure = _figure(13.0, 11.0)
    axes = figure.subplots(len(QUANTITIES), len(KNOBS), squeeze=False)
    for col, (knob, knob_label) in enumerate(KNOBS.items()):
        sweep = _knob_cells(knob)
        for row, (key, label) in enumerate(QUANTITIES.items()):
            ax = axes[row][col]
            for i, setup in enumerate(setups):
                for j, latent in enumerate(setup.latents):
                    stats = [
                        _summary(vals)
                        if (
                            vals := _values(
                                cells, {"dataset": setup.name, "latent": repr(latent), **c}, key
                            )
                        )
                        else (math.nan, 0.0, 0)
                        for _, c in sweep
                    ]
                    x = [k + 0.06 * (2 * i + j - 2.5) for k in range(len(sweep))]
                    ax.errorbar(
                        x,
                        [s[0] for s in stats],
                        yerr=[s[1] for s in stats],
                        color=f"C{i}",
                        ls="-" if j else "--",
                        marker="o" if j else "s",
                        ms=3,
                        capsize=2,
                        label=f"{setup.name}, {latent!r}",
                    )
            ax.set_xticks(range(len(sweep)), [f"{v:g}" for v, _ in sweep])
            ax.set_yscale("log")
            if row == len(QUANTITIES) - 1:
                ax.set_xlabel(knob_label)
            if col == 0:
                ax.set_ylabel(label, fontsize=8)
    axes[0][0].legend(fontsize=6)
    figure.suptitle("harmonic quantities against each knob (mean ± std over repetitions)")
    figure.tight_layout()
    figure.savefig(path)
    return path


def _plot_spectra(members: Sequence[Member], setups: Sequence[_Setup], path: Path) -> Path:
    """Decoder energy per frequency of the fixed-time manifold models (repetition 0)."""
    from ..plots import _figure

    figure = _figure(4.2 * len(setups), 3.6)
    axes = figure.subplots(1, len(setups), squeeze=False)[0]
    for ax, setup in zip(axes, setups, strict=True):
        manifold = setup.latents[1]
        grid = 64 if manifold.dim == 1 else 32
        models = [
            m
            for m in members
            if m.rep == 0
            and m.cell["dataset"] == setup.name
            and m.cell["latent"] == repr(manifold)
            and m.cell["time"] is not None
        ]
        truth = setup.vis.model
        curves = [(f"t = {m.cell['time']:g}", m.vae) for m in models]
        if truth is not None:
            curves.append(("true process", truth))
        for i, (label, model) in enumerate(curves):
            freqs, energy = decoder_spectrum(model, grid_shape=grid).energy_by_frequency()
            keep = freqs > 0
            share = energy[keep] / energy[keep].sum().clamp_min(1e-300)
            ax.semilogy(
                freqs[keep].numpy(),
                share.clamp_min(1e-12).numpy(),
                marker="o",
                ms=2,
                color="k" if model is truth else f"C{i}",
                ls=":" if model is truth else "-",
                label=label,
            )
        ax.axvline(setup.fourier_cutoff + 0.5, color="grey", lw=0.8)
        ax.set_xlabel("Fourier frequency max|m_i|")
        ax.set_title(f"{setup.name}, {manifold!r}", fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("share of the decoder's variance")
    figure.suptitle("decoder spectra at fixed posterior times (grey: the HFC cut-off)")
    figure.tight_layout()
    figure.savefig(path)
    return path


def harmonic(out: Path, budget: Budget = DEFAULT, progress: bool = True) -> Report:
    """Train the sweeps on the three benchmarks, measure, and judge the paper's claims.

    Parameters
    ----------
    out : Path
        Output folder of the figures.
    budget : Budget
        ``epochs`` of the sinusoid models (the toroidal models train 2x, the pixel-shift
        models 6x as many epochs: they take 2 and 1 minibatch steps per epoch), ``reps``
        repetitions per setting, ``n`` sinusoid training points. A budget of at most 2
        epochs and one repetition (the tiny preset) also shrinks the toroidal grid to 8 x 8
        and the pixel-shift images to 16 x 16 pixels.
    progress : bool
        Progress bars.
    """
    tiny = budget.epochs <= 2 and budget.reps == 1
    setups = _setups(budget, tiny)
    members: list[Member] = []
    seconds = 0.0
    for setup in setups:
        cells = [
            {"dataset": setup.name, "latent": repr(latent), **s}
            for latent in setup.latents
            for s in _settings()
        ]
        by_repr = {repr(latent): latent for latent in setup.latents}

        def make(cell: Mapping[str, Any], setup: _Setup = setup, by_repr=by_repr):
            latent = by_repr[cell["latent"]]
            if cell["time"] is not None:
                latent = FixedTime(latent, cell["time"])
            vae = VAE(
                latent,
                tuple(setup.train.shape[1:]),
                Gaussian(SIGMA_X),
                hidden=setup.hidden,
                depth=setup.depth,
            )
            return vae, setup.train

        group = build_members(cells, budget.reps, make)
        runs: dict[tuple[float, float], list[Member]] = {}
        for m in group:
            runs.setdefault((m.cell["beta"], m.cell["input_noise"]), []).append(m)
        for (beta, noise), run in runs.items():
            seconds += train_members(
                run,
                setup.epochs,
                batch_size=setup.batch_size,
                lr=LR,
                progress=progress,
                beta=beta,
                input_noise=noise,
            )
        for m in group:
            _measure(m, setup)
        members += group
    return _report(out, budget, setups, members, seconds)


def _report(
    out: Path, budget: Budget, setups: Sequence[_Setup], members: list[Member], seconds: float
) -> Report:
    cells = by_cell(members)
    rows = []
    for setup in setups:
        for latent in setup.latents:
            for s in _settings():
                cell = {"dataset": setup.name, "latent": repr(latent), **s}
                vals = {k: _values(cells, cell, k) for k in (*QUANTITIES, *HEALTH)}
                rows.append(
                    (
                        *_cell_columns(cell),
                        *(_fmt(*_summary(v)[:2]) for v in vals.values()),
                        str(sum(m.metrics["collapsed"] for m in cells[cell_key(cell)])),
                    )
                )
    claims = {
        "all": _claims(cells, setups, lambda m: True),
        "without collapsed": _claims(cells, setups, lambda m: not m.metrics["collapsed"]),
    }
    claim_rows = [
        (text, *pair_all[:4], *pair_all[4:], *pair_kept[4:])
        for text in claims["all"]
        for pair_all, pair_kept in zip(
            claims["all"][text]["rows"], claims["without collapsed"][text]["rows"], strict=True
        )
    ]
    summary_rows = [
        (
            text,
            *(
                f"{v['lower']}/{v['pairs']} lower, {v['higher']}/{v['pairs']} higher: "
                f"**{v['verdict']}**"
                for v in (claims["all"][text], claims["without collapsed"][text])
            ),
        )
        for text in claims["all"]
    ]
    pairs = len(next(iter(claims["all"].values()))["rows"])
    bound = _false_positive_bound(pairs)
    orderings = sum(_jonckheere_null((budget.reps,) * len(TIMES)))
    reachable = (
        "one pair can reach significance"
        if 1.0 / orderings <= ALPHA
        else "no pair can reach significance at this budget"
    )
    poor_rows = _poor_fits(cells)
    collapsed = sum(m.metrics["collapsed"] for m in members)
    smoothing = [m.metrics["smoothing_max_z"] for m in members if "smoothing_max_z" in m.metrics]
    unconverged = sum(m.metrics["power_iteration_unconverged"] for m in members)
    stopped = sum(m.metrics["stopped"] is not None for m in members)
    drift = {
        s.name: max(
            (m.metrics["convergence"] for m in members if m.cell["dataset"] == s.name),
            default=math.nan,
        )
        for s in setups
    }
    drift_text = ", ".join(f"{name} {value:.1e}" for name, value in drift.items())
    figures = [
        _plot(members, setups, out / "harmonic.png"),
        _plot_spectra(members, setups, out / "spectra.png"),
        plot_histories(
            members,
            out / "training.png",
            label=lambda m: f"{m.cell['dataset']}, {m.cell['latent']}",
        ),
    ]
    setup_rows = [
        (
            s.name,
            f"{tuple(s.train.shape)}",
            " / ".join(repr(lat) for lat in s.latents),
            f"{s.depth} x {s.hidden}",
            str(s.epochs),
            str(s.batch_size),
            f"{s.fourier_cutoff}",
            f"{s.hermite_cutoff} ({s.hermite_nodes} nodes)",
        )
        for s in setups
    ]
    body = f"""
Claims of Camuto & Willetts (AISTATS 2022, abstract): the encoder variance controls the
frequency content of the functions the VAE's networks compute (more variance: fewer high
frequencies, a smaller decoder Lipschitz constant); Gaussian noise on the input does the same
for the encoder; up-weighting the KL term lowers the high-frequency content of both.

Models: Gaussian decoder sigma_X = {SIGMA_X:g}, Adam lr {LR:g}, {budget.reps} repetitions per
setting; one-at-a-time sweeps around beta = 1, learned posterior variance, no input noise:
beta in {BETAS}, fixed posterior time t in {TIMES} (heat-kernel convention dp/dt = Laplace p:
variance 2t on R^d, angle time t on the circle, 2t per factor on the Clifford torus), input
noise std in {INPUT_NOISES}. {len(members)} models trained as vectorised ensembles in
{seconds:.0f} s; {stopped} stopped early. Largest relative change of the training loss over
the last 20% of epochs, per benchmark: {drift_text} (nan: fewer than 10 epochs).

{
        markdown_table(
            [
                "benchmark",
                "training data",
                "latents",
                "networks",
                "epochs",
                "batch",
                "Fourier cut-off",
                "Hermite cut-off",
            ],
            setup_rows,
        )
    }

Quantities (docs/harmonic.md): the decoder's high-frequency content HFC_K, the share of the
variance of the decoder mean above frequency K (Fourier mode max|m_i| > K on the manifold over
its uniform measure, 64 or 32 x 32 grid; Hermite degree > K on R^d over the N(0, I) prior,
Gauss-Hermite quadrature); the decoder's Lipschitz estimate, the largest Jacobian spectral norm
along the manifold's tangent directions at the encoded noiseless grid; the encoder's HFC along
the true phase(s) of the noiseless grid (Fourier, the same K as the decoder's Fourier cut-off)
of the embedded posterior location; the encoder's Lipschitz estimate on that grid. The pixel
shift's true decoder already has energy above mode 1 (the photograph's row spectrum), hence
its cut-off 3. Power iteration to relative change {LIPSCHITZ_RTOL:g}
({unconverged} estimates reached the iteration cap).

HFC and Lipschitz values are comparable within a benchmark and latent kind, not across the
Fourier and Hermite bases.

## Verdicts

Per (benchmark, latent) pair, an exact one-sided Jonckheere-Terpstra test of a monotone trend
of the quantity against the knob over all {len(TIMES)} sweep levels and all repetitions: J counts
the pairs of repetitions at two levels that increase with the knob (of J_max = the number of
such pairs); its null distribution, every ordering of the pooled values over the levels equally
likely, is enumerated exactly. The effect is "lower" when P(J' <= J) <= {ALPHA:g}, "higher" when
P(J' >= J) <= {ALPHA:g}, else "no significant trend" (each direction at level {ALPHA:g}).
With {budget.reps} repetitions per level the smallest p-value is 1/{orderings}: {reachable}.
With no effect a pair reads "lower" (or "higher") at most {ALPHA:.0%} of the time.

A claim is **supported** when at least half of its {pairs} pairs ({_needed(pairs)}) show a
significant decrease and none a significant increase, **contradicted** in the mirror case,
else **not supported**. Pairs are independent models and data, so with no effect anywhere a
claim is called supported (or contradicted) with probability at most
P(Bin({pairs}, {ALPHA:g}) >= {_needed(pairs)}) = {bound:.2g}.

Collapse: a member is counted as (nearly) collapsed when its reconstruction explains less than
{COLLAPSE_SHARE:.0%} of the variance of its clean training data, R = 1 - E||x - f(z)||^2 /
E||x - mean x||^2 with z drawn from its posterior, {RECONSTRUCTION_SAMPLES} samples per point
(the latent carries little about the data: for a learned posterior variance this is the
KL ~ 0 collapse, for a large fixed time the posterior noise itself). {collapsed} of {
        len(members)
    } members are collapsed. A collapsed decoder is nearly
constant, which lowers its HFC and Lipschitz estimate for a reason other than the claimed one,
so the verdicts are given both on all members and with the collapsed members removed from the
tests (a level with all its members removed is dropped from the sweep).

{markdown_table(["claim", "all members", "without collapsed members"], summary_rows)}

{
        markdown_table(
            [
                "claim",
                "benchmark",
                "latent",
                "sweep",
                "mean ± std per level",
                "J / J_max",
                "p lower, p higher",
                "effect",
                "without collapsed: J / J_max",
                "p lower, p higher",
                "effect",
            ],
            claim_rows,
        )
    }

### Collapsed and poorly fitted members

Members that are collapsed, or whose reconstruction share R is more than {POOR_FIT:g} below
the median of their cell (a worse local optimum): their final training loss against the
cell's median. Only the collapsed ones are excluded above.

{
        markdown_table(
            [
                *CELL_COLUMNS,
                "rep",
                "R",
                "cell median R",
                "KL",
                "final loss",
                "cell median loss",
                "collapsed",
            ],
            poor_rows,
        )
        if poor_rows
        else "None."
    }

## All settings (mean ± std over repetitions)

The decoder's high-frequency content is a share of its variance; "decoder energy above K" is
that share times the variance (summed over the outputs; the uniform measure on the manifold,
N(0, I) on R^d): a collapsed decoder has a small variance and so little energy above K even
when its share is large. R and KL: the reconstruction share and the KL (nats) on the clean
training data; "collapsed": members of the cell with R < {COLLAPSE_SHARE:g}.

{
        markdown_table(
            [
                *CELL_COLUMNS,
                *QUANTITIES.values(),
                *HEALTH.values(),
                "collapsed",
            ],
            rows,
        )
    }

## Exact heat smoothing

For every fixed-time manifold model, the posterior-averaged decoder E_q[F(z)] computed exactly
in the Fourier domain (mode m damped by exp(-sum_i m_i^2 t / r_i^2): exp(-m^2 t)
on the circle, exp(-2 |m|^2 t) on the Clifford torus) against a 1000-sample Monte Carlo
average at 4 encoded points: largest |difference| / standard error over all outputs and
models: {max(smoothing) if smoothing else math.nan:.2f} ({len(smoothing)} models).
"""
    data = {
        "train_seconds": seconds,
        "settings": _settings(),
        "alpha": ALPHA,
        "collapse_share": COLLAPSE_SHARE,
        "false_positive_bound": bound,
        "claims": {
            kind: {
                text: {k: v for k, v in claim.items() if k != "rows"}
                for text, claim in by_claim.items()
            }
            for kind, by_claim in claims.items()
        },
        "members": member_records(members),
    }
    return Report(
        "harmonic", "Harmonic analysis of encoders and decoders", budget, body, data, figures
    )
