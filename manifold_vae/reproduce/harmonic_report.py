r"""The report of the harmonic experiment (:mod:`.harmonic`): verdicts and tables.

The report is a function of the member records alone (each member's ``cell``, ``rep`` and
``metrics``, as written to ``results.json`` by :func:`~.common.member_records`), the benchmarks
(:func:`~.harmonic_setup.setups`), the budget and the training time, so a committed
``results.json`` renders its ``report.md`` again (:func:`report_body`).

Each claim "the knob lowers the quantity" is judged per (benchmark, latent) pair by the exact
Jonckheere-Terpstra trend test and across pairs by the majority rule (:mod:`manifold_vae.stats`),
on all members and again without the collapsed ones (:func:`judge`). The text is a set of
:class:`string.Template` sections, one per heading, filled by :func:`report_body`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from string import Template
from typing import Any

from ..manifolds import LatentManifold
from ..stats import (
    false_positive_bound,
    jonckheere_null,
    jonckheere_test,
    mean_std,
    trend,
    votes_needed,
)
from ..stats import verdict as claim_verdict
from .budget import Budget
from .common import cell_key, markdown_table
from .harmonic_setup import (
    ALPHA,
    BETAS,
    CELL_COLUMNS,
    CLAIMS,
    COLLAPSE_SHARE,
    HEALTH,
    INPUT_NOISES,
    LIPSCHITZ_RTOL,
    LR,
    POOR_FIT,
    QUANTITIES,
    RECONSTRUCTION_SAMPLES,
    SIGMA_X,
    TIMES,
    Setup,
    knob_cells,
    settings,
)

__all__ = ["by_cell", "cell_columns", "judge", "judge_all", "poor_fits", "report_body", "values"]

#: A member record: ``{"cell": ..., "rep": ..., "metrics": ...}`` (:func:`~.common.member_records`).
Record = Mapping[str, Any]
#: Member records by :func:`~.common.cell_key` of their cell.
Cells = Mapping[tuple, Sequence[Record]]

INTRO = Template("""
Claims of Camuto & Willetts (AISTATS 2022, abstract): the encoder variance controls the
frequency content of the functions the VAE's networks compute (more variance: fewer high
frequencies, a smaller decoder Lipschitz constant); Gaussian noise on the input does the same
for the encoder; up-weighting the KL term lowers the high-frequency content of both.

Models: Gaussian decoder sigma_X = $sigma_x, Adam lr $lr, $reps repetitions per
setting; one-at-a-time sweeps around beta = 1, learned posterior variance, no input noise:
beta in $betas, fixed posterior time t in $times (heat-kernel convention dp/dt = Laplace p:
variance 2t on R^d, angle time t on the circle, 2t per factor on the Clifford torus), input
noise std in $input_noises. $models models trained as vectorised ensembles in
$seconds s; $stopped stopped early. Largest relative change of the training loss over
the last 20% of epochs, per benchmark: $drift (nan: fewer than 10 epochs).

$setup_table

Quantities (docs/harmonic.md): the decoder's high-frequency content HFC_K, the share of the
variance of the decoder mean above frequency K (Fourier mode max|m_i| > K on the manifold over
its uniform measure, 64 or 32 x 32 grid; Hermite degree > K on R^d over the N(0, I) prior,
Gauss-Hermite quadrature); the decoder's Lipschitz estimate, the largest Jacobian spectral norm
along the manifold's tangent directions at the encoded noiseless grid; the encoder's HFC along
the true phase(s) of the noiseless grid (Fourier, the same K as the decoder's Fourier cut-off)
of the embedded posterior location; the encoder's Lipschitz estimate on that grid. The pixel
shift's true decoder already has energy above mode 1 (the photograph's row spectrum), hence
its cut-off 3. Power iteration to relative change $rtol
($unconverged estimates reached the iteration cap).

HFC and Lipschitz values are comparable within a benchmark and latent kind, not across the
Fourier and Hermite bases.
""")

VERDICTS = Template("""
## Verdicts

