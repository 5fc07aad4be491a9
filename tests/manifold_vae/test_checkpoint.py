"""Checkpoints: exact round trips, atomic writes, clear errors for bad files, the header."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import manifold_vae
from manifold_vae import checkpoint
from manifold_vae.datasets import sinusoids
from manifold_vae.likelihoods import Bernoulli, Gaussian, GaussianLearnedScale
from manifold_vae.manifolds import Circle, CliffordTorus, Euclidean
from manifold_vae.vae import VAE

from .registry import MANIFOLDS, ids

LIKELIHOODS = {
    "gaussian": lambda: Gaussian(0.3),
    "learned-scale": lambda: GaussianLearnedScale(0.5),
    "learned-shared-scale": lambda: GaussianLearnedScale(0.5, shared=True),
    "bernoulli": Bernoulli,
}

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _data(likelihood, n: int = 12, dtype=torch.float32) -> torch.Tensor:
    x = sinusoids(n=n, noise=0.1, seed=2, dtype=dtype).data
    return torch.sigmoid(2 * x) if isinstance(likelihood, Bernoulli) else x


def _vae(latent, likelihood, seed: int = 0, **kwargs) -> VAE:
    torch.manual_seed(seed)
    vae = VAE(latent, kwargs.pop("data_shape", (25,)), likelihood, **kwargs)
    with torch.no_grad():  # parameters no fresh model would have
        for p in vae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return vae


def _assert_same_model(a: VAE, b: VAE, x: torch.Tensor) -> None:
    assert type(a.latent) is type(b.latent) and a.latent == b.latent
    assert a.likelihood.spec() == b.likelihood.spec()
    assert a.data_shape == b.data_shape and (a.hidden, a.depth) == (b.hidden, b.depth)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa)
    for seed in (0, 1):
        torch.manual_seed(seed)
        expected = a.elbo(x, num_samples=2)
        torch.manual_seed(seed)
        got = b.elbo(x, num_samples=2)
        for e, g in zip(expected, got, strict=True):
            assert torch.equal(e, g)


# --- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("m", MANIFOLDS, ids=ids(MANIFOLDS))
@pytest.mark.parametrize("likelihood", list(LIKELIHOODS.values()), ids=list(LIKELIHOODS))
def test_round_trip_reproduces_the_elbo_exactly(tmp_path, m, likelihood):
    vae = _vae(m, likelihood())
    path = tmp_path / "model.pt"
    vae.save(path)
    loaded = VAE.load(path)
    _assert_same_model(vae, loaded, _data(vae.likelihood))


def test_learned_scale_values_survive_the_round_trip(tmp_path):
    vae = _vae(Circle(), GaussianLearnedScale(0.5))
    with torch.no_grad():
        vae.likelihood.log_sigma.copy_(torch.linspace(-2, 1, 25))
    vae.save(tmp_path / "model.pt")
    loaded = VAE.load(tmp_path / "model.pt")
    torch.testing.assert_close(loaded.likelihood.sigma, torch.linspace(-2, 1, 25).exp())


@pytest.mark.parametrize("m", [Euclidean(2), Circle(), CliffordTorus()], ids=repr)
def test_round_trip_of_a_float64_model_with_non_default_networks(tmp_path, m):
    vae = _vae(m, Gaussian(0.2), hidden=7, depth=3, activation="tanh").double()
    vae.save(tmp_path / "model.pt")
    loaded = VAE.load(tmp_path / "model.pt")
    assert next(loaded.parameters()).dtype == torch.float64
    assert (loaded.hidden, loaded.depth, loaded.activation) == (7, 3, "tanh")
    _assert_same_model(vae, loaded, _data(vae.likelihood, dtype=torch.float64))


@pytest.mark.parametrize("m", [Euclidean(2), Circle(), CliffordTorus()], ids=repr)
def test_round_trip_with_custom_networks(tmp_path, m):
    encoder = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ELU(), nn.Flatten(), nn.Linear(3 * 36, m.posterior_params)
    )
    decoder = nn.Sequential(
        nn.Linear(m.ambient_dim, 36), nn.Unflatten(1, (1, 6, 6)), nn.Conv2d(1, 1, 3, padding=1)
    )
    vae = _vae(m, Bernoulli(), data_shape=(1, 6, 6), encoder=encoder, decoder=decoder)
    vae.save(tmp_path / "model.pt")
    loaded = VAE.load(tmp_path / "model.pt")
    assert isinstance(loaded.encoder[0], nn.Conv2d) and isinstance(loaded.decoder[1], nn.Unflatten)
    _assert_same_model(
        vae, loaded, torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    )


def test_load_with_map_location(tmp_path):
    vae = _vae(Circle(), Gaussian())
    vae.save(str(tmp_path / "model.pt"))  # str paths too
    loaded = VAE.load(str(tmp_path / "model.pt"), map_location="cpu")
    assert next(loaded.parameters()).device.type == "cpu"


def test_save_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "model.pt"
    _vae(Circle(), Gaussian()).save(path)
    assert path.is_file()


# --- the header ------------------------------------------------------------------------------
def test_header_holds_versions_and_specs(tmp_path):
    vae = _vae(CliffordTorus(), GaussianLearnedScale(0.4), hidden=9)
    vae.save(tmp_path / "model.pt")
    header = torch.load(tmp_path / "model.pt", weights_only=True)
    assert header["format"] == checkpoint.FORMAT
    assert header["format_version"] == checkpoint.FORMAT_VERSION
    assert header["package_version"] == manifold_vae.__version__
    assert header["manifold"] == {"name": "clifford-torus", "kwargs": {}}
    assert header["likelihood"] == {
        "name": "gaussian-learned",
        "kwargs": {"init_sigma": 0.4, "shared": False},
    }
    assert header["data_shape"] == [25] and header["hidden"] == 9 and header["dtype"] == "float32"
    assert header["encoder"] is None and header["decoder"] is None


# --- atomic writes ---------------------------------------------------------------------------
@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=repr)
def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch, error):
    path = tmp_path / "model.pt"
    old = _vae(Circle(), Gaussian(), seed=0)
    old.save(path)
    content = path.read_bytes()

    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # a complete file is written to the temporary...
        f.write(b"garbage")
        raise error  # ...and the process fails before the rename

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(type(error)):
        _vae(Circle(), Gaussian(), seed=1).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == content
    assert os.listdir(tmp_path) == ["model.pt"], "temporary files were left behind"
    _assert_same_model(old, VAE.load(path), _data(old.likelihood))


def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        _vae(Circle(), Gaussian()).save(tmp_path / "model.pt")
    assert os.listdir(tmp_path) == []


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "model.pt"
    _vae(Circle(), Gaussian(), seed=0).save(path)
    new = _vae(Circle(), Gaussian(), seed=1)
    new.save(path)
    _assert_same_model(new, VAE.load(path), _data(new.likelihood))
    assert os.listdir(tmp_path) == ["model.pt"]


# --- bad files -------------------------------------------------------------------------------
def _write_random_bytes(path):
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())


def _write_truncated(path):
    _vae(Circle(), Gaussian()).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write_empty(path):
    path.write_bytes(b"")


def _write_foreign_dict(path):
    torch.save({"a": 1}, path)


def _write_foreign_tensor(path):
    torch.save(torch.zeros(3), path)


def _write_state_dict_only(path):
    torch.save(_vae(Circle(), Gaussian()).state_dict(), path)


def _write_damaged_header(path):
    _vae(Circle(), Gaussian()).save(path)
    header = torch.load(path, weights_only=True)
    del header["state_dict"]
    torch.save(header, path)


def _write_wrong_weights(path):
    _vae(Circle(), Gaussian()).save(path)
    header = torch.load(path, weights_only=True)
    header["manifold"] = CliffordTorus().spec()  # weights of the wrong shapes
    torch.save(header, path)


def _write_unknown_manifold(path):
    _vae(Circle(), Gaussian()).save(path)
    header = torch.load(path, weights_only=True)
    header["manifold"] = {"name": "klein-bottle", "kwargs": {}}
    torch.save(header, path)


def _write_newer_format(path):
    _vae(Circle(), Gaussian()).save(path)
    header = torch.load(path, weights_only=True)
    header["format_version"] = checkpoint.FORMAT_VERSION + 1
    torch.save(header, path)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (_write_random_bytes, "is not a readable manifold-vae checkpoint"),
        (_write_truncated, "is not a readable manifold-vae checkpoint"),
        (_write_empty, "is not a readable manifold-vae checkpoint"),
        (_write_foreign_dict, "is not a manifold-vae checkpoint"),
        (_write_foreign_tensor, "is not a manifold-vae checkpoint"),
        (_write_state_dict_only, "is not a manifold-vae checkpoint"),
        (_write_damaged_header, "is a damaged manifold-vae checkpoint"),
        (_write_wrong_weights, "is a damaged manifold-vae checkpoint"),
        (_write_unknown_manifold, "unknown manifold spec"),
        (_write_newer_format, "newer than this package's"),
    ],
    ids=lambda value: value.__name__.removeprefix("_write_") if callable(value) else "",
)
def test_bad_files_raise_clear_value_errors(tmp_path, write, message):
    path = tmp_path / "bad.pt"
    torch.manual_seed(0)
    write(path)
    with pytest.raises(ValueError, match=message) as info:
        VAE.load(path)
    assert "bad.pt" in str(info.value) or "unknown manifold" in str(info.value)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*missing\.pt"):
        VAE.load(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        VAE.load(tmp_path)  # a folder is not a checkpoint
