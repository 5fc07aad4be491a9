"""``load_geomstats`` refuses a geomstats that uses another backend, with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "GEOMSTATS_BACKEND"}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**environ, **env},
        timeout=120,
    )


LOAD = "from manifold_vae._geomstats import load_geomstats; load_geomstats()"


@pytest.mark.parametrize(
    ("code", "env", "message"),
    [
        (LOAD, {"GEOMSTATS_BACKEND": "numpy"}, "GEOMSTATS_BACKEND='numpy', but manifold_vae"),
        (
            "import os; os.environ['GEOMSTATS_BACKEND'] = 'numpy'; import geomstats\n"
            "del os.environ['GEOMSTATS_BACKEND']\n" + LOAD,
            {},
            "already imported with the 'numpy' backend",
        ),
    ],
    ids=["environment", "already-imported"],
)
def test_other_backend_raises(code, env, message):
    result = _run(code, **env)
    assert result.returncode != 0
    assert "RuntimeError" in result.stderr and message in result.stderr
    assert "GEOMSTATS_BACKEND=pytorch" in result.stderr
