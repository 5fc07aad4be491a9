"""The VAE benchmarks (training step, ensemble speedup) run with tiny budgets and write records."""

from __future__ import annotations

import json

from manifold_vae.bench.vae_step import main


def test_vae_step_benchmark_writes_ratios(tmp_path, capsys):
    out = tmp_path / "vae.json"
    argv = ["--batch-size", "8", "--steps", "2", "--repeats", "1", "--ensemble-epochs", "0"]
    assert main([*argv, "--out", str(out)]) == 0
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


def test_quick_benchmark_includes_the_ensemble_speedup(tmp_path, capsys):
    out = tmp_path / "vae.json"
    assert main(["--quick", "--threads", "1", "--out", str(out)]) == 0
    ensemble = json.loads(out.read_text())["ensemble"]
    assert ensemble["members"] == 9 and ensemble["threads"] == 1
    assert ensemble["speedup"] == ensemble["sequential_seconds"] / ensemble["ensemble_seconds"]
    assert 0 <= ensemble["max_parameter_difference"] < 1e-3
    assert "one after another (fit)" in capsys.readouterr().out


def test_ensemble_benchmark_can_be_skipped(tmp_path):
    out = tmp_path / "vae.json"
    argv = ["--batch-size", "8", "--steps", "1", "--repeats", "1", "--ensemble-epochs", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "ensemble" not in json.loads(out.read_text())
