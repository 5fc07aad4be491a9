"""The harmonic experiment's sweeps and its verdict rule (the run itself: test_reproduce.py)."""

from __future__ import annotations

from manifold_vae.reproduce.harmonic import (
    BETAS,
    INPUT_NOISES,
    TIMES,
    _knob_cells,
    _overall,
    _settings,
    _verdict,
)


def test_sweeps_share_the_base_setting_and_cover_every_knob_value():
    settings = _settings()
    assert len(settings) == len({tuple(sorted(s.items(), key=str)) for s in settings})
    for knob, values in (("beta", BETAS), ("time", TIMES), ("input_noise", INPUT_NOISES)):
        cells = _knob_cells(knob)
        assert [v for v, _ in cells] == list(values)
        assert all(cell in settings for _, cell in cells)


def test_verdict_needs_two_standard_errors():
    assert _verdict([1.0, 1.1, 0.9], [0.5, 0.6, 0.4]) == "lower"
    assert _verdict([0.5, 0.6, 0.4], [1.0, 1.1, 0.9]) == "higher"
    assert _verdict([1.0, 2.0, 0.0], [0.9, 1.9, -0.1]) == "no clear change"
    assert _verdict([1.0], [1.0]) == "no clear change"


def test_overall_verdict():
    assert _overall(6, 0, 6) == "supported"
    assert _overall(4, 0, 6) == "supported"
    assert _overall(3, 1, 6) == "partly supported"
    assert _overall(0, 4, 6) == "contradicted"
    assert _overall(1, 2, 6) == "partly contradicted"
    assert _overall(0, 0, 6) == "not supported"
    assert _overall(2, 2, 6) == "not supported"
