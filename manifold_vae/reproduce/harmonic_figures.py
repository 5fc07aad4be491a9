"""The figures of the harmonic experiment (:mod:`.harmonic`): quantities per knob, spectra."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ..harmonic import decoder_spectrum
from ..stats import mean_std
from .common import Member
from .harmonic_report import Record, by_cell, values
from .harmonic_setup import KNOBS, QUANTITIES, Setup, knob_cells

__all__ = ["plot_quantities", "plot_spectra"]


def plot_quantities(members: Sequence[Record], setups: Sequence[Setup], path: Path) -> Path:
    """Each harmonic quantity against each knob, mean ± std over repetitions, one line per
    (benchmark, latent) pair; ``members`` are member records (``cell``, ``metrics``)."""
    from ..plots import new_figure, save_figure

    cells = by_cell(members)
    figure = new_figure(13.0, 11.0)
    axes = figure.subplots(len(QUANTITIES), len(KNOBS), squeeze=False)
    for col, (knob, knob_label) in enumerate(KNOBS.items()):
        sweep = knob_cells(knob)
        for row, (key, label) in enumerate(QUANTITIES.items()):
            ax = axes[row][col]
            for i, setup in enumerate(setups):
                for j, latent in enumerate(setup.latents):
                    summaries = [
                        mean_std(vals)
                        if (
                            vals := values(
                                cells, {"dataset": setup.name, "latent": repr(latent), **c}, key
                            )
                        )
                        else (math.nan, 0.0)
                        for _, c in sweep
                    ]
                    x = [k + 0.06 * (2 * i + j - 2.5) for k in range(len(sweep))]
                    ax.errorbar(
                        x,
                        [s[0] for s in summaries],
                        yerr=[s[1] for s in summaries],
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
    return save_figure(figure, path)


def plot_spectra(members: Sequence[Member], setups: Sequence[Setup], path: Path) -> Path:
    """Decoder energy per frequency of the fixed-time manifold models (repetition 0), beside
    the true process's where the benchmark has one."""
    from ..plots import new_figure, save_figure

    figure = new_figure(4.2 * len(setups), 3.6)
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
    return save_figure(figure, path)