Per (benchmark, latent) pair, an exact one-sided Jonckheere-Terpstra test of a monotone trend
of the quantity against the knob over all $levels sweep levels and all repetitions: J counts
the pairs of repetitions at two levels that increase with the knob (of J_max = the number of
such pairs); its null distribution, every ordering of the pooled values over the levels equally
likely, is enumerated exactly. The effect is "lower" when P(J' <= J) <= $alpha, "higher" when
P(J' >= J) <= $alpha, else "no significant trend" (each direction at level $alpha).
With $reps repetitions per level the smallest p-value is 1/$orderings: $reachable.
With no effect a pair reads "lower" (or "higher") at most $alpha_percent of the time.

A claim is **supported** when at least half of its $pairs pairs ($needed) show a
significant decrease and none a significant increase, **contradicted** in the mirror case,
else **not supported**. Pairs are independent models and data, so with no effect anywhere a
claim is called supported (or contradicted) with probability at most
P(Bin($pairs, $alpha) >= $needed) = $bound.

Collapse: a member is counted as (nearly) collapsed when its reconstruction explains less than
$collapse_percent of the variance of its clean training data, R = 1 - E||x - f(z)||^2 /
E||x - mean x||^2 with z drawn from its posterior, $samples samples per point
(the latent carries little about the data: for a learned posterior variance this is the
KL ~ 0 collapse, for a large fixed time the posterior noise itself). $collapsed of $models \
members are collapsed. A collapsed decoder is nearly
constant, which lowers its HFC and Lipschitz estimate for a reason other than the claimed one,
so the verdicts are given both on all members and with the collapsed members removed from the
tests (a level with all its members removed is dropped from the sweep).

$summary_table

$claim_table
""")

POOR_FITS = Template("""
### Collapsed and poorly fitted members

Members that are collapsed, or whose reconstruction share R is more than $poor_fit below
the median of their cell (a worse local optimum): their final training loss against the
cell's median. Only the collapsed ones are excluded above.

$poor_table
""")

ALL_SETTINGS = Template("""
## All settings (mean ± std over repetitions)

The decoder's high-frequency content is a share of its variance; "decoder energy above K" is
that share times the variance (summed over the outputs; the uniform measure on the manifold,
N(0, I) on R^d): a collapsed decoder has a small variance and so little energy above K even
when its share is large. R and KL: the reconstruction share and the KL (nats) on the clean
training data; "collapsed": members of the cell with R < $collapse_share.

$settings_table
""")

SMOOTHING = Template("""
## Exact heat smoothing

For every fixed-time manifold model, the posterior-averaged decoder E_q[F(z)] computed exactly
in the Fourier domain (mode m damped by exp(-sum_i m_i^2 t / r_i^2): exp(-m^2 t)
on the circle, exp(-2 |m|^2 t) on the Clifford torus) against a 1000-sample Monte Carlo
average at 4 encoded points: largest |difference| / standard error over all outputs and
models: $max_z ($count models).
""")

SETUP_HEADER = (
    "benchmark",
    "training data",
    "latents",
    "networks",
    "epochs",
    "batch",
    "Fourier cut-off",
    "Hermite cut-off",
)
CLAIM_HEADER = (
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
)
POOR_HEADER = (
    *CELL_COLUMNS,
    "rep",
    "R",
    "cell median R",
    "KL",
    "final loss",
    "cell median loss",
    "collapsed",
)
#: The two member selections the claims are judged on.
SELECTIONS: dict[str, Callable[[Record], bool]] = {
    "all": lambda m: True,
    "without collapsed": lambda m: not m["metrics"]["collapsed"],
}


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3g} ± {std:.2g}"


def by_cell(members: Sequence[Record]) -> dict[tuple, list[Record]]:
    """The member records of each grid cell, keyed by :func:`~.common.cell_key`, in order."""
    cells: dict[tuple, list[Record]] = {}
    for m in members:
        cells.setdefault(cell_key(m["cell"]), []).append(m)
    return cells


def values(cells: Cells, cell: Mapping[str, Any], key: str) -> list[float]:
    """The metric ``key`` of every repetition of ``cell`` (none if the cell has no members)."""
    return [float(m["metrics"][key]) for m in cells.get(cell_key(cell), [])]


def cell_columns(cell: Mapping[str, Any]) -> tuple[str, ...]:
    """A grid cell as report cells, in the order of :data:`~.harmonic_setup.CELL_COLUMNS`."""
    time = "learned" if cell["time"] is None else f"{cell['time']:g}"
    return (
        cell["dataset"],
        cell["latent"],
        f"{cell['beta']:g}",
        time,
        f"{cell['input_noise']:g}",
    )


def _pair_test(
    groups: list[list[float]],
    setup: Setup,
    latent: LatentManifold,
    sweep: Sequence[tuple[float, Mapping[str, Any]]],
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The trend test of one (benchmark, latent) pair: its JSON record and its report row."""
    j, p_lower, p_higher = jonckheere_test(groups)
    effect = trend(groups, ALPHA)
    sizes = [len(g) for g in groups]
    j_max = sum(a * b for i, a in enumerate(sizes) for b in sizes[i + 1 :])
    means = " -> ".join(_fmt(*mean_std(g)) if g else "-" for g in groups)
    test = {
        "benchmark": setup.name,
        "latent": repr(latent),
        "sizes": sizes,
        "J": j,
        "p_lower": p_lower,
        "p_higher": p_higher,
        "effect": effect,
    }
    row = (
        setup.name,
        repr(latent),
        f"{sweep[0][0]:g} -> {sweep[-1][0]:g}",
        means,
        f"{j:g} / {j_max}" if math.isfinite(j) else "-",
        f"{p_lower:.2g}, {p_higher:.2g}",
        effect,
    )
    return test, row


def judge(
    cells: Cells, setups: Sequence[Setup], keep: Callable[[Record], bool]
) -> dict[str, dict[str, Any]]:
    """Per claim: the trend test of every (benchmark, latent) pair on the kept members.

    Returns, per claim text, the counts ``lower``/``higher``/``pairs``, the ``verdict``
    (:func:`manifold_vae.stats.verdict`), the per-pair ``tests`` (for the JSON) and the report
    ``rows`` ``(benchmark, latent, sweep, means, J / J_max, p-values, effect)``.
    """
    out = {}
    for knob, key, text in CLAIMS:
        sweep = knob_cells(knob)
        tests, rows = [], []
        for setup in setups:
            for latent in setup.latents:
                groups = [
                    [
                        float(m["metrics"][key])
                        for m in cells.get(
                            cell_key({"dataset": setup.name, "latent": repr(latent), **c}), []
                        )
                        if keep(m) and math.isfinite(float(m["metrics"][key]))
                    ]
                    for _, c in sweep
                ]
                test, row = _pair_test(groups, setup, latent, sweep)
                tests.append(test)
                rows.append(row)
        lower = sum(t["effect"] == "lower" for t in tests)
        higher = sum(t["effect"] == "higher" for t in tests)
        out[text] = {
            "lower": lower,
            "higher": higher,
            "pairs": len(tests),
            "verdict": claim_verdict(lower, higher, len(tests)),
            "tests": tests,
            "rows": rows,
        }
    return out


def judge_all(cells: Cells, setups: Sequence[Setup]) -> dict[str, dict[str, dict[str, Any]]]:
    """:func:`judge` on every selection of :data:`SELECTIONS` (all members, without collapsed)."""
    return {kind: judge(cells, setups, keep) for kind, keep in SELECTIONS.items()}


def poor_fits(cells: Cells) -> list[tuple[str, ...]]:
    """Report rows of the collapsed members and of those far below their cell's median R."""
    rows = []
    for group in cells.values():
        shares = [m["metrics"]["reconstruction_share"] for m in group]
        losses = [m["metrics"]["final_loss"] for m in group]
        median_share, median_loss = statistics.median(shares), statistics.median(losses)
        for m in group:
            metrics = m["metrics"]
            share = metrics["reconstruction_share"]
            if metrics["collapsed"] or share < median_share - POOR_FIT:
                rows.append(
                    (
                        *cell_columns(m["cell"]),
                        str(m["rep"]),
                        f"{share:.3f}",
                        f"{median_share:.3f}",
                        f"{metrics['kl']:.3g}",
                        f"{metrics['final_loss']:.4g}",
                        f"{median_loss:.4g}",
                        "yes" if metrics["collapsed"] else "no",
                    )
                )
    return rows


def _setup_rows(setups: Sequence[Setup]) -> list[tuple[str, ...]]:
    return [
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


def _settings_rows(cells: Cells, setups: Sequence[Setup]) -> list[tuple[str, ...]]:
    """Per cell: its columns, ``mean ± std`` of each quantity and health value, collapsed."""
    rows = []
    for setup in setups:
        for latent in setup.latents:
            for s in settings():
                cell = {"dataset": setup.name, "latent": repr(latent), **s}
                vals = [values(cells, cell, k) for k in (*QUANTITIES, *HEALTH)]
                collapsed = sum(m["metrics"]["collapsed"] for m in cells[cell_key(cell)])
                rows.append(
                    (*cell_columns(cell), *(_fmt(*mean_std(v)) for v in vals), str(collapsed))
                )
    return rows


def _intro(
    budget: Budget, setups: Sequence[Setup], members: Sequence[Record], seconds: float
) -> str:
    drift = {
        s.name: max(
            (m["metrics"]["convergence"] for m in members if m["cell"]["dataset"] == s.name),
            default=math.nan,
        )
        for s in setups
    }
    return INTRO.substitute(
        sigma_x=f"{SIGMA_X:g}",
        lr=f"{LR:g}",
        reps=budget.reps,
        betas=BETAS,
        times=TIMES,
        input_noises=INPUT_NOISES,
        models=len(members),
        seconds=f"{seconds:.0f}",
        stopped=sum(m["metrics"]["stopped"] is not None for m in members),
        drift=", ".join(f"{name} {value:.1e}" for name, value in drift.items()),
        setup_table=markdown_table(SETUP_HEADER, _setup_rows(setups)),
        rtol=f"{LIPSCHITZ_RTOL:g}",
        unconverged=sum(m["metrics"]["power_iteration_unconverged"] for m in members),
    )


def _verdicts(
    budget: Budget, claims: Mapping[str, Mapping[str, Any]], models: int, collapsed: int
) -> str:
    everyone, kept = claims["all"], claims["without collapsed"]
    claim_rows = [
        (text, *pair_all[:4], *pair_all[4:], *pair_kept[4:])
        for text in everyone
        for pair_all, pair_kept in zip(everyone[text]["rows"], kept[text]["rows"], strict=True)
    ]
    summary_rows = [
        (
            text,
            *(
                f"{v['lower']}/{v['pairs']} lower, {v['higher']}/{v['pairs']} higher: "
                f"**{v['verdict']}**"
                for v in (everyone[text], kept[text])
            ),
        )
        for text in everyone
    ]
    pairs = len(next(iter(everyone.values()))["rows"])
    orderings = sum(jonckheere_null((budget.reps,) * len(TIMES)))
    reachable = (
        "one pair can reach significance"
        if 1.0 / orderings <= ALPHA
        else "no pair can reach significance at this budget"
    )
    return VERDICTS.substitute(
        levels=len(TIMES),
        alpha=f"{ALPHA:g}",
        reps=budget.reps,
        orderings=orderings,
        reachable=reachable,
        alpha_percent=f"{ALPHA:.0%}",
        pairs=pairs,
        needed=votes_needed(pairs),
        bound=f"{false_positive_bound(pairs, ALPHA):.2g}",
        collapse_percent=f"{COLLAPSE_SHARE:.0%}",
        samples=RECONSTRUCTION_SAMPLES,
        collapsed=collapsed,
        models=models,
        summary_table=markdown_table(
            ["claim", "all members", "without collapsed members"], summary_rows
        ),
        claim_table=markdown_table(CLAIM_HEADER, claim_rows),
    )


def report_body(
    budget: Budget, setups: Sequence[Setup], members: Sequence[Record], seconds: float
) -> str:
    """The markdown body of the harmonic report.

    Parameters
    ----------
    budget : Budget
        The run's budget.
    setups : sequence of Setup
        The benchmarks (:func:`~.harmonic_setup.setups` of ``budget``).
    members : sequence of mappings
        Every member's record (``cell``, ``rep``, ``metrics``), as in ``results.json``.
    seconds : float
        The training wall time.
    """
    cells = by_cell(members)
    claims = judge_all(cells, setups)
    smoothing = [
        m["metrics"]["smoothing_max_z"] for m in members if "smoothing_max_z" in m["metrics"]
    ]
    poor_rows = poor_fits(cells)
    collapsed = sum(m["metrics"]["collapsed"] for m in members)
    sections = (
        _intro(budget, setups, members, seconds),
        _verdicts(budget, claims, len(members), collapsed),
        POOR_FITS.substitute(
            poor_fit=f"{POOR_FIT:g}",
            poor_table=markdown_table(POOR_HEADER, poor_rows) if poor_rows else "None.",
        ),
        ALL_SETTINGS.substitute(
            collapse_share=f"{COLLAPSE_SHARE:g}",
            settings_table=markdown_table(
                [*CELL_COLUMNS, *QUANTITIES.values(), *HEALTH.values(), "collapsed"],
                _settings_rows(cells, setups),
            ),
        ),
        SMOOTHING.substitute(
            max_z=f"{max(smoothing) if smoothing else math.nan:.2f}", count=len(smoothing)
        ),
    )
    return "".join(sections)
