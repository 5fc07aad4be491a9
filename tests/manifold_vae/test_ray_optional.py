"""Ray is optional: without it, ``--ray`` and ``sweep`` say in one line how to install it."""

from __future__ import annotations

import sys

import pytest

from manifold_vae.cli import main
from manifold_vae.distributed import RayGroupTrainer, require_ray


@pytest.fixture
def without_ray(monkeypatch):
    """``import ray`` fails, as on a machine without the extra."""
    monkeypatch.setitem(sys.modules, "ray", None)


@pytest.mark.parametrize(
    "argv",
    [
        ["reproduce", "table-5.1", "--budget", "tiny", "--ray"],
        ["reproduce", "table-5.1", "--budget", "tiny", "--ray", "10.0.0.1:6379"],
        ["sweep", "CONFIG", "--ray", "10.0.0.1:6379"],
    ],
)
def test_ray_options_without_ray_say_how_to_install_it(argv, without_ray, tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text("[train]\nepochs = 1\n")
    argv = [str(config) if a == "CONFIG" else a for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "pip install -e .[ray]" in err[-1]
    assert not (tmp_path / "out" / "results.json").exists()


def test_require_ray_and_bad_trainer_options(without_ray):
    with pytest.raises(ValueError, match=r"pip install -e \.\[ray\]"):
        require_ray()
    with pytest.raises(ValueError, match="num_cpus must be >= 1"):
        RayGroupTrainer(num_cpus=0)
    with pytest.raises(ValueError, match="max_retries must be an integer >= 0"):
        RayGroupTrainer(max_retries=-1)
    with pytest.raises(ValueError, match="num_gpus"):
        RayGroupTrainer(num_gpus=-1)
