"""``manifold-vae reproduce NAME``: every experiment runs end to end with a tiny budget."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from manifold_vae.cli import build_parser, main
from manifold_vae.reproduce import EXPERIMENTS, Budget, Experiment, parse_budget, reproduce
from manifold_vae.reproduce.common import Report

NAMES = [
    "table-5.1",
    "table-7.1",
    "chapter-6",
    "chapter-10",
    "chapter-11",
    "table-9.2",
    "table-11.1",
    "harmonic",
    "sphere",
    "posterior-families",
]


def _cli_choices() -> tuple[str, ...]:
    """The NAME choices of ``manifold-vae reproduce``."""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    (name,) = (a for a in commands.choices["reproduce"]._actions if a.dest == "name")
    return tuple(name.choices)


def test_every_experiment_is_registered():
    assert EXPERIMENTS.names() == tuple(sorted(NAMES))
    assert sorted(_cli_choices()) == sorted(NAMES)
    for name, e in EXPERIMENTS.items():
        assert e.name == name
        assert e.tiny.epochs <= 2 and e.tiny.reps == 1
        assert e.default.epochs > e.tiny.epochs
    assert [n for n, e in EXPERIMENTS.items() if e.cli_options] == ["chapter-10"]


def _hello(out, budget, progress, greeting="hello"):
    """A user's experiment: no training, one number."""
    data = {"members": [], "greeting": greeting, "epochs": budget.epochs}
    return Report("user-hello", "A user's experiment", budget, f"{greeting}, world", data)


@pytest.fixture
def user_experiment():
    experiment = EXPERIMENTS.register(
        Experiment("user-hello", "a user's experiment", _hello, Budget(9, 2, 5), Budget(1, 1, 5))
    )
    yield experiment
    EXPERIMENTS.unregister(experiment.name)


def test_a_user_registers_an_experiment_from_outside(user_experiment, tmp_path):
    assert "user-hello" in EXPERIMENTS.names()
    report = reproduce("user-hello", tmp_path / "out", "tiny", greeting="hi")
    assert report.seconds >= 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert text.startswith("# A user's experiment\n")
    assert "reproduce user-hello --out" in text and "hi, world" in text
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["experiment"] == "user-hello" and results["greeting"] == "hi"
    assert results["budget"] == Budget(1, 1, 5).__dict__ and results["epochs"] == 1
    assert "user-hello" in _cli_choices()
    out = tmp_path / "cli"
    assert main(["reproduce", "user-hello", "--out", str(out), "--budget", "epochs=3"]) == 0
    assert json.loads((out / "results.json").read_text())["epochs"] == 3
    with pytest.raises(ValueError, match="already registered"):
        EXPERIMENTS.register(Experiment("user-hello", "again", _hello, *[Budget(1, 1, 1)] * 2))
    with pytest.raises(ValueError, match="without restarts"):
        reproduce("user-hello", tmp_path / "x", "restarts=2")


def test_the_documented_user_experiment_runs(tmp_path, monkeypatch):
    """The example of docs/reproduce.md, "Adding an experiment", run as written."""
    text = (Path(__file__).parents[2] / "docs" / "reproduce.md").read_text()
    section = text.split("### Adding an experiment", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "user_experiment"}
    try:
        exec(compile(code, "docs/reproduce.md", "exec"), namespace)
    finally:
        EXPERIMENTS.unregister("circle-sigma")
    results = json.loads((tmp_path / "out" / "circle-sigma" / "results.json").read_text())
    assert len(results["members"]) == 3 and len(results["cells"]) == 3
    assert "| sigma_X | circular correlation |" in namespace["report"].body


