"""``manifold-vae train`` as a run: interrupt and resume, concurrent runs, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from manifold_vae import VAE
from manifold_vae.cli import DEFAULT_HIDDEN, main
from manifold_vae.manifolds import Circle, Euclidean

# A run of a few seconds: long enough to be interrupted after an epoch or two.
EPOCHS = 12
RUN = ["--n", "640", "--epochs", str(EPOCHS), "--hidden", "8", "--seed", "3", "--no-progress"]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "manifold_vae", "train", "--out", str(out), *RUN, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def _wait_for_epochs(out: Path, epochs: int, process: subprocess.Popen) -> None:
    log = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= epochs:
            return
        time.sleep(0.02)
    raise AssertionError(f"the run did not reach epoch {epochs}: {process.poll()}")


def _weights(path: Path) -> list[torch.Tensor]:
    return list(VAE.load(path).state_dict().values())


def _interrupt(out: Path, sig: signal.Signals) -> str:
    """Start a run in ``out``, send ``sig`` after its second epoch; its one-line message."""
    process = _start(out)
    _wait_for_epochs(out, 2, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + sig, stderr.decode()
    message = stderr.decode().strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "interrupted in epoch" in message and f"--resume {out}" in message
    metrics = json.loads((out / "metrics.json").read_text())
    assert 2 <= metrics["epochs"] < EPOCHS and metrics["stopped"].startswith("interrupted")
    assert sig.name in metrics["stopped"]
    assert not list(out.glob("*.tmp"))
    return message


def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "whole"), *RUN]) == 0
    out = tmp_path / "interrupted"
    _interrupt(out, signal.SIGINT)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    whole = _weights(tmp_path / "whole" / "model.pt")
    for a, b in zip(whole, _weights(out / "model.pt"), strict=True):
        assert torch.equal(a, b)
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in log] == list(range(1, EPOCHS + 1))
    expected = json.loads((tmp_path / "whole" / "metrics.json").read_text())["history"]["loss"]
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["history"]["loss"] == expected and resumed["stopped"] is None
    with pytest.raises(SystemExit):  # finished: nothing to resume
        main(["train", "--resume", str(out), "--no-progress"])
    assert f"the run has finished ({EPOCHS} of {EPOCHS} epochs)" in capsys.readouterr().err


def test_sigterm_stops_the_same_way(tmp_path):
    out = tmp_path / "run"
    _interrupt(out, signal.SIGTERM)
    assert VAE.load(out / "model.pt").latent == Circle()


def test_a_second_run_on_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    process = _start(out)
    try:
        _wait_for_epochs(out, 1, process)
        with pytest.raises(SystemExit) as error:
            main(["train", "--out", str(out), "--overwrite", *RUN])
        assert error.value.code == 2
        assert f"another run (process {process.pid}) is writing" in capsys.readouterr().err
    finally:
        process.kill()
        process.wait()


def test_reusing_a_folder_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    short = ["--n", "64", "--epochs", "1", "--hidden", "8", "--no-progress"]
    assert main(["train", "--out", str(out), *short]) == 0
    with pytest.raises(SystemExit):
        main(["train", "--out", str(out), *short])
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--overwrite", *short]) == 0


def test_a_diverging_run_says_so_and_keeps_its_own_model(tmp_path, capsys):
    """Defect 1 through the command line: exit status 1, never an earlier run's model."""
    out = tmp_path / "Z"
    assert main(["train", "--out", str(out), "--n", "64", "--epochs", "2", "--no-progress"]) == 0
    np.save(tmp_path / "X.npy", np.full((300, 25), 1e30, dtype=np.float32))
    huge = ["--latent", "euclidean:2", "--data", str(tmp_path / "X.npy"), "--no-progress"]
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--overwrite", *huge]) == 1
    assert "training stopped: non-finite loss" in capsys.readouterr().err
    assert VAE.load(out / "model.pt").latent == Euclidean(2)
    assert json.loads((out / "metrics.json").read_text())["latent"] == Euclidean(2).spec()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--out", "/proc/manifold-vae-x"], "cannot write there"),
        (["--out", "{tmp}/file.txt/sub"], "cannot write there"),
        (["--out", "{tmp}/run", "--device", "tpu"], "not a torch device"),
        (["--out", "{tmp}/run", "--device", "meta"], "cannot train a model"),
        (["--out", "{tmp}/run", "--latent", "fixed-time"], "cannot be built from a name"),
        (["--out", "{tmp}/run", "--seed", "100000000000000000000"], "seed must be an integer"),
        (["--out", "{tmp}/run", "--data", "{tmp}/x.npy"], "is a folder, not a .npy file"),
        (["--out", "{tmp}/run", "--patience", "3"], "needs a held-out split"),
        (["--resume", "{tmp}/nothing"], "no checkpoint (model.pt) to resume from"),
    ],
)
def test_bad_options_give_one_line_before_any_training(tmp_path, capsys, arguments, message):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "x.npy").mkdir()
    arguments = [a.format(tmp=tmp_path) for a in arguments]
    with pytest.raises(SystemExit) as error:
        main(["train", *arguments, "--epochs", "1", "--no-progress"])
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model.pt").exists()


def test_the_default_width_is_the_demos():
    from manifold_vae.jobs import DEMO_HIDDEN

    assert DEFAULT_HIDDEN == DEMO_HIDDEN


def test_loaded_models_are_in_eval_mode_and_the_circle_posterior_says_so(tmp_path):
    vae = VAE(Circle(), (5,), __import__("manifold_vae").likelihoods.Gaussian(0.5), seed=0)
    vae.save(tmp_path / "m.pt")
    assert VAE.load(tmp_path / "m.pt").training is False
    assert "the circle S^1" in repr(vae.encode(torch.zeros(2, 5)))


def test_the_posterior_family_is_chosen_with_an_at_sign(tmp_path):
    from manifold_vae.jobs import parse_latent
    from manifold_vae.manifolds import Hypersphere, Sphere

    assert parse_latent("hypersphere:9@vmf") == Hypersphere(9, family="vmf")
    assert parse_latent("sphere@power-spherical") == Sphere(family="power-spherical")
    assert parse_latent("circle@von-mises") == Circle(family="von-mises")
    with pytest.raises(ValueError, match="no choice of posterior family"):
        parse_latent("euclidean:2@vmf")
    with pytest.raises(ValueError, match="family"):
        parse_latent("circle@bogus")
    out = tmp_path / "run"
    short = ["--n", "64", "--epochs", "1", "--hidden", "8", "--no-progress"]
    assert main(["train", "--out", str(out), "--latent", "circle@von-mises", *short]) == 0
    assert VAE.load(out / "model.pt").latent == Circle(family="von-mises")
