"""Grids and sweeps on a real Ray cluster of two nodes (1 CPU each) started by the tests.

One cluster for the module (starting one takes seconds): a head node and a worker node, each
a set of Ray processes of their own, as two machines would run them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e .[ray]")
pytest.importorskip("ray.tune", reason="Ray Tune is an optional extra: pip install -e .[ray]")

from ray.cluster_utils import Cluster  # noqa: E402

from manifold_vae.cli import main  # noqa: E402
from manifold_vae.datasets import sinusoids  # noqa: E402
from manifold_vae.distributed import RayGroupTrainer  # noqa: E402
from manifold_vae.distributed.sweep import run_sweep  # noqa: E402
from manifold_vae.distributed.sweep_config import parse_sweep  # noqa: E402
from manifold_vae.likelihoods import Gaussian  # noqa: E402
from manifold_vae.manifolds import Circle  # noqa: E402
from manifold_vae.reproduce import reproduce  # noqa: E402
from manifold_vae.reproduce.common import (  # noqa: E402
    build_members,
    group_trainer,
    train_members,
)
from manifold_vae.trainer import TrainConfig  # noqa: E402
from manifold_vae.vae import VAE  # noqa: E402

# one pytest-xdist worker runs them all (`make test` distributes by group): one cluster
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.xdist_group("ray-cluster")]

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"RAY_DISABLE_USAGE_STATS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20, "include_dashboard": False}


@pytest.fixture(scope="module")
def cluster():
    """A head node and one worker node, 1 CPU each; this process is the driver."""
    saved = {k: os.environ.get(k) for k in QUIET}
    os.environ.update(QUIET)
    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    # the test's own likelihood goes to the workers by value (they cannot import tests/)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield cluster
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()
    cluster.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_the_cluster_has_two_nodes(cluster):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    assert ray.cluster_resources()["CPU"] == 2


RUN_ONLY = ("command", "seconds", "train_seconds")  # what differs between two runs anyway


def test_a_reproduce_grid_gives_the_same_results_with_and_without_ray(cluster, tmp_path):
    reproduce("table-5.1", tmp_path / "local", "tiny", progress=False)
    argv = ["reproduce", "table-5.1", "--out", str(tmp_path / "ray"), "--budget", "tiny"]
    assert main([*argv, "--no-progress", "--ray", cluster.address]) == 0  # joins the cluster
    local = json.loads((tmp_path / "local" / "results.json").read_text())
    remote = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert local.keys() == remote.keys()
    for key in local:
        if key not in RUN_ONLY:
            assert local[key] == remote[key], key
    assert (tmp_path / "ray" / "report.md").is_file()


class CrashOnce(Gaussian):
    """A Gaussian decoder whose first evaluation anywhere kills its process (``os._exit``).

    "Anywhere" is per ``marker`` file: the first caller creates it and dies; later callers
    (the retried task) see it and train normally.
    """

    def __init__(self, sigma: float, marker: str) -> None:
        super().__init__(sigma)
        self.marker = marker

    def log_density(self, output, x):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-task
        return super().log_density(output, x)


def _grid(marker: Path):
    """Two ensemble groups (two network widths) of three decoder scales: two Ray tasks."""
    data = sinusoids(n=64, noise=0.1, seed=0).data
    cells = [{"sigma_x": s, "hidden": h} for h in (4, 6) for s in (0.1, 0.3, 1.0)]

    def make(cell):
        likelihood = CrashOnce(cell["sigma_x"], str(marker))
        return VAE(Circle(), (25,), likelihood, hidden=cell["hidden"]), data

    return build_members(cells, 1, make)


def test_a_worker_killed_mid_task_is_retried_with_the_same_results(cluster, tmp_path):
    marker = tmp_path / "crashed"
    config = TrainConfig(epochs=2, batch_size=32, progress=False)
    marker.write_text("local run: no crash")
    local = _grid(marker)
    train_members(local, config)
    marker.unlink()
    remote = _grid(marker)
    with group_trainer(RayGroupTrainer(max_retries=2)):
        train_members(remote, config)
    assert marker.read_text().isdigit(), "no worker died: the test tested nothing"
    assert int(marker.read_text()) != os.getpid()
    for a, b in zip(local, remote, strict=True):
        assert a.history.loss == b.history.loss
        for (name, p), q in zip(
            a.vae.state_dict().items(), b.vae.state_dict().values(), strict=True
        ):
            assert torch.equal(p, q), name


SWEEP = {
    "sweep": {"search": "random", "num_samples": 3, "seed": 3, "grace_period": 1},
    "train": {"epochs": 3, "n": 64, "batch_size": 32, "hidden": 4},
    "search": {"sigma_x": {"loguniform": [0.02, 1.0]}, "latent": ["circle", "euclidean:2"]},
}


def _toml_value(value) -> str:
    if isinstance(value, dict):  # an inline table
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # numbers, strings, lists of them


def _toml(document: dict) -> str:
    lines = []
    for table, entries in document.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in entries.items()]
    return "\n".join(lines) + "\n"


def _finished(out: Path) -> dict[str, float]:
    """Trial key -> modification time of its model, for the trials recorded as finished."""
    done = {}
    for record in out.glob("trials/*/record.json"):
        try:
            status = json.loads(record.read_text())["status"]
        except (json.JSONDecodeError, KeyError):
            continue
        if status == "finished":
            done[record.parent.name] = (record.parent / "model.pt").stat().st_mtime_ns
    return done


def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(cluster, tmp_path):
    config_path, out = tmp_path / "sweep.toml", tmp_path / "sweep"
    config_path.write_text(_toml(SWEEP))
    command = [sys.executable, "-m", "manifold_vae", "sweep", str(config_path), "--out",
               str(out), "--ray", cluster.address, "--max-concurrent", "1"]  # fmt: skip
    env = {**os.environ, **QUIET, "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not _finished(out) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)  # the sweep's driver dies mid-sweep
        driver.wait()
    assert driver.returncode == -signal.SIGKILL, "the sweep ended before it was interrupted"
    before = _finished(out)
    assert 1 <= len(before) < 3, f"the interruption came too late or never: {before}"
    time.sleep(1.0)  # the dead driver's trial processes are ended by Ray
    result = run_sweep(parse_sweep(SWEEP), out, resume=True)
    assert set(result.ran).isdisjoint(before)
    assert len(result.ran) == 3 - len(before)
    after = _finished(out)
    assert all(after[key] == mtime for key, mtime in before.items())  # not trained again
    for r in result.records:  # finished, or stopped early by ASHA: each keeps its model
        epochs = len(r["val_neg_elbo"])
        assert epochs == 3 if r["status"] == "finished" else r["status"] == "stopped"
        assert 1 <= epochs <= 3
        assert VAE.load(out / "trials" / r["key"] / "model.pt").latent.spec()
    table = result.table_csv.read_text().splitlines()
    assert len(table) == 4 and table[0].startswith("rank,trial,status")
    assert result.plot is not None and result.plot.is_file()
    again = run_sweep(parse_sweep(SWEEP), out, resume=True)
    assert again.ran == []
    with pytest.raises(ValueError, match="already holds a sweep"):
        run_sweep(parse_sweep(SWEEP), out)
