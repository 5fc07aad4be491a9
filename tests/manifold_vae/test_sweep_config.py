"""``manifold-vae sweep`` configs: the trials they define, and errors before anything runs.

No Ray needed: a config is read and checked before Ray is started.
"""

from __future__ import annotations

import math

import pytest

from manifold_vae.cli import main
from manifold_vae.distributed import sweep as sweep_module
from manifold_vae.distributed.sweep_config import OPTIONS, load_sweep

GRID = """
[sweep]
search = "grid"

[train]
epochs = 3
n = 100

[search]
latent = ["circle", "euclidean:2", "circle*euclidean:1"]
sigma_x = [0.1, 1.0]
"""

RANDOM = """
[sweep]
search = "random"
num_samples = 5
seed = 7

[search]
sigma_x = { loguniform = [0.01, 1.0] }
lr = { uniform = [0.001, 0.01] }
hidden = { randint = [4, 8] }
likelihood = ["gaussian", "gaussian-learned"]
"""


def _write(tmp_path, text: str):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_a_grid_has_every_combination_in_order(tmp_path):
    config = load_sweep(_write(tmp_path, GRID))
    combos = [(t["options"]["latent"], t["options"]["sigma_x"]) for t in config.trials]
    assert combos == [
        (latent, s) for latent in ("circle", "euclidean:2", "circle*euclidean:1") for s in (0.1, 1)
    ]
    assert config.searched == ["latent", "sigma_x"]
    for trial in config.trials:  # fixed options and the defaults of `train` fill the rest
        assert trial["options"]["epochs"] == 3 and trial["options"]["n"] == 100
        assert trial["options"].keys() == OPTIONS.keys()
    keys = [t["key"] for t in config.trials]
    assert len(set(keys)) == len(keys) and keys[0].startswith("000-")


def test_a_random_search_draws_the_same_trials_every_time_within_bounds(tmp_path):
    first = load_sweep(_write(tmp_path, RANDOM))
    again = load_sweep(_write(tmp_path, RANDOM))
    assert first.trials == again.trials and len(first.trials) == 5
    for trial in first.trials:
        o = trial["options"]
        assert 0.01 <= o["sigma_x"] <= 1.0 and 0.001 <= o["lr"] <= 0.01
        assert o["hidden"] in range(4, 9) and isinstance(o["hidden"], int)
        assert o["likelihood"] in ("gaussian", "gaussian-learned")
    logs = [math.log10(t["options"]["sigma_x"]) for t in first.trials]
    assert max(logs) - min(logs) > 0.3  # spread over the decades, not one value
    other = load_sweep(_write(tmp_path, RANDOM.replace("seed = 7", "seed = 8")))
    assert other.trials != first.trials


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\nepochs = 0\n", "train.epochs: must be an integer >= 1"),
        ("[train]\nlr = -1.0\n", "train.lr: must be > 0"),
        ("[train]\nlatent = 'moebius'\n", "train.latent: unknown latent 'moebius'"),
        ("[train]\nlikelihood = 'cauchy'\n", "train.likelihood: unknown likelihood 'cauchy'"),
        ("[train]\nwidth = 3\n", "train.width: unknown option"),
        ("[search]\nsigma_x = [0.1, -1.0]\n", r"search.sigma_x\[1\]: must be > 0"),
        ("[search]\nhidden = []\n", "search.hidden: the list of values is empty"),
        ("[search]\nlr = { uniform = [0.01, 0.001] }\n", "search.lr: a distribution needs"),
        (
            "[sweep]\nsearch = 'random'\n[search]\nlr = { normal = [0, 1] }\n",
            "search.lr: a distribution is one of",
        ),
        (
            "[sweep]\nsearch = 'random'\n[search]\nlr = { uniform = [0.01, 0.001] }\n",
            "search.lr.uniform: need low < high",
        ),
        (
            "[sweep]\nsearch = 'random'\n[search]\nsigma_x = { loguniform = [0.0, 1.0] }\n",
            "search.sigma_x.loguniform: must be > 0",
        ),
        ("[sweep]\nsearch = 'bayes'\n", "sweep.search: must be one of 'grid', 'random'"),
        ("[sweep]\nvalidation = 1.5\n", "sweep.validation: must be a fraction"),
        ("[sweep]\nnum_samples = 3\n", "sweep.num_samples: a grid runs each combination once"),
        ("[train]\nepochs = 2\n[search]\nepochs = [1, 2]\n", "search.epochs: also fixed"),
        ("[model]\nx = 1\n", r"\[model\]: unknown table"),
        ("[train]\ndata = 'missing.npy'\n", "train.data: data file missing.npy does not exist"),
    ],
)
def test_bad_configs_name_the_key(text, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        load_sweep(_write(tmp_path, text))


def test_a_bad_config_fails_on_the_command_line_before_anything_is_scheduled(
    tmp_path, monkeypatch, capsys
):
    def scheduled(*args, **kwargs):
        raise AssertionError("the sweep was scheduled")

    monkeypatch.setattr(sweep_module, "run_sweep", scheduled)
    monkeypatch.setattr(sweep_module, "ray_session", scheduled)
    path = _write(tmp_path, "[search]\nbeta = [1.0, -0.5]\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(path), "--out", str(out)])
    assert exit_info.value.code == 2
    assert "search.beta[1]: must be >= 0" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):
        main(["sweep", str(tmp_path / "none.toml"), "--out", str(out)])
    assert "does not exist" in capsys.readouterr().err
    path.write_text("[sweep\n")
    with pytest.raises(SystemExit):
        main(["sweep", str(path), "--out", str(out)])
    assert "is not valid TOML" in capsys.readouterr().err
