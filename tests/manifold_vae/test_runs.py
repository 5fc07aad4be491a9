"""Run folders (locks, refusal of earlier runs, clean-up) and never-half-written files."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

from manifold_vae.files import (
    append_jsonl,
    atomic_write,
    atomic_write_with,
    remove_temporaries,
    strict_json,
    write_json,
)
from manifold_vae.runs import LOCK_NAME, RUN_FILES, RunFolder


# --- files -------------------------------------------------------------------------------------
def test_strict_json_writes_non_finite_numbers_as_null():
    text = strict_json({"loss": [1.5, -math.inf, math.nan], "best": (math.inf, 2)})
    expected = {"loss": [1.5, None, None], "best": [None, 2]}
    assert json.loads(text, parse_constant=_reject) == expected


def _reject(token):
    raise AssertionError(f"non-standard JSON token {token}")


def test_atomic_write_replaces_or_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}

    def broken(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(target, broken)
    assert json.loads(target.read_text()) == {"a": 1}
    assert list(tmp_path.iterdir()) == [target]  # no temporary left
    atomic_write(target, "text")
    assert target.read_text() == "text"


def test_append_jsonl_is_one_strict_line_per_record(tmp_path):
    log = tmp_path / "metrics.jsonl"
    append_jsonl(log, {"epoch": 1, "loss": math.inf})
    append_jsonl(log, {"epoch": 2, "loss": 0.5})
    lines = log.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"epoch": 1, "loss": None},
        {"epoch": 2, "loss": 0.5},
    ]


def test_remove_temporaries_removes_only_leftovers(tmp_path):
    keep = tmp_path / "model.pt"
    keep.write_bytes(b"x")
    left = [tmp_path / ".model.pt.abc123.tmp", tmp_path / ".metrics.json.x.tmp"]
    for path in left:
        path.write_bytes(b"partial")
    assert remove_temporaries(tmp_path, names=["model.pt"]) == [left[0]]
    assert remove_temporaries(tmp_path) == [left[1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_write_killed_mid_way_leaves_only_a_temporary_that_the_next_run_removes(tmp_path):
    """SIGKILL during an atomic write: the old file is intact; opening the run folder cleans."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"old")
    script = textwrap.dedent(
        f"""
        import os, signal
        from manifold_vae.files import atomic_write_with
        def write(f):
            f.write(b"new, half written")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        atomic_write_with({str(run / "model.pt")!r}, write)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False)
    assert done.returncode == -9
    assert (run / "model.pt").read_bytes() == b"old"
    assert [p.name for p in run.glob(".model.pt.*.tmp")]
    with RunFolder(run, resume=True):
        pass
    assert not list(run.glob("*.tmp"))


# --- run folders --------------------------------------------------------------------------------
def test_a_new_folder_is_created_and_locked(tmp_path):
    folder = tmp_path / "a" / "b"
    with RunFolder(folder) as run:
        assert folder.is_dir() and (folder / LOCK_NAME).exists()
        assert run.checkpoint == folder / "model.pt"
        with pytest.raises(ValueError, match=r"--out .*another run \(process \d+\)"):
            RunFolder(folder).open()
    with RunFolder(folder):  # released
        pass


def test_a_second_process_is_refused_while_the_first_runs(tmp_path):
    folder = tmp_path / "run"
    with RunFolder(folder):
        script = f"from manifold_vae.runs import RunFolder\nRunFolder({str(folder)!r}).open()\n"
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False
        )
    assert done.returncode != 0
    assert f"another run (process {os.getpid()})" in done.stderr


@pytest.mark.parametrize("name", RUN_FILES)
def test_an_earlier_run_is_refused_unless_overwrite(tmp_path, name):
    (tmp_path / name).write_bytes(b"earlier")
    (tmp_path / "notes.txt").write_text("the user's own file")
    with pytest.raises(ValueError, match=rf"already holds a run \({name}\).*--overwrite"):
        RunFolder(tmp_path).open()
    with RunFolder(tmp_path, overwrite=True):
        assert not (tmp_path / name).exists()  # nothing of the old run survives
    assert (tmp_path / "notes.txt").exists()  # what is not a run file is left alone


def test_resume_needs_a_checkpoint(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="no checkpoint"):
        RunFolder(tmp_path, resume=True).open()
    (tmp_path / "model.pt").write_bytes(b"weights")
    with RunFolder(tmp_path, resume=True):
        assert (tmp_path / "metrics.json").exists()  # kept: the run continues
    with pytest.raises(ValueError, match="exclude each other"):
        RunFolder(tmp_path, resume=True, overwrite=True)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda tmp: tmp / "file.txt", "exists and is not a folder"),
        (lambda tmp: tmp / "file.txt" / "sub", "cannot write there"),
        (lambda tmp: "/proc/manifold-vae-run", "cannot write there"),
    ],
    ids=["a-file", "below-a-file", "proc"],
)
def test_unusable_folders_give_one_clear_error(tmp_path, make, match):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match=match) as error:
        RunFolder(make(tmp_path)).open()
    assert str(error.value).startswith("--out ")
    assert "\n" not in str(error.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_refused_before_anything_runs(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="cannot write there"):
            RunFolder(folder).open()
    finally:
        folder.chmod(0o700)


def test_the_record_names_the_config_and_versions(tmp_path):
    with RunFolder(tmp_path) as run:
        run.write_record({"latent": "circle", "seed": 3, "best": math.inf})
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["config"] == {"latent": "circle", "seed": 3, "best": None}
    assert {"manifold_vae", "torch", "pyro", "python"} <= set(record["versions"])
