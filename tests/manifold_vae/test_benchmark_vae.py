"""The VAE training-step benchmark runs with a tiny budget and writes its record."""

from __future__ import annotations

import json

from manifold_vae.benchmark import main


def test_vae_step_benchmark_writes_ratios(tmp_path, capsys):
    out = tmp_path / "vae.json"
    assert main(["--batch-size", "8", "--steps", "2", "--repeats", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record["median_ms_per_step"]) == {
        "euclidean-2 (plain)",
        "circle (plain)",
        "clifford-torus (plain)",
        "circle (pyro SVI)",
    }
    assert record["ratio_to_euclidean"]["euclidean-2 (plain)"] == 1.0
    assert record["pyro_over_plain_circle"] > 0
    assert "Pyro SVI / plain" in capsys.readouterr().out