def test_bad_experiments_and_names_raise(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'nope'; registered: chapter-10"):
        reproduce("nope", tmp_path)
    with pytest.raises(ValueError, match="must be an Experiment"):
        EXPERIMENTS.register(_hello, name="hello")
    with pytest.raises(ValueError, match="tiny must be a Budget"):
        Experiment("x", "x", _hello, Budget(1, 1, 1), "tiny")
    with pytest.raises(ValueError, match="cli_options must be a tuple of str"):
        Experiment("x", "x", _hello, Budget(1, 1, 1), Budget(1, 1, 1), cli_options="coil20")
    with pytest.raises(ValueError, match="run must be callable"):
        Experiment("x", "x", None, Budget(1, 1, 1), Budget(1, 1, 1))


@pytest.mark.parametrize("name", NAMES)
def test_reproduce_runs_from_the_command_line(name, tmp_path, capsys):
    out = tmp_path / name
    assert main(["reproduce", name, "--out", str(out), "--budget", "tiny", "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    results = json.loads((out / "results.json").read_text())
    assert f"manifold-vae reproduce {name} --out {out} --budget tiny" in report
    assert results["experiment"] == name
    assert results["budget"] == EXPERIMENTS[name].tiny.__dict__
    assert results["members"], "every trained model is recorded"
    for member in results["members"]:
        assert member["history"]["loss"], "with its training history"
    for line in report.splitlines():
        if line.startswith("![") and "](" in line:
            png = out / line.split("](")[1].rstrip(")")
            assert png.is_file() and png.stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out


def test_tables_show_the_thesis_values(tmp_path):
    main(["reproduce", "table-5.1", "--out", str(tmp_path), "--budget", "tiny", "--no-progress"])
    report = (tmp_path / "report.md").read_text()
    assert "-79.90 ± 0.19" in report  # X_0.01, sigma_X = 0.01, -ELBO
    assert "(1.59 ± 0.64) × 10^-5" in report  # its MSE
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["members"]) == 9  # 3 datasets x 3 sigma_X x 1 repetition
    cells = {(c["cell"]["noise"], c["cell"]["sigma_x"]) for c in results["cells"]}
    assert len(cells) == 9
    settings = results["settings"]  # the default schedule, scaled to the 2 tiny epochs
    assert settings["lr_final"] == 1e-5 and settings["sigma_start"] == 1.0
    assert settings["warmup_epochs"] == 1 and settings["screen_epochs"] is None
    assert "first 1 epoch a model with sigma_X < 1" in report
    for member in results["members"]:  # epoch 0 at scale 1, epoch 1 at the model's own
        loss = member["history"]["loss"]
        if member["cell"]["sigma_x"] == 0.01 and member["cell"]["noise"] < 1:
            assert loss[0] < 100 < 1000 < loss[1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        *[({"warmup": w}, "warmup must be a fraction") for w in (-0.1, 1.0, 1.5, True, "half")],
        ({"sigma_start": -1.0, "warmup": 0.0}, "sigma_start must be"),
        ({"screen_epochs": "20"}, "screen_epochs must be a positive integer"),
        ({"screen_epochs": 0}, "screen_epochs must be a positive integer"),
    ],
    ids=repr,
)
def test_bad_table_options_raise(options, message, tmp_path):
    from manifold_vae.reproduce.sinusoid_tables import TINY
    from manifold_vae.reproduce.table_7_1 import table_7_1

    with pytest.raises(ValueError, match=message):
        table_7_1(tmp_path, TINY, progress=False, **options)


def test_parse_budget():
    default, tiny = Budget(300, 5, 10000), Budget(2, 1, 128)
    assert parse_budget(None, default, tiny) == default
    assert parse_budget("default", default, tiny) == default
    assert parse_budget("tiny", default, tiny) == tiny
    assert parse_budget("epochs=7,reps=2", default, tiny) == Budget(7, 2, 10000)
    assert (
        parse_budget("epochs=7", default, tiny).describe() == "epochs=7,reps=5,n=10000,restarts=1"
    )
    assert parse_budget("restarts=4", default, tiny).restarts == 4
    with pytest.raises(ValueError, match="key=value"):
        parse_budget("lots", default, tiny)
    with pytest.raises(ValueError, match="epochs must be an integer"):
        parse_budget("epochs=x", default, tiny)
    with pytest.raises(ValueError, match="reps must be a positive integer"):
        parse_budget("reps=0", default, tiny)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "table-9.9", "--out", "x"], "invalid choice"),
        (["reproduce", "table-5.1", "--out", "x", "--budget", "epochs=-1"], "positive integer"),
        (["reproduce", "table-5.1", "--out", "x", "--coil20", "."], "chapter-10 only"),
        (["reproduce", "chapter-6", "--out", "x", "--budget", "restarts=2"], "without restarts"),
    ],
)
def test_reproduce_errors(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
