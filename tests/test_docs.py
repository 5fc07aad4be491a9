"""The tutorials' code runs: the python blocks of each document, in order, in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Documents whose python blocks form one runnable script.
DOCUMENTS = [
    "docs/manifolds.md",
    "docs/architecture.md",
    "docs/vae.md",
    "docs/sweeps.md",
    "docs/spherical_families.md",
]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    """The contents of the fenced ```python blocks of a markdown text, in order."""
    return _BLOCK.findall(text)


def test_python_blocks_are_extracted():
    text = "intro\n```python\na = 1\n```\n\n```bash\nls\n```\n```python\nb = a\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = a\n"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_code_runs(document, tmp_path):
    """In a subprocess: what a tutorial registers must not leak into the test session."""
    blocks = python_blocks((ROOT / document).read_text())
    assert blocks, f"{document} has no python blocks"
    script = tmp_path / "tutorial.py"
    script.write_text("\n\n".join(blocks))
    env_code = f"import torch; torch.set_num_threads(1); exec(open({str(script)!r}).read())"
    result = subprocess.run(
        [sys.executable, "-c", env_code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
