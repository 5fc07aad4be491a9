"""Importing the packages (and loading geomstats through them) changes no global setting.

Checked in a fresh interpreter, since this process has long since imported everything.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import distributions

SCRIPT = r"""
import hashlib, json, logging, os, sys
import matplotlib
import torch

def snapshot():
    return {
        "default_dtype": str(torch.get_default_dtype()),
        "default_device": str(torch.empty(()).device),
        "environ": dict(os.environ),
        "rng_state": hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest(),
        "matplotlib_backend": str(matplotlib.rcParams._get("backend")),
        "pyplot_imported": "matplotlib.pyplot" in sys.modules,
        "root_logger": [logging.root.level, len(logging.root.handlers)],
        "num_threads": torch.get_num_threads(),
        "grad_enabled": torch.is_grad_enabled(),
    }

def loaded(prefix):
    return sorted(m for m in sys.modules if m == prefix or m.startswith(prefix + "."))

out = {"before": snapshot()}
import distributions
out["distributions"] = snapshot()
out["manifold_vae_after_distributions"] = loaded("manifold_vae")
import manifold_vae
out["manifold_vae"] = snapshot()
out["geomstats_after_manifold_vae"] = loaded("geomstats")
from manifold_vae._geomstats import load_geomstats
geomstats = load_geomstats()
out["geomstats"] = snapshot()
out["geomstats_name"] = geomstats.__name__
out["backend"] = sys.modules["geomstats.backend"].__name__
out["cached"] = load_geomstats() is geomstats
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def imports() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GEOMSTATS_BACKEND"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("stage", ["distributions", "manifold_vae", "geomstats"])
def test_global_settings_are_unchanged(imports, stage):
    before, after = imports["before"], imports[stage]
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    if "environ" in changed:
        keys = set(before["environ"]) ^ set(after["environ"])
        keys |= {k for k in before["environ"] if before["environ"][k] != after["environ"].get(k)}
        changed["environ"] = sorted(keys)
    assert not changed, f"importing {stage} changed {changed}"


def test_manifold_vae_does_not_import_geomstats(imports):
    assert imports["geomstats_after_manifold_vae"] == []


def test_geomstats_is_loaded_with_the_pytorch_backend(imports):
    assert imports["geomstats_name"] == "geomstats"
    assert imports["backend"] == "geomstats.pytorch"
    assert imports["cached"]


def test_distributions_does_not_import_manifold_vae(imports):
    assert imports["manifold_vae_after_distributions"] == []


def _imported_modules(path: Path) -> list[tuple[str, int]]:
    """(module, relative level) of every import statement of a source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_distributions_sources_never_import_manifold_vae():
    sources = sorted(Path(distributions.__file__).parent.rglob("*.py"))
    assert len(sources) > 5
    for path in sources:
        for module, level in _imported_modules(path):
            assert module.split(".")[0] != "manifold_vae", f"{path.name} imports {module}"
            assert level <= 1, f"{path.name} has a relative import above its package"
