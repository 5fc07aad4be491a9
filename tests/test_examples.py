"""Run every script in examples/ with a tiny budget so that the examples never rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def command(script: Path) -> list[str]:
    """The command line for ``script``: ``--steps 20`` only where the script accepts it."""
    args = [sys.executable, str(script.relative_to(ROOT))]
    if "--steps" in script.read_text(encoding="utf-8"):
        args += ["--steps", "20"]
    return args


def test_examples_are_found():
    assert EXAMPLES, "no scripts in examples/"


@pytest.mark.parametrize("script", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(script: Path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    result = subprocess.run(
        command(script), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (
        f"{script.name} exited with {result.returncode}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )
