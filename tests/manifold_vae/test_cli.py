"""The ``manifold-vae`` command line: demo, train and bench, and clear argument errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from manifold_vae import __version__
from manifold_vae.cli import main


def test_demo_writes_the_tour_and_two_trained_models(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--n", "64"]) == 0
    printed = capsys.readouterr().out
    for name in ("density_table.md", "heat_kernel.png", "tour.json"):
        assert (out / "distributions" / name).is_file()
    for model in ("circle", "euclidean-2"):
        for name in ("model.pt", "metrics.json", "latent.png"):
            assert (out / model / name).is_file()
        metrics = json.loads((out / model / "metrics.json").read_text())
        assert metrics["epochs"] == 1 and len(metrics["phase_correlation"]) == 1
    assert "| t |" in printed and "| circle |" in printed and "| euclidean-2 |" in printed
    assert (out / "summary.md").read_text().count("|") > 10


@pytest.mark.parametrize("latent", ["euclidean:3", "circle", "flat-torus:2", "clifford-torus"])
def test_train_end_to_end(tmp_path, capsys, latent):
    out = tmp_path / "run"
    argv = ["train", "--latent", latent, "--epochs", "2", "--n", "64", "--out", str(out)]
    assert main([*argv, "--no-progress", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "ELBO per datapoint" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["seed"] == 3
    assert metrics["latent"]["name"] == latent.partition(":")[0]
    from manifold_vae.vae import VAE

    vae = VAE.load(out / "model.pt")
    assert repr(vae.latent).startswith(
        {
            "euclidean": "Euclidean",
            "circle": "Circle",
            "flat-torus": "FlatTorus",
            "clifford-torus": "CliffordTorus",
        }[latent.partition(":")[0]]
    )
    assert (out / "latent.png").stat().st_size > 5000


def test_train_on_a_npy_file_with_a_bernoulli_likelihood(tmp_path, capsys):
    import numpy as np

    path = tmp_path / "images.npy"
    rng = np.random.default_rng(0)
    np.save(path, rng.uniform(size=(50, 1, 4, 4)).astype(np.float32))
    out = tmp_path / "run"
    argv = ["train", "--data", str(path), "--likelihood", "bernoulli", "--epochs", "1"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "phase_correlation" not in metrics  # no true latent for a user's file
    assert metrics["likelihood"]["name"] == "bernoulli"


def test_train_on_the_sphere_writes_no_phase_correlation(tmp_path, capsys):
    """The sphere declares no angle coordinates and is not a vector space."""
    out = tmp_path / "run"
    argv = ["train", "--latent", "sphere", "--epochs", "1", "--n", "64", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["latent"]["name"] == "sphere" and "phase_correlation" not in metrics
    assert "circular correlation" not in capsys.readouterr().out


@pytest.mark.parametrize(("latent", "count"), [("euclidean:2", 1), ("circle*euclidean:1", 1)])
def test_train_writes_the_phase_correlation_where_angles_are_declared(tmp_path, latent, count):
    out = tmp_path / "run"
    argv = ["train", "--latent", latent, "--epochs", "1", "--n", "64", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["phase_correlation"]) == count


def test_likelihoods_are_made_from_the_registry():
    from manifold_vae.jobs import make_likelihood
    from manifold_vae.likelihoods import LIKELIHOODS

    for name in LIKELIHOODS.names():
        assert type(make_likelihood(name, 0.2)) is LIKELIHOODS[name]
    assert make_likelihood("gaussian", 0.2).sigma == 0.2
    assert make_likelihood("gaussian-learned", 0.3).init_sigma == 0.3
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'; registered: bernoulli"):
        make_likelihood("poisson")


def test_train_help_lists_the_registries(capsys):
    from manifold_vae.likelihoods import LIKELIHOODS
    from manifold_vae.manifolds.base import MANIFOLDS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    printed = " ".join(capsys.readouterr().out.split())
    assert f"one of {', '.join(LIKELIHOODS.names())} (default gaussian)" in printed
    buildable = [name for name in MANIFOLDS.names() if name not in ("fixed-time", "product")]
    assert f"with NAME one of {', '.join(buildable)}," in printed


def test_building_the_parser_imports_no_registry():
    """Choices are read when needed: ``--version`` and argument errors stay fast."""
    code = (
        "import sys; from manifold_vae.cli import build_parser; build_parser(); "
        "print(' '.join(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = result.stdout.split()
    assert "manifold_vae.cli" in loaded
    for module in ("torch", "manifold_vae.likelihoods", "manifold_vae.manifolds"):
        assert module not in loaded
    assert not any(m.startswith("manifold_vae.reproduce") for m in loaded)


def test_bench_delegates_to_the_benchmark(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--n", "200", "--repeats", "1", "--dtype", "float64", "--device", "cpu"]
    assert main([*argv, "--no-accuracy", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["n"] == 200 and record["dtypes"] == ["float64"]
    assert "VonMises.log_prob" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: COMMAND"),
        (["train-everything"], "invalid choice: 'train-everything'"),
        (["demo"], "required: --out"),
        (["demo", "--out", "x", "--bogus"], "unrecognized arguments for 'demo': --bogus"),
        (["demo", "--out", "x", "--epochs", "one"], "invalid int value: 'one'"),
        (["train", "--out", "x", "--latent", "hyperbolic"], "unknown latent 'hyperbolic'"),
        (["train", "--out", "x", "--latent", "circle:3"], "takes no argument"),
        (["train", "--out", "x", "--data", "missing.npy"], "does not exist"),
        (["train", "--out", "x", "--data", "table.csv"], "must be 'sinusoids' or a .npy"),
        (["train", "--out", "x", "--sigma-x", "-1"], "sigma must be a positive"),
        (["train", "--out", "x", "--likelihood", "student-t"], "invalid choice: 'student-t'"),
        (["bench", "--dtype", "float16"], "manifold-vae bench: error: argument --dtype"),
        (["bench", "--n", "0"], "--n and --repeats must be positive"),
    ],
)
def test_bad_arguments_exit_with_a_clear_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a command that wrongly succeeded would write here only
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_demo_out_must_be_a_folder(tmp_path, capsys):
    path = tmp_path / "a_file"
    path.write_text("")
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(path)])
    assert "is not a folder" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "manifold_vae", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == f"manifold-vae {__version__}"
