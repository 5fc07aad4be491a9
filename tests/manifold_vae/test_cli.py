"""The ``manifold-vae`` command line: ``demo`` and ``bench``, and clear argument errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from manifold_vae import __version__
from manifold_vae.cli import main


def test_demo_writes_the_tour(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("density_table.md", "heat_kernel.png", "tour.json"):
        assert (out / name).is_file()
        assert f"wrote {out / name}" in printed
    assert "| t |" in printed


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
        (["demo", "--out", "x", "--seed", "one"], "invalid int value: 'one'"),
        (["bench", "--dtype", "float16"], "manifold-vae bench: error: argument --dtype"),
        (["bench", "--n", "0"], "--n and --repeats must be positive"),
    ],
)
def test_bad_arguments_exit_with_a_clear_message(argv, message, capsys):
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
